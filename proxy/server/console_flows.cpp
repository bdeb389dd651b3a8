// The console's Authorize (device code, authorization code with PKCE) and the
// OAuth callback, with the helpers both console files use.
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
namespace console_detail {


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

json error_json(const std::string& error, const std::string& advice) {
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

}  // namespace console_detail

using namespace console_detail;

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

}  // namespace xo::server
