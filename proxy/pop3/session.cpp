#include "pop3/session.hpp"

#include <spdlog/spdlog.h>

#include <set>

#include "diagnose/diagnose.hpp"
#include "net/link.hpp"
#include "net/relay.hpp"
#include "net/tls.hpp"
#include "pop3/parser.hpp"
#include "pop3/upstream.hpp"
#include "smtp/sasl.hpp"
#include "net/upstream_base.hpp"

namespace xo::pop3 {
namespace {

using net::UpstreamError;
constexpr int kMaxErrors = 10;
constexpr int kMaxAuthFailures = 3;

class Session {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls)
        : listener_(l), s_(std::move(s)), client_(std::move(socket), std::move(tls)), id_(server::new_session_id()) {
        client_.set_timeout(std::chrono::minutes(10));
        ip_ = client_.remote_address();
        port_ = client_.remote_port();
    }
    awaitable<void> run();

private:
    bool plaintext_ok() const { return server::plaintext_auth_allowed(listener_, client_.tls_active(), ip_); }
    void send(std::string_view s) {
        client_.queue(s);
        client_.queue("\r\n");
    }
    awaitable<bool> login(const std::string& user, const std::string& pass);

    const config::Listener& listener_;
    std::shared_ptr<server::Services> s_;
    net::Link client_;
    std::string id_, ip_, login_;
    uint16_t port_ = 0;
    const config::User* user_ = nullptr;
    std::unique_ptr<Upstream> upstream_;
    uint64_t up_bytes_ = 0, down_bytes_ = 0;
    std::string result_ = "ok", reason_;
};

awaitable<void> Session::run() {
    ++s_->counters.sessions;
    ++s_->counters.sessions_active;
    error_code ec;
    if (listener_.tls == config::ListenerTls::implicit) co_await client_.start_tls(true, "", ec);
    if (!ec) send("+OK xoauth2-proxy ready");
    std::string pending_user;
    int errors = 0, failures = 0;
    while (!ec && !upstream_) {
        if (s_->draining) {
            send("-ERR [SYS/TEMP] Server shutting down");
            reason_ = "shutdown";
            break;
        }
        std::string line = co_await client_.read_line(12288, ec);
        if (ec == asio::error::message_size) {
            ec = {};
            send("-ERR Line too long");
            if (++errors >= kMaxErrors) break;
            continue;
        }
        if (ec) {
            reason_ = ec == beast::error::timeout ? "client idle timeout" : "client disconnected";
            break;
        }
        Command c = parse_command(line);
        if (c.verb == "CAPA") {
            send("+OK Capability list follows");
            send("USER");
            if (plaintext_ok()) send("SASL PLAIN");
            if (listener_.tls == config::ListenerTls::starttls && !client_.tls_active()) send("STLS");
            send("IMPLEMENTATION xoauth2-proxy");
            send(".");
        } else if (c.verb == "QUIT") {
            send("+OK Bye");
            reason_ = "QUIT";
            break;
        } else if (c.verb == "NOOP") {
            send("+OK");
        } else if (c.verb == "STLS") {
            if (listener_.tls != config::ListenerTls::starttls || client_.tls_active()) {
                send("-ERR STLS not available");
                ++errors;
                continue;
            }
            send("+OK Begin TLS negotiation");
            co_await client_.flush(ec);
            if (!ec) co_await client_.start_tls(true, "", ec);
        } else if (c.verb == "USER") {
            if (!plaintext_ok()) send("-ERR [AUTH] Use STLS first");
            else if (c.arg.empty()) send("-ERR Syntax: USER name");
            else pending_user = c.arg, send("+OK");
        } else if (c.verb == "PASS") {
            if (pending_user.empty()) {
                send("-ERR USER first");
                continue;
            }
            std::string user = pending_user;
            pending_user.clear();
            if (!co_await login(user, c.arg) && ++failures >= kMaxAuthFailures) break;
        } else if (c.verb == "AUTH") {
            auto sp = c.arg.find(' ');
            std::string mech = c.arg.substr(0, sp);
            for (auto& ch : mech) ch = char(std::toupper((unsigned char)ch));
            if (mech != "PLAIN") {
                send("-ERR Unsupported mechanism (AUTH PLAIN is offered)");
                continue;
            }
            if (!plaintext_ok()) {
                send("-ERR [AUTH] Use STLS first");
                continue;
            }
            std::string resp = sp == std::string::npos ? "" : c.arg.substr(sp + 1);
            if (resp.empty()) {
                send("+ ");
                resp = co_await client_.read_line(12288, ec);
                if (ec) break;
            }
            auto creds = sasl::decode_plain(resp == "=" ? "" : resp);
            if (!creds) {
                send("-ERR Cannot decode AUTH PLAIN response");
                continue;
            }
            if (!co_await login(creds->authcid, creds->password) && ++failures >= kMaxAuthFailures) break;
        } else {
            send("-ERR Unknown command or not logged in");
            if (++errors >= kMaxErrors) break;
        }
    }
    co_await client_.flush(ec);
    if (upstream_ && !ec) {
        auto r = co_await net::relay(client_, upstream_->link(), std::chrono::minutes(10));
        up_bytes_ = r.client_to_upstream;
        down_bytes_ = r.upstream_to_client;
        reason_ = r.ended_by;
    }
    client_.close();
    if (upstream_) upstream_->link().close();
    --s_->counters.sessions_active;
    const config::Connection* conn = user_ ? s_->cfg.find_connection(user_->connection) : nullptr;
    spdlog::info("pop3 session {} end client={}:{} login={} connection={} mailbox={} upstream={} bytes_in={} "
                 "bytes_out={} result={} reason=\"{}\"",
                 id_, ip_, port_, login_.empty() ? "-" : login_, conn ? conn->name : "-", user_ ? user_->mailbox : "-",
                 conn ? conn->pop3.text() : "-", up_bytes_, down_bytes_, result_, reason_);
}

awaitable<bool> Session::login(const std::string& user, const std::string& pass) {
    login_ = user;
    const config::User* u = co_await server::local_login(s_, client_, ip_, user, pass);
    if (!u) {
        result_ = "authfail";
        reason_ = "authentication failed";
        spdlog::warn("pop3 session {} client={} login={} authentication failed", id_, ip_, user);
        send("-ERR [AUTH] Authentication failed.");
        co_return false;
    }
    user_ = u;
    const config::Connection* conn = s_->cfg.find_connection(u->connection);
    auto tls = conn ? s_->upstream_tls.find(conn->name) : s_->upstream_tls.end();
    if (!conn || !conn->pop3.set() || tls == s_->upstream_tls.end()) {
        send("-ERR [SYS/TEMP] No POP3 server for this account");
        result_ = "tempfail";
        reason_ = "connection " + u->connection + " has no pop3 upstream";
        co_return false;
    }
    auto up = std::make_unique<Upstream>(co_await asio::this_coro::executor, *conn, u->mailbox, s_->tokens, tls->second);
    UpstreamError err;
    auto started = std::chrono::steady_clock::now();
    bool ok = co_await up->open(err);
    s_->counters.observe_upstream_open(std::chrono::steady_clock::now() - started);
    if (!ok) {
        spdlog::error("pop3 session {} connection={} mailbox={} upstream={} {} failure: {}{}{}", id_, conn->name,
                      u->mailbox, conn->pop3.text(), net::to_string(err.kind), err.detail,
                      err.advice.empty() ? "" : "; fix: ", err.advice);
        send("-ERR [SYS/TEMP] Temporary failure: the mail server cannot be reached for this account, try again later");
        result_ = "tempfail";
        reason_ = std::string(net::to_string(err.kind)) + ": " + err.detail;
        co_return false;
    }
    ++s_->counters.auth_ok;
    spdlog::info("pop3 session {} upstream {} open for {} ({}, AUTH {})", id_, conn->pop3.text(), u->mailbox,
                 up->tls_description(), conn->sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2");
    send("+OK Logged in.");
    upstream_ = std::move(up);
    result_ = "ok";
    reason_.clear();
    co_return true;
}

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls));
    co_await session.run();
}

}  // namespace xo::pop3
