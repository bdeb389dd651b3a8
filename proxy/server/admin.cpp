#include "server/admin.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "diagnose/diagnose.hpp"
#include "util/text.hpp"
#include "diagnose/expiry.hpp"
#include "oauth/token_store.hpp"
#include "server/console.hpp"

namespace xo::server {

namespace http = beast::http;

namespace {

long long unix_time(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Escapes a Prometheus label value.
std::string label(const std::string& v) {
    std::string o;
    for (char c : v) {
        if (c == '\\' || c == '"') o += '\\';
        if (c == '\n') { o += "\\n"; continue; }
        o += c;
    }
    return o;
}

// Fills `res` for `req`. Never throws: an exception while rendering becomes a
// 500 with a JSON error (and a log line), so one odd entry cannot take the
// endpoint down.
void respond(const http::request<http::string_body>& req, http::response<http::string_body>& res,
             const Services& s) {
    try {
        std::string target(req.target());
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            res.result(http::status::method_not_allowed);
            res.body() = "GET only\n";
        } else if (target == "/healthz") {
            res.set(http::field::content_type, "text/plain");
            res.body() = "ok\n";
        } else if (target == "/status") {
            res.set(http::field::content_type, "application/json");
            res.body() = render_status_json(s);
        } else if (target == "/metrics") {
            res.set(http::field::content_type, "text/plain; version=0.0.4");
            res.body() = render_metrics(s);
        } else {
            res.result(http::status::not_found);
            res.body() = "not found: try /healthz, /status, /metrics\n";
        }
    } catch (const std::exception& e) {
        spdlog::error("admin {} failed: {}", util::log_escape(std::string(req.target())), util::log_escape(e.what()));
        res.result(http::status::internal_server_error);
        res.set(http::field::content_type, "application/json");
        nlohmann::json j = {{"error", "internal_error"}, {"description", util::utf8_safe(e.what())}};
        res.body() = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
}

awaitable<void> serve(tcp::socket socket, std::shared_ptr<CurrentServices> current, std::shared_ptr<Console> console) {
    error_code peer_ec;
    auto peer = socket.remote_endpoint(peer_ec);
    std::string ip = peer_ec ? "?" : peer.address().to_string();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        error_code ec;
        http::request<http::string_body> req;
        stream.expires_after(std::chrono::seconds(30));
        co_await http::async_read(stream, buffer, req, asio::redirect_error(use_awaitable, ec));
        if (ec) break;
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "xoauth2-proxy");
        res.keep_alive(req.keep_alive());
        std::string target(req.target());
        bool console_answered = co_await console->handle(req, res, ip);
        if (!console_answered) {
            std::shared_ptr<Services> s = current->get();
            respond(req, res, *s);
        }
        res.prepare_payload();
        co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
        if (ec || !res.keep_alive()) break;
    }
    error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor, std::shared_ptr<CurrentServices> current,
                            std::shared_ptr<Console> console) {
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) continue;
        auto ex = socket.get_executor();
        asio::co_spawn(ex, serve(std::move(socket), current, console), asio::detached);
    }
}

}  // namespace

std::string render_status_json(const Services& s) {
    nlohmann::json j;
    const auto& c = s.counters;
    j["sessions"] = {{"total", c.sessions.load()}, {"active", c.sessions_active.load()}};
    j["messages"] = {{"relayed", c.messages_relayed.load()}, {"refused", c.messages_refused.load()},
                     {"failed", c.messages_failed.load()}, {"bytes", c.bytes_relayed.load()}};
    j["auth"] = {{"ok", c.auth_ok.load()}, {"failed", c.auth_failed.load()}};
    auto entries = s.tokens->status();
    nlohmann::json conns = nlohmann::json::object();
    auto now = std::chrono::system_clock::now();
    auto expiries = diagnose::credential_expiries(s.cfg);
    nlohmann::json warnings = nlohmann::json::array();
    for (const auto& [name, conn] : s.cfg.connections) {
        nlohmann::json cj;
        cj["provider"] = config::to_string(conn.provider);
        cj["flow"] = config::to_string(conn.flow);
        cj["smtp"] = conn.smtp.text();
        cj["send_via"] = config::to_string(conn.send_via);
        if (conn.send_via == config::SendVia::auto_) cj["switched_to_graph"] = s.api_switched.contains(name);
        cj["state"] = "idle";   // no token asked for yet
        cj["tokens"] = nlohmann::json::array();
        uint64_t requests = 0, failures = 0;
        bool any_ok = false, any_failing = false;
        for (const auto& e : entries) {
            // The API's token (Graph's scope) counts for the connection too.
            const bool api = e.connection != name && conn.uses_api() && e.connection == conn.api_token_source();
            if (e.connection != name && !api) continue;
            nlohmann::json tj;
            if (api) tj["for"] = "api";
            if (!e.mailbox.empty()) tj["mailbox"] = e.mailbox;
            bool valid = e.has_token && e.expires_wall > now;
            tj["state"] = valid ? "active" : e.last_error ? "failing" : "expired";
            if (e.has_token) {
                tj["expires_at"] = unix_time(e.expires_wall);
                tj["expires_in"] = std::max<long long>(0, unix_time(e.expires_wall) - unix_time(now));
            }
            if (e.last_error) {
                tj["last_error"] = {{"code", e.last_error->code},
                                    {"error", e.last_error->error},
                                    {"description", e.last_error->description},
                                    {"http_status", e.last_error->http_status},
                                    {"at", unix_time(e.last_error_at)},
                                    {"advice", diagnose::token_error_advice(e.last_error->code, e.last_error->error,
                                                                            e.last_error->description)}};
                any_failing = any_failing || !valid;
            }
            any_ok = any_ok || valid;
            requests += e.requests;
            failures += e.failures;
            cj["tokens"].push_back(std::move(tj));
        }
        if (any_failing) cj["state"] = "failing";
        else if (any_ok) cj["state"] = "active";
        cj["token_requests"] = requests;
        cj["token_failures"] = failures;
        cj["credentials"] = nlohmann::json::array();
        for (const auto& e : expiries) {
            if (e.connection != name) continue;
            nlohmann::json ej{{"kind", e.kind}, {"what", e.what}};
            if (!e.mailbox.empty()) ej["mailbox"] = e.mailbox;
            if (e.expires_at) {
                ej["expires_at"] = e.expires_at;
                ej["expires_in"] = e.expires_at - unix_time(now);
            } else {
                ej["problem"] = e.problem;
            }
            if (diagnose::due(e, unix_time(now))) {
                ej["warning"] = diagnose::describe(e, unix_time(now));
                ej["advice"] = diagnose::expiry_advice(e);
                warnings.push_back(ej["warning"]);
            }
            cj["credentials"].push_back(std::move(ej));
        }
        conns[name] = std::move(cj);
    }
    j["connections"] = std::move(conns);
    if (auto st = s.tokens->store(); st && !st->health().empty()) {
        bool up = st->healthy();
        j["token_store"] = {{"store", st->describe()}, {"state", up ? "up" : "down"}, {"detail", st->health()}};
        if (!up)
            warnings.push_back("token store " + st->health() +
                               ": sessions with a cached token go on, the others get a temporary failure");
    }
    j["warnings"] = std::move(warnings);
    // Mailboxes and providers' texts are outside bytes: invalid UTF-8 becomes U+FFFD.
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string render_metrics(const Services& s) {
    const auto& c = s.counters;
    std::string o;
    auto counter = [&o](const char* name, const char* help, uint64_t v) {
        o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " +
             std::to_string(v) + "\n";
    };
    counter("xoauth2_sessions_total", "Client sessions accepted.", c.sessions.load());
    o += "# HELP xoauth2_sessions_active Client sessions in progress.\n# TYPE xoauth2_sessions_active gauge\n";
    o += "xoauth2_sessions_active " + std::to_string(c.sessions_active.load()) + "\n";
    counter("xoauth2_messages_relayed_total", "Messages the upstream accepted.", c.messages_relayed.load());
    o += "# HELP xoauth2_messages_refused_total Messages not relayed, by reason.\n# TYPE xoauth2_messages_refused_total counter\n";
    o += "xoauth2_messages_refused_total{reason=\"upstream_rejected\"} " + std::to_string(c.messages_refused.load()) + "\n";
    o += "xoauth2_messages_refused_total{reason=\"upstream_failed\"} " + std::to_string(c.messages_failed.load()) + "\n";
    counter("xoauth2_bytes_relayed_total", "Message bytes the upstream accepted.", c.bytes_relayed.load());
    o += "# HELP xoauth2_logins_total Local logins, by result.\n# TYPE xoauth2_logins_total counter\n";
    o += "xoauth2_logins_total{result=\"ok\"} " + std::to_string(c.auth_ok.load()) + "\n";
    o += "xoauth2_logins_total{result=\"failed\"} " + std::to_string(c.auth_failed.load()) + "\n";
    std::map<std::string, std::pair<uint64_t, uint64_t>> per_conn;
    for (const auto& [name, conn] : s.cfg.connections) per_conn[name] = {0, 0};
    for (const auto& e : s.tokens->status()) {
        per_conn[e.connection].first += e.requests;
        per_conn[e.connection].second += e.failures;
    }
    o += "# HELP xoauth2_token_requests_total Requests at the token endpoint, by connection.\n# TYPE xoauth2_token_requests_total counter\n";
    for (const auto& [name, v] : per_conn)
        o += "xoauth2_token_requests_total{connection=\"" + label(name) + "\"} " + std::to_string(v.first) + "\n";
    o += "# HELP xoauth2_token_failures_total Failed token requests, by connection.\n# TYPE xoauth2_token_failures_total counter\n";
    for (const auto& [name, v] : per_conn)
        o += "xoauth2_token_failures_total{connection=\"" + label(name) + "\"} " + std::to_string(v.second) + "\n";
    // Seconds until each credential expires (negative: expired); the soonest per connection and kind.
    std::map<std::pair<std::string, std::string>, long long> expiry;
    for (const auto& e : diagnose::credential_expiries(s.cfg)) {
        if (!e.expires_at) continue;
        auto key = std::make_pair(e.connection, e.kind);
        long long left = e.expires_at - unix_time(std::chrono::system_clock::now());
        auto it = expiry.find(key);
        if (it == expiry.end() || left < it->second) expiry[key] = left;
    }
    o += "# HELP xoauth2_credential_expiry_seconds Seconds until a credential expires (certificate, client secret, "
         "refresh token idle limit).\n# TYPE xoauth2_credential_expiry_seconds gauge\n";
    for (const auto& [key, left] : expiry)
        o += "xoauth2_credential_expiry_seconds{connection=\"" + label(key.first) + "\",kind=\"" + key.second + "\"} " +
             std::to_string(left) + "\n";
    o += "# HELP xoauth2_upstream_open_seconds Time to open an upstream session (connect, TLS, AUTH).\n";
    o += "# TYPE xoauth2_upstream_open_seconds histogram\n";
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i < Counters::kBuckets.size(); ++i) {
        cumulative += c.upstream_open_buckets[i].load();
        char le[32];
        std::snprintf(le, sizeof le, "%g", Counters::kBuckets[i]);
        o += std::string("xoauth2_upstream_open_seconds_bucket{le=\"") + le + "\"} " + std::to_string(cumulative) + "\n";
    }
    uint64_t count = c.upstream_open_count.load();
    o += "xoauth2_upstream_open_seconds_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.6f", double(c.upstream_open_micros.load()) / 1e6);
    o += std::string("xoauth2_upstream_open_seconds_sum ") + sum + "\n";
    o += "xoauth2_upstream_open_seconds_count " + std::to_string(count) + "\n";
    return o;
}

void start_admin(asio::io_context& io, std::shared_ptr<CurrentServices> current) {
    std::shared_ptr<Services> s = current->get();
    if (!s->cfg.admin.port) return;
    error_code ec;
    auto addr = asio::ip::make_address(s->cfg.admin.host, ec);
    if (ec) throw std::runtime_error("admin: bad address " + s->cfg.admin.host);
    tcp::endpoint ep(addr, s->cfg.admin.port);
    auto acceptor = std::make_shared<tcp::acceptor>(io);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(64, ec);
    if (ec) throw std::runtime_error("admin: cannot listen on " + s->cfg.admin.host + ":" +
                                     std::to_string(s->cfg.admin.port) + ": " + ec.message());
    auto console = std::make_shared<Console>(s);
    spdlog::info("admin listener on {}:{} (/healthz /status /metrics{})", s->cfg.admin.host, s->cfg.admin.port,
                 console->enabled() ? ", web console at /" : "");
    asio::co_spawn(io, accept_loop(acceptor, current, console), asio::detached);
}

}  // namespace xo::server
