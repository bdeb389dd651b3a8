// The admin web console, served by the admin listener when admin.password_hash
// is set (otherwise handle() answers nothing and only /healthz, /status and
// /metrics exist). POST /login (form field `password`, scrypt-checked off the
// I/O threads, failures throttled per address) sets an HttpOnly, SameSite=Strict
// session cookie; every POST also needs that session's CSRF token in the
// X-CSRF-Token header (the page carries it in <meta name="csrf">): 401 without
// the cookie, 403 without the token. GET / lists the connections and their
// state (Active, Needs authorization, Failing with cause and fix); per
// connection POST /api/connections/NAME/test runs `xoauth2-proxy test`, and
// POST /api/connections/NAME/authorize starts a device code sign-in
// ({user_code, verification_uri, expires_in}; polled here, the refresh token
// stored encrypted) or an authorization code one ({authorize_url}; the provider
// comes back to /oauth/callback, state and PKCE checked). No secret or token
// is ever part of an answer. Static assets are compiled in; no CDN.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "asio.hpp"
#include "auth/throttle.hpp"
#include "server/services.hpp"

namespace xo::oauth {
class TokenStore;
}

namespace xo::server {

using HttpRequest = beast::http::request<beast::http::string_body>;
using HttpResponse = beast::http::response<beast::http::string_body>;

class Console : public std::enable_shared_from_this<Console> {
public:
    explicit Console(std::shared_ptr<Services> s);
    ~Console();
    bool enabled() const { return !s_->cfg.admin.password_hash.empty(); }
    // Fills `res` and returns true when `req` is the console's; false otherwise.
    awaitable<bool> handle(const HttpRequest& req, HttpResponse& res, std::string ip);

    // Where an interactive sign-in stands, per connection (for the page).
    struct Authorization {
        std::string mailbox, state, message;   // state: pending | done | failed
        std::string user_code, verification_uri, authorize_url;
    };

private:
    struct Session {
        std::string csrf;
        std::chrono::steady_clock::time_point expires;
    };
    struct PendingCode {
        std::string connection, mailbox, verifier, redirect_uri;
        std::chrono::steady_clock::time_point expires;
    };

    awaitable<void> login(const HttpRequest& req, HttpResponse& res, std::string ip);
    awaitable<void> run_test(std::string name, std::string body, HttpResponse& res);
    awaitable<void> authorize(std::string name, std::string body, std::string host, HttpResponse& res);
    awaitable<void> callback(std::string target, HttpResponse& res);
    static awaitable<void> poll_device(std::shared_ptr<Console> self, std::string name, std::string mailbox,
                                       std::string device_code, long long interval, long long expires_in);
    // Stores the refresh token of a successful token response and asks for an access token.
    awaitable<std::string> save_grant(std::string name, std::string mailbox, oauth::HttpResult http);

    std::string session_of(const HttpRequest& req);   // the cookie's session id when valid, else ""
    bool csrf_ok(const HttpRequest& req, const std::string& session);
    std::string connections_json();
    std::string page(const std::string& csrf) const;
    void set_authorization(const std::string& name, Authorization a);
    oauth::TokenStore* store(bool create, std::string& error);

    std::shared_ptr<Services> s_;
    std::mutex mu_;
    std::map<std::string, Session> sessions_;
    std::map<std::string, PendingCode> pending_;          // by state
    std::map<std::string, Authorization> authorizations_; // by connection
    std::shared_ptr<oauth::TokenStore> store_;
    auth::FailureThrottle throttle_;
};

// The compiled-in assets (console_assets.cpp).
extern const char* const kConsoleCss;
extern const char* const kConsoleJs;
extern const char* const kConsolePage;    // "{{CSRF}}" replaced per session
extern const char* const kConsoleLogin;   // "{{MESSAGE}}" replaced

}  // namespace xo::server
