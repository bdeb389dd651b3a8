#include "server/console.hpp"

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

namespace http = beast::http;
using json = nlohmann::json;

namespace {

constexpr const char* kCookie = "xo_console";
constexpr auto kSessionLifetime = std::chrono::hours(8);
constexpr std::size_t kMaxSessions = 64;

std::string random_b64url(std::size_t n) {
    std::string b(n, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), int(n));
    return util::base64url_encode(b);
}

bool same(const std::string& a, const std::string& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void reply(HttpResponse& res, http::status st, std::string content_type, std::string body) {
    res.result(st);
    res.set(http::field::content_type, content_type);
    res.body() = std::move(body);
}

void reply_json(HttpResponse& res, http::status st, const json& j) {
    reply(res, st, "application/json", j.dump() + "\n");
}

std::string replace(std::string text, const std::string& what, const std::string& with) {
    auto at = text.find(what);
    if (at != std::string::npos) text.replace(at, what.size(), with);
    return text;
}

std::string html_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}

bool interactive(const config::Connection& c) {
    return c.flow == config::Flow::authorization_code || c.flow == config::Flow::device_code;
}

// S256: base64url of the SHA-256 of the verifier (outside coroutines: g++ 12 and arrays in frames).
std::string pkce_challenge(const std::string& verifier) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
    return util::base64url_encode(std::string_view(reinterpret_cast<char*>(digest), sizeof digest));
}

// The forms and the URL of the interactive flows, built outside coroutines (g++ 12 miscompiles
// braced lists of string literals in coroutine frames).
oauth::Form device_code_form(const config::Connection& conn) {
    return {{"client_id", conn.client_id}, {"scope", conn.scope}};
}

oauth::Form device_poll_form(const config::Connection& conn, const std::string& device_code) {
    oauth::Form form{{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"}, {"client_id", conn.client_id},
                     {"device_code", device_code}};
    if (!conn.client_secret.empty()) form.emplace_back("client_secret", conn.client_secret.value);
    return form;
}

oauth::Form code_exchange_form(const config::Connection& conn, const std::string& code, const std::string& redirect,
                               const std::string& verifier) {
    oauth::Form form{{"grant_type", "authorization_code"}, {"client_id", conn.client_id}, {"code", code},
                     {"redirect_uri", redirect}, {"code_verifier", verifier}, {"scope", conn.scope}};
    if (!conn.client_secret.empty()) form.emplace_back("client_secret", conn.client_secret.value);
    return form;
}

std::string authorize_url(const config::Connection& conn, const std::string& redirect, const std::string& state,
                          const std::string& verifier, const std::string& mailbox) {
    oauth::Form q{{"client_id", conn.client_id}, {"response_type", "code"}, {"redirect_uri", redirect},
                  {"scope", conn.scope}, {"state", state}, {"code_challenge", pkce_challenge(verifier)},
                  {"code_challenge_method", "S256"}, {"login_hint", mailbox}};
    if (conn.provider == config::Provider::google) {
        q.emplace_back("access_type", "offline");
        q.emplace_back("prompt", "consent");
    } else {
        q.emplace_back("response_mode", "query");
    }
    return conn.authorize_url + "?" + oauth::encode_form(q);
}

json probe_json(const cli::ProbeReport& rep, const std::string& name, const std::string& mailbox,
                const std::string& protocol) {
    json steps = json::array();
    for (const auto& st : rep.steps) {
        json sj{{"name", st.name}, {"result", st.result}, {"ms", st.ms}, {"detail", st.detail}};
        if (st.result != "ok") sj["cause"] = st.cause, sj["fix"] = st.fix;
        steps.push_back(sj);
    }
    std::string verdict = rep.ok() ? "OK: connection " + name + " works for " + mailbox + " over " + protocol
                                   : "FAILED at " + rep.failed_at + ": " + rep.cause;
    return {{"ok", rep.ok()}, {"mailbox", mailbox}, {"protocol", protocol}, {"steps", steps}, {"verdict", verdict},
            {"cause", rep.cause}, {"fix", rep.fix}, {"total_ms", rep.total_ms()}};
}

json error_json(const std::string& error, const std::string& advice = "") {
    json j{{"error", error}};
    if (!advice.empty()) j["advice"] = advice;
    return j;
}

awaitable<bool> verify(std::string password, std::string hash) { co_return auth::verify_password(password, hash); }

awaitable<oauth::HttpResult> post_form(std::string url, oauth::Form form, std::shared_ptr<ssl::context> tls) {
    oauth::HttpRequest req;
    req.url = std::move(url);
    req.body = oauth::encode_form(form);
    co_return co_await oauth::http_request(std::move(req), std::move(tls));
}

// The mailbox of a sign-in: the request's, else the one mailbox users map to the connection.
std::string mailbox_for(const config::Config& cfg, const std::string& name, const std::string& body) {
    auto j = json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("mailbox") && j["mailbox"].is_string()) return j["mailbox"].get<std::string>();
    return cli::default_mailbox(cfg, name);
}

}  // namespace

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

void Console::set_authorization(const std::string& name, Authorization a) {
    std::lock_guard lock(mu_);
    authorizations_[name] = std::move(a);
}

oauth::TokenStore* Console::store(bool create, std::string& error) {
    std::lock_guard lock(mu_);
    if (store_) return store_.get();
    struct stat st{};
    if (!create && !config::is_redis_url(s_->cfg.tokens.store) && ::stat(s_->cfg.tokens.store.c_str(), &st) != 0)
        return nullptr;
    try {
        store_ = oauth::make_token_store(s_->cfg.tokens);
    } catch (const std::exception& e) {
        error = e.what();
    }
    return store_.get();
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

awaitable<std::string> Console::save_grant(std::string name, std::string mailbox, oauth::HttpResult http) {
    auto tr = oauth::parse_token_response(http);
    if (!tr.ok()) co_return "the token endpoint refused: " + tr.error.summary() + "; " +
                             diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description);
    if (tr.token->refresh_token.empty()) co_return "no refresh token came back (offline_access / access_type=offline)";
    std::string error;
    oauth::TokenStore* st = store(true, error);
    if (!st) co_return "token store: " + error;
    long long now = diagnose::unix_now();
    try {
        st->put(name, mailbox, oauth::StoredGrant{tr.token->refresh_token, tr.token->scope, now, now});
    } catch (const std::exception& e) {
        co_return std::string("token store: ") + e.what();
    }
    // An access token now, so that the connection shows Active at once.
    oauth::TokenResult check = co_await s_->tokens->get(name, mailbox);
    if (!check.ok()) co_return "stored, but no access token yet: " + check.error.summary();
    co_return "";
}

awaitable<void> Console::authorize(std::string name, std::string body, std::string host, HttpResponse& res) {
    const config::Connection& conn = *s_->cfg.find_connection(name);
    if (!interactive(conn)) {
        reply_json(res, http::status::bad_request,
                   error_json("connection " + name + " uses flow " + config::to_string(conn.flow) +
                              ", which needs no authorization"));
        co_return;
    }
    std::string mailbox = mailbox_for(s_->cfg, name, body);
    if (mailbox.empty()) {
        reply_json(res, http::status::bad_request, error_json("give the mailbox that will sign in"));
        co_return;
    }
    auto tls = s_->upstream_tls.at(name);
    if (conn.flow == config::Flow::device_code) {
        oauth::HttpResult r = co_await post_form(conn.device_code_url, device_code_form(conn), tls);
        auto j = json::parse(r.body, nullptr, false);
        if (!r.ok || r.status != 200 || !j.is_object() || !j.contains("device_code")) {
            auto tr = oauth::parse_token_response(r);
            reply_json(res, http::status::bad_gateway,
                       error_json("the device code endpoint refused: " + tr.error.summary(),
                                  diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description)));
            co_return;
        }
        Authorization a;
        a.mailbox = mailbox;
        a.state = "pending";
        a.user_code = j.value("user_code", "");
        a.verification_uri = j.value("verification_uri", j.value("verification_url", ""));
        long long expires_in = j.value("expires_in", 900LL), interval = std::max(1LL, j.value("interval", 5LL));
        a.message = "open " + a.verification_uri + " and enter the code " + a.user_code + " as " + mailbox;
        set_authorization(name, a);
        spdlog::info("admin console: device code sign-in started for connection={} mailbox={}", name, mailbox);
        asio::co_spawn(co_await asio::this_coro::executor,
                       poll_device(shared_from_this(), name, mailbox, j.value("device_code", ""), interval, expires_in),
                       asio::detached);
        json answer = json::object();
        answer["user_code"] = a.user_code;
        answer["verification_uri"] = a.verification_uri;
        answer["expires_in"] = expires_in;
        reply_json(res, http::status::ok, answer);
        co_return;
    }
    // Authorization code with PKCE, back at this listener's /oauth/callback.
    std::string verifier = random_b64url(32), state = random_b64url(16);
    std::string redirect = "http://" + host + "/oauth/callback";
    std::string url = authorize_url(conn, redirect, state, verifier, mailbox);
    {
        std::lock_guard lock(mu_);
        auto now = std::chrono::steady_clock::now();
        for (auto it = pending_.begin(); it != pending_.end();) it = it->second.expires < now ? pending_.erase(it) : ++it;
        pending_[state] = PendingCode{name, mailbox, verifier, redirect, now + std::chrono::minutes(10)};
    }
    Authorization a;
    a.mailbox = mailbox;
    a.state = "pending";
    a.authorize_url = url;
    a.message = "open the sign-in page and sign in as " + mailbox;
    set_authorization(name, a);
    json answer = json::object();
    answer["authorize_url"] = url;
    reply_json(res, http::status::ok, answer);
}

awaitable<void> Console::callback(std::string target, HttpResponse& res) {
    auto q = target.find('?');
    std::string code, state, error, description;
    for (const auto& [k, v] : oauth::decode_form(q == std::string::npos ? "" : target.substr(q + 1))) {
        if (k == "code") code = v;
        else if (k == "state") state = v;
        else if (k == "error") error = v;
        else if (k == "error_description") description = v;
    }
    PendingCode p;
    bool found = false;
    {
        std::lock_guard lock(mu_);
        auto it = pending_.find(state);
        if (!state.empty() && it != pending_.end() && it->second.expires > std::chrono::steady_clock::now()) {
            p = it->second;
            found = true;
        }
        if (it != pending_.end()) pending_.erase(it);
    }
    auto page = [](const std::string& title, const std::string& text) {
        return "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
               "</title><link rel=\"stylesheet\" href=\"/console.css\"></head><body><main><h1>" + html_escape(title) +
               "</h1><p id=\"result\">" + html_escape(text) + "</p><p><a href=\"/\">Back to the console</a></p></main></body></html>";
    };
    if (!found) {
        reply(res, http::status::bad_request, "text/html; charset=utf-8",
              page("Sign-in refused", "unknown or expired state: start the authorization again from the console"));
        co_return;
    }
    Authorization a;
    a.mailbox = p.mailbox;
    if (code.empty()) {
        a.state = "failed";
        a.message = "the provider answered " + error + ": " + description;
        set_authorization(p.connection, a);
        reply(res, http::status::bad_request, "text/html; charset=utf-8", page("Sign-in failed", a.message));
        co_return;
    }
    const config::Connection& conn = *s_->cfg.find_connection(p.connection);
    oauth::Form form = code_exchange_form(conn, code, p.redirect_uri, p.verifier);
    oauth::HttpResult http = co_await post_form(conn.token_url, form, s_->upstream_tls.at(p.connection));
    std::string problem = co_await save_grant(p.connection, p.mailbox, http);
    a.state = problem.empty() ? "done" : "failed";
    a.message = problem.empty() ? "authorized " + p.mailbox : problem;
    set_authorization(p.connection, a);
    spdlog::info("admin console: authorization code sign-in for connection={} mailbox={}: {}", p.connection, p.mailbox,
                 problem.empty() ? "stored" : problem);
    reply(res, problem.empty() ? http::status::ok : http::status::bad_gateway, "text/html; charset=utf-8",
          page(problem.empty() ? "Authorized" : "Sign-in failed",
               problem.empty() ? p.mailbox + " is authorized for connection " + p.connection : problem));
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
