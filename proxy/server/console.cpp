#include "server/console.hpp"
#include "server/console_detail.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "auth/password.hpp"
#include "cli/probe.hpp"
#include "diagnose/diagnose.hpp"
#include "diagnose/expiry.hpp"
#include "oauth/http_client.hpp"
#include "oauth/provider.hpp"
#include "oauth/redis_store.hpp"
#include "oauth/token_store.hpp"
#include "util/base64.hpp"

namespace xo::server {


using namespace console_detail;

Console::Console(std::shared_ptr<Services> s) : s_(std::move(s)) {}
Console::~Console() = default;

std::string Console::session_of(const HttpRequest& req) {
    auto it = req.find(http::field::cookie);
    if (it == req.end()) return "";
    std::string cookies(it->value());
    std::string want = std::string(kCookie) + "=";
    std::size_t at = 0;
    while (at < cookies.size()) {
        while (at < cookies.size() && (cookies[at] == ' ' || cookies[at] == ';')) ++at;
        auto end = cookies.find(';', at);
        std::string one = cookies.substr(at, end == std::string::npos ? std::string::npos : end - at);
        if (one.rfind(want, 0) == 0) {
            std::string id = one.substr(want.size());
            std::lock_guard lock(mu_);
            auto s = sessions_.find(id);
            if (s == sessions_.end()) return "";
            if (s->second.expires < std::chrono::steady_clock::now()) {
                sessions_.erase(s);
                return "";
            }
            return id;
        }
        if (end == std::string::npos) break;
        at = end + 1;
    }
    return "";
}

bool Console::csrf_ok(const HttpRequest& req, const std::string& session) {
    auto it = req.find("X-CSRF-Token");
    if (it == req.end()) return false;
    std::lock_guard lock(mu_);
    auto s = sessions_.find(session);
    return s != sessions_.end() && same(s->second.csrf, std::string(it->value()));
}

std::string Console::page(const std::string& csrf) const {
    return replace(kConsolePage, "{{CSRF}}", csrf);
}



awaitable<bool> Console::handle(const HttpRequest& req, HttpResponse& res, std::string ip) {
    if (!enabled()) co_return false;
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    bool post = req.method() == http::verb::post;
    res.set(http::field::cache_control, "no-store");
    res.set("X-Frame-Options", "DENY");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'");
    if (get && path == "/console.css") {
        reply(res, http::status::ok, "text/css", kConsoleCss);
        co_return true;
    }
    if (get && path == "/console.js") {
        reply(res, http::status::ok, "application/javascript", kConsoleJs);
        co_return true;
    }
    if (get && path == "/oauth/callback") {   // the provider's redirect: state and PKCE are the proof
        co_await callback(target, res);
        co_return true;
    }
    if (post && path == "/login") {
        co_await login(req, res, ip);
        co_return true;
    }
    bool api = path.rfind("/api/", 0) == 0;
    if (!(get && path == "/") && !(post && path == "/logout") && !api) co_return false;
    std::string session = session_of(req);
    if (get && path == "/") {
        if (session.empty()) {
            reply(res, http::status::ok, "text/html; charset=utf-8", replace(kConsoleLogin, "{{MESSAGE}}", ""));
        } else {
            std::string csrf;
            {
                std::lock_guard lock(mu_);
                csrf = sessions_[session].csrf;
            }
            reply(res, http::status::ok, "text/html; charset=utf-8", page(csrf));
        }
        co_return true;
    }
    if (session.empty()) {
        reply_json(res, http::status::unauthorized, error_json("sign in first (POST /login)"));
        co_return true;
    }
    if (post && !csrf_ok(req, session)) {
        reply_json(res, http::status::forbidden, error_json("missing or wrong X-CSRF-Token"));
        co_return true;
    }
    if (post && path == "/logout") {
        {
            std::lock_guard lock(mu_);
            sessions_.erase(session);
        }
        res.set(http::field::set_cookie, std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
        reply_json(res, http::status::ok, json::object());
        co_return true;
    }
    if (get && path == "/api/connections") {
        reply(res, http::status::ok, "application/json", connections_json());
        co_return true;
    }
    // POST /api/connections/NAME/test | /authorize
    const std::string prefix = "/api/connections/";
    if (post && path.rfind(prefix, 0) == 0) {
        std::string rest = path.substr(prefix.size());
        auto slash = rest.find('/');
        std::string name = oauth::decode_form("n=" + rest.substr(0, slash)).front().second;
        std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
        if (!s_->cfg.find_connection(name)) {
            reply_json(res, http::status::not_found, error_json("no connection named " + name));
            co_return true;
        }
        if (action == "test") {
            co_await run_test(name, req.body(), res);
            co_return true;
        }
        if (action == "authorize") {
            auto host = req.find(http::field::host);
            std::string h = host == req.end() ? s_->cfg.admin.host + ":" + std::to_string(s_->cfg.admin.port)
                                              : std::string(host->value());
            co_await authorize(name, req.body(), h, res);
            co_return true;
        }
    }
    reply_json(res, http::status::not_found, error_json("not found"));
    co_return true;
}

awaitable<void> Console::login(const HttpRequest& req, HttpResponse& res, std::string ip) {
    if (auto delay = throttle_.delay_for(ip); delay.count() > 0) {
        asio::steady_timer t(co_await asio::this_coro::executor, delay);
        error_code ec;
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    std::string password;
    for (const auto& [k, v] : oauth::decode_form(req.body()))
        if (k == "password") password = v;
    bool ok = false;
    if (!password.empty())
        ok = co_await asio::co_spawn(s_->kdf_pool.get_executor(), verify(password, s_->cfg.admin.password_hash),
                                     use_awaitable);
    if (!ok) {
        throttle_.record_failure(ip);
        spdlog::warn("admin console: failed sign-in from {}", ip);
        reply(res, http::status::unauthorized, "text/html; charset=utf-8",
              replace(kConsoleLogin, "{{MESSAGE}}", "<p class=\"error\" id=\"login-error\">Wrong password.</p>"));
        co_return;
    }
    throttle_.record_success(ip);
    std::string id = random_b64url(32);
    {
        std::lock_guard lock(mu_);
        auto now = std::chrono::steady_clock::now();
        for (auto it = sessions_.begin(); it != sessions_.end();) it = it->second.expires < now ? sessions_.erase(it) : ++it;
        if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
        sessions_[id] = Session{random_b64url(32), now + kSessionLifetime};
    }
    spdlog::info("admin console: signed in from {}", ip);
    res.result(http::status::see_other);
    res.set(http::field::location, "/");
    res.set(http::field::set_cookie, std::string(kCookie) + "=" + id + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                         std::to_string(std::chrono::seconds(kSessionLifetime).count()));
    res.body() = "";
}

std::string Console::connections_json() {
    auto now_tp = std::chrono::system_clock::now();
    long long now = std::chrono::duration_cast<std::chrono::seconds>(now_tp.time_since_epoch()).count();
    auto entries = s_->tokens->status();
    auto expiries = diagnose::credential_expiries(s_->cfg);
    std::string store_error;
    std::map<std::string, std::vector<std::string>> granted;   // connection -> mailboxes with a refresh token
    if (oauth::TokenStore* st = store(false, store_error)) {
        try {
            for (const auto& [key, g] : st->all()) {
                auto nl = key.find('\n');
                granted[key.substr(0, nl)].push_back(nl == std::string::npos ? "" : key.substr(nl + 1));
            }
        } catch (const std::exception& e) {
            store_error = e.what();
        }
    }
    json out;
    const auto& c = s_->counters;
    out["counters"] = {{"messages_relayed", c.messages_relayed.load()}, {"sessions_active", c.sessions_active.load()},
                       {"messages_refused", c.messages_refused.load()}, {"messages_failed", c.messages_failed.load()}};
    out["connections"] = json::array();
    for (const auto& [name, conn] : s_->cfg.connections) {
        json j{{"name", name},
               {"provider", config::to_string(conn.provider)},
               {"flow", config::to_string(conn.flow)},
               {"interactive", interactive(conn)},
               {"mailbox", cli::default_mailbox(s_->cfg, name)}};
        bool active = false;
        long long expires_in = -1;
        const oauth::ProviderError* last = nullptr;
        long long last_at = 0;
        for (const auto& e : entries) {
            if (e.connection != name) continue;
            if (e.has_token && e.expires_wall > now_tp) {
                active = true;
                long long left = std::chrono::duration_cast<std::chrono::seconds>(e.expires_wall - now_tp).count();
                if (expires_in < 0 || left < expires_in) expires_in = left;
            }
            if (e.last_error) {
                last = &*e.last_error;
                last_at = std::chrono::duration_cast<std::chrono::seconds>(e.last_error_at.time_since_epoch()).count();
            }
        }
        bool needs_auth = interactive(conn) && granted[name].empty();
        if (last && (last->error == "needs_authorization" || last->description.find("needs authorization") != std::string::npos))
            needs_auth = true;
        std::string state = active ? "Active" : needs_auth ? "Needs authorization" : last ? "Failing" : "Idle";
        j["state"] = state;
        if (expires_in >= 0) j["token_expires_in"] = expires_in;
        if (last) {
            j["last_error"] = {{"summary", last->summary()}, {"at", last_at}};
            if (const diagnose::Row* r = diagnose::match_token_error(last->code, last->error, last->description))
                j["diagnosis"] = {{"cause", std::string(r->cause)}, {"fix", std::string(r->fix)}};
        }
        if (needs_auth && !active)
            j["diagnosis"] = {{"cause", "no mailbox has signed in for this connection yet"},
                              {"fix", "press Authorize and sign in as the mailbox"}};
        j["credentials"] = json::array();
        for (const auto& e : expiries) {
            if (e.connection != name) continue;
            json ej{{"kind", e.kind}, {"what", e.what}, {"text", diagnose::describe(e, now)}};
            if (diagnose::due(e, now)) ej["warning"] = diagnose::expiry_advice(e);
            j["credentials"].push_back(ej);
        }
        {
            std::lock_guard lock(mu_);
            if (auto a = authorizations_.find(name); a != authorizations_.end()) {
                const auto& au = a->second;
                j["authorization"] = {{"mailbox", au.mailbox}, {"state", au.state}, {"message", au.message},
                                      {"user_code", au.user_code}, {"verification_uri", au.verification_uri},
                                      {"authorize_url", au.authorize_url}};
            }
        }
        out["connections"].push_back(std::move(j));
    }
    if (!store_error.empty()) out["store_error"] = store_error;
    return out.dump() + "\n";
}

awaitable<void> Console::run_test(std::string name, std::string body, HttpResponse& res) {
    const config::Connection* conn = s_->cfg.find_connection(name);
    cli::ProbeOptions o;
    auto j = json::parse(body, nullptr, false);
    std::string protocol = j.is_object() ? j.value("protocol", "smtp") : "smtp";
    if (protocol != "smtp" && protocol != "imap" && protocol != "pop3") protocol = "smtp";
    o.protocols = {protocol};
    o.mailbox = mailbox_for(s_->cfg, name, body);
    o.from = o.to = o.mailbox;
    o.hostname = s_->hostname;
    if (o.mailbox.empty()) {
        reply_json(res, http::status::bad_request, error_json("no user or sender uses this connection: give a mailbox"));
        co_return;
    }
    auto rep = std::make_shared<cli::ProbeReport>();
    co_await cli::run_probe(*conn, o, s_->tokens, s_->upstream_tls.at(name), rep);
    reply_json(res, http::status::ok, probe_json(*rep, name, o.mailbox, protocol));
}




awaitable<void> Console::poll_device(std::shared_ptr<Console> self, std::string name, std::string mailbox,
                                     std::string device_code, long long interval, long long expires_in) {
    const config::Connection& conn = *self->s_->cfg.find_connection(name);
    auto tls = self->s_->upstream_tls.at(name);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(expires_in + 5);
    Authorization a;
    a.mailbox = mailbox;
    a.state = "failed";
    a.message = "the code expired before anyone signed in: press Authorize again";
    while (std::chrono::steady_clock::now() < deadline) {
        timer.expires_after(std::chrono::seconds(interval));
        error_code ec;
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
        if (self->s_->draining) co_return;
        oauth::Form form = device_poll_form(conn, device_code);
        oauth::HttpResult http = co_await post_form(conn.token_url, form, tls);
        auto body = json::parse(http.body, nullptr, false);
        std::string error = body.is_object() ? body.value("error", "") : "";
        if (http.ok && http.status == 200) {
            std::string problem = co_await self->save_grant(name, mailbox, http);
            a.state = problem.empty() ? "done" : "failed";
            a.message = problem.empty() ? "authorized " + mailbox : problem;
            break;
        }
        if (error == "authorization_pending") continue;
        if (error == "slow_down") {
            interval += 5;
            continue;
        }
        auto tr = oauth::parse_token_response(http);
        const diagnose::Row* row = diagnose::match_token_error(tr.error.code, tr.error.error, tr.error.description);
        a.message = row ? diagnose::advice(*row) : tr.error.summary();
        break;
    }
    spdlog::info("admin console: device code sign-in for connection={} mailbox={}: {}", name, mailbox, a.message);
    self->set_authorization(name, a);
}

}  // namespace xo::server
