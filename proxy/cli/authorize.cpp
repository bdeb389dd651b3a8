// xoauth2-proxy authorize CONNECTION [--mailbox M] [--device] [--port P]
// The interactive flows' first step. Authorization code with PKCE (S256):
// prints the URL, waits for the browser's redirect on a loopback listener
// (http://127.0.0.1:PORT/callback) or for the redirect address or the code
// pasted on stdin (headless servers), checks `state`, exchanges the code.
// Device code (RFC 8628): prints the code and the page, polls at the given
// interval, honours slow_down, stops on a decline or expiry. The refresh
// token lands encrypted in the token store.
#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <iostream>
#include <thread>

#include "asio.hpp"
#include "cli/commands.hpp"
#include "diagnose/diagnose.hpp"
#include "net/tls.hpp"
#include "oauth/http_client.hpp"
#include "oauth/provider.hpp"
#include "oauth/redis_store.hpp"
#include "oauth/token_store.hpp"
#include "util/base64.hpp"

namespace xo::cli {
namespace {

namespace http = beast::http;

std::string random_b64url(std::size_t n) {
    std::string b(n, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), int(n));
    return util::base64url_encode(b);
}

struct Pending {
    std::optional<std::string> code;
    std::string error;            // set when the answer was an error or a bad state
    std::string advice;           // the diagnosis table's cause and fix for a provider's error
    bool done = false;
    asio::steady_timer* wake = nullptr;
    void finish() {
        done = true;
        if (wake) wake->cancel();
    }
};

// Interprets a redirect's query (from the listener or pasted), or a bare code.
void take_answer(Pending& p, const std::string& input, const std::string& state) {
    std::string query = input;
    auto q = input.find('?');
    bool url_like = q != std::string::npos || input.find("code=") != std::string::npos || input.find("error=") != std::string::npos;
    if (!url_like) {   // a bare code pasted by the admin
        if (!input.empty()) p.code = input;
        p.finish();
        return;
    }
    if (q != std::string::npos) query = input.substr(q + 1);
    std::string code, got_state, error, description;
    for (const auto& [k, v] : oauth::decode_form(query)) {
        if (k == "code") code = v;
        else if (k == "state") got_state = v;
        else if (k == "error") error = v;
        else if (k == "error_description") description = v;
    }
    if (!error.empty()) {
        p.error = error + (description.empty() ? "" : ": " + description);
        // "AADSTS65004: User declined ..." (Microsoft puts its code in the description here).
        std::string aadsts;
        if (description.rfind("AADSTS", 0) == 0) aadsts = description.substr(0, description.find(':'));
        p.advice = diagnose::token_error_advice(aadsts, error, description);
    }
    else if (got_state != state) p.error = "the redirect's state does not match this authorization: refused (a stale or forged redirect)";
    else if (code.empty()) p.error = "the redirect holds no code";
    else p.code = code;
    p.finish();
}

awaitable<void> redirect_listener(std::shared_ptr<tcp::acceptor> acceptor, Pending* p, std::string state) {
    while (!p->done) {
        error_code ec;
        tcp::socket s = co_await acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        beast::tcp_stream stream(std::move(s));
        stream.expires_after(std::chrono::seconds(30));
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        co_await http::async_read(stream, buf, req, asio::redirect_error(use_awaitable, ec));
        if (ec) continue;
        std::string target(req.target());
        if (target.rfind("/callback", 0) != 0) {   // favicon and friends
            http::response<http::string_body> res{http::status::not_found, req.version()};
            res.prepare_payload();
            co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
            continue;
        }
        take_answer(*p, target, state);
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::content_type, "text/html; charset=utf-8");
        res.body() = p->code ? "<html><body><h3>xoauth2-proxy: authorized.</h3>You can close this window.</body></html>"
                             : "<html><body><h3>xoauth2-proxy: authorization failed.</h3>See the terminal.</body></html>";
        res.keep_alive(false);
        res.prepare_payload();
        co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    }
}

awaitable<void> post_form(std::string url, oauth::Form form, std::shared_ptr<ssl::context> tls, oauth::HttpResult* out) {
    oauth::HttpRequest req;
    req.url = std::move(url);
    req.body = oauth::encode_form(form);
    *out = co_await oauth::http_request(std::move(req), tls);
}

oauth::HttpResult post(const std::string& url, const oauth::Form& form, std::shared_ptr<ssl::context> tls) {
    asio::io_context io;
    oauth::HttpResult r;
    asio::co_spawn(io, post_form(url, form, tls, &r), asio::detached);
    io.run();
    return r;
}

int save(oauth::TokenStore& store, const config::Connection& conn, const std::string& mailbox, const oauth::HttpResult& http) {
    auto tr = oauth::parse_token_response(http);
    if (!tr.ok()) {
        std::cerr << "authorize: the token endpoint refused: " << tr.error.summary() << "\n  what to do: "
                  << diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description) << "\n";
        return 1;
    }
    if (tr.token->refresh_token.empty()) {
        std::cerr << "authorize: no refresh token came back: Microsoft needs the scope offline_access; Google needs "
                     "access_type=offline and prompt=consent\n";
        return 1;
    }
    long long now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    try {
        store.put(conn.name, mailbox, oauth::StoredGrant{tr.token->refresh_token, tr.token->scope, now, now});
    } catch (const oauth::StoreError& e) {
        std::cerr << "authorize: " << e.what() << "\n";
        return 1;
    }
    std::cout << "authorized " << mailbox << " for connection " << conn.name << "; refresh token saved (encrypted) in "
              << store.describe() << "\n";
    return 0;
}

int code_flow(const config::Config& cfg, const config::Connection& conn, const std::string& mailbox, uint16_t port,
              oauth::TokenStore& store, std::shared_ptr<ssl::context> tls) {
    asio::io_context io;
    auto acceptor = std::make_shared<tcp::acceptor>(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    port = acceptor->local_endpoint().port();
    std::string redirect = "http://127.0.0.1:" + std::to_string(port) + "/callback";
    std::string verifier = random_b64url(32), state = random_b64url(16);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
    std::string challenge = util::base64url_encode(std::string_view(reinterpret_cast<char*>(digest), sizeof digest));
    oauth::Form q{{"client_id", conn.client_id}, {"response_type", "code"}, {"redirect_uri", redirect},
                  {"scope", conn.scope}, {"state", state}, {"code_challenge", challenge},
                  {"code_challenge_method", "S256"}, {"login_hint", mailbox}};
    if (conn.provider == config::Provider::google) {
        q.emplace_back("access_type", "offline");
        q.emplace_back("prompt", "consent");
    } else {
        q.emplace_back("response_mode", "query");
    }
    std::string url = conn.authorize_url + "?" + oauth::encode_form(q);
    std::cout << "Open this address in a browser and sign in as " << mailbox << ":\n\n  " << url << "\n\n"
              << "Waiting for the browser on " << redirect << " ...\n"
              << "On a headless server: paste the address the browser was sent to (or just the code) and press Enter.\n"
              << std::flush;
    Pending p;
    asio::steady_timer wake(io, std::chrono::minutes(10));
    p.wake = &wake;
    asio::co_spawn(io, redirect_listener(acceptor, &p, state), asio::detached);
    std::thread([&io, &p, state] {
        std::string line;
        if (std::getline(std::cin, line)) {
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
            asio::post(io, [&p, line, state] {
                if (!p.done) take_answer(p, line, state);
            });
        }
    }).detach();
    bool timed_out = false;
    wake.async_wait([&timed_out](error_code ec) { timed_out = !ec; });
    while (!p.done && !timed_out && io.run_one()) {
    }
    error_code ec;
    acceptor->close(ec);
    if (!p.done) {
        std::cerr << "authorize: no answer within 10 minutes\n";
        return 1;
    }
    if (!p.code) {
        std::cerr << "authorize: " << p.error << "\n";
        if (!p.advice.empty()) std::cerr << "  what to do: " << p.advice << "\n";
        return 1;
    }
    oauth::Form form{{"grant_type", "authorization_code"}, {"client_id", conn.client_id}, {"code", *p.code},
                     {"redirect_uri", redirect}, {"code_verifier", verifier}, {"scope", conn.scope}};
    if (!conn.client_secret.empty()) form.emplace_back("client_secret", conn.client_secret.value);
    (void)cfg;
    return save(store, conn, mailbox, post(conn.token_url, form, tls));
}

int device_flow(const config::Connection& conn, const std::string& mailbox, oauth::TokenStore& store,
                std::shared_ptr<ssl::context> tls) {
    auto r = post(conn.device_code_url, {{"client_id", conn.client_id}, {"scope", conn.scope}}, tls);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!r.ok || r.status != 200 || !j.is_object() || !j.contains("device_code")) {
        auto tr = oauth::parse_token_response(r);
        std::cerr << "authorize: the device code endpoint refused: " << tr.error.summary() << "\n";
        return 1;
    }
    std::string device_code = j.value("device_code", ""), user_code = j.value("user_code", "");
    std::string uri = j.value("verification_uri", j.value("verification_url", ""));
    long long expires_in = j.value("expires_in", 900LL), interval = std::max(1LL, j.value("interval", 5LL));
    std::cout << "To sign in as " << mailbox << ", open " << uri << " and enter the code " << user_code << "\n"
              << "The code expires in " << expires_in / 60 << " min " << expires_in % 60 << " s. Waiting (polling every "
              << interval << " s) ...\n"
              << std::flush;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(expires_in + 5);
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::seconds(interval));
        oauth::Form form{{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"}, {"client_id", conn.client_id},
                         {"device_code", device_code}};
        if (!conn.client_secret.empty()) form.emplace_back("client_secret", conn.client_secret.value);
        auto http = post(conn.token_url, form, tls);
        auto body = nlohmann::json::parse(http.body, nullptr, false);
        std::string error = body.is_object() ? body.value("error", "") : "";
        if (http.ok && http.status == 200) return save(store, conn, mailbox, http);
        if (error == "authorization_pending") continue;
        if (error == "slow_down") {
            interval += 5;
            std::cout << "slow_down from the provider: polling every " << interval << " s now\n" << std::flush;
            continue;
        }
        if (error == "authorization_declined") {
            std::cerr << "authorize: the sign-in was declined at the provider; nothing was saved\n  what to do: "
                      << diagnose::token_error_advice("", error, "") << "\n";
            return 1;
        }
        if (error == "expired_token") {
            std::cerr << "authorize: the code expired before anyone signed in; run the command again\n  what to do: "
                      << diagnose::token_error_advice("", error, "") << "\n";
            return 1;
        }
        auto tr = oauth::parse_token_response(http);
        std::cerr << "authorize: " << tr.error.summary() << "\n  what to do: "
                  << diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description) << "\n";
        return 1;
    }
    std::cerr << "authorize: the code expired before anyone signed in; run the command again\n";
    return 1;
}

}  // namespace

int authorize_command(const config::Config& cfg, const std::vector<std::string>& args) {
    std::string name, mailbox;
    bool device = false;
    uint16_t port = 0;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--mailbox" && i + 1 < args.size()) mailbox = args[++i];
        else if (args[i] == "--device") device = true;
        else if (args[i] == "--port" && i + 1 < args.size()) port = uint16_t(std::stoi(args[++i]));
        else if (name.empty() && args[i].rfind("--", 0) != 0) name = args[i];
        else {
            std::cerr << "authorize: unexpected argument '" << args[i] << "'\n";
            return 2;
        }
    }
    const config::Connection* conn = name.empty() ? nullptr : cfg.find_connection(name);
    if (!conn) {
        std::cerr << "usage: xoauth2-proxy authorize CONNECTION [--mailbox ADDRESS] [--device] [--port PORT]\n"
                  << (name.empty() ? "" : "no connection named '" + name + "'\n");
        return 2;
    }
    if (conn->flow != config::Flow::authorization_code && conn->flow != config::Flow::device_code) {
        std::cerr << "authorize: connection " << name << " uses flow " << config::to_string(conn->flow)
                  << ", which needs no authorization (try: xoauth2-proxy token " << name << ")\n";
        return 2;
    }
    if (mailbox.empty()) {   // the one mailbox that users map to this connection
        for (const auto& u : cfg.users)
            if (u.connection == name) {
                if (!mailbox.empty() && mailbox != u.mailbox) {
                    std::cerr << "authorize: several mailboxes use " << name << ": give --mailbox ADDRESS\n";
                    return 2;
                }
                mailbox = u.mailbox;
            }
        if (mailbox.empty()) {
            std::cerr << "authorize: give --mailbox ADDRESS (the mailbox that will sign in)\n";
            return 2;
        }
    }
    std::shared_ptr<oauth::TokenStore> store;
    try {
        store = oauth::make_token_store(cfg.tokens);
    } catch (const std::exception& e) {
        std::cerr << "authorize: " << e.what() << "\n";
        return 1;
    }
    auto tls = net::make_client_context(conn->ca_file);
    if (device || conn->flow == config::Flow::device_code) {
        if (conn->device_code_url.empty()) {
            std::cerr << "authorize: connection " << name << " has no device_code_url\n";
            return 2;
        }
        return device_flow(*conn, mailbox, *store, tls);
    }
    return code_flow(cfg, *conn, mailbox, port, *store, tls);
}

}  // namespace xo::cli
