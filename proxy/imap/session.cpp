#include "imap/session.hpp"

#include <spdlog/spdlog.h>

#include "imap/parser.hpp"
#include "imap/upstream.hpp"
#include "net/link.hpp"
#include "net/relay.hpp"
#include "smtp/sasl.hpp"

namespace xo::imap {
namespace {

constexpr std::size_t kLine = 8192;
constexpr int kMaxErrors = 10;
constexpr int kMaxAuthFailures = 3;
constexpr auto kRelayIdle = std::chrono::minutes(35);   // IDLE re-issues every 29 minutes

class Session {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls)
        : listener_(l), s_(std::move(s)), client_(std::move(socket), std::move(tls)), id_(server::new_session_id()) {
        client_.set_timeout(std::chrono::minutes(30));   // RFC 9051: at least 30 minutes
        ip_ = client_.remote_address();
        port_ = client_.remote_port();
    }
    awaitable<void> run();

private:
    bool plaintext_ok() const { return server::plaintext_auth_allowed(listener_, client_.tls_active(), ip_); }
    std::string capabilities() const {
        std::string c = "IMAP4rev1 SASL-IR LITERAL+ ID";
        if (listener_.tls == config::ListenerTls::starttls && !client_.tls_active()) c += " STARTTLS";
        c += plaintext_ok() ? " AUTH=PLAIN" : " LOGINDISABLED";
        return c;
    }
    void send(std::string_view s) {
        client_.queue(s);
        client_.queue("\r\n");
    }
    awaitable<std::optional<Command>> read_command(error_code& ec);
    awaitable<bool> login(const std::string& tag, const std::string& user, const std::string& pass);
    void log_end();

    const config::Listener& listener_;
    std::shared_ptr<server::Services> s_;
    net::Link client_;
    std::string id_, ip_, login_;
    uint16_t port_ = 0;
    const config::User* user_ = nullptr;
    std::unique_ptr<Upstream> upstream_;
    int errors_ = 0, auth_failures_ = 0;
    uint64_t up_bytes_ = 0, down_bytes_ = 0;
    std::string result_ = "ok", reason_;
};

awaitable<std::optional<Command>> Session::read_command(error_code& ec) {
    CommandParser parser;
    for (;;) {
        std::string line = co_await client_.read_line(kLine, ec);
        if (ec == asio::error::message_size) {
            ec = {};
            send("* BAD Line too long");
            ++errors_;
            co_return std::nullopt;
        }
        if (ec) co_return std::nullopt;
        auto st = parser.feed_line(line);
        if (st == CommandParser::Status::complete) co_return parser.take();
        if (st == CommandParser::Status::error) {
            send((parser.tag().empty() ? "*" : parser.tag()) + " BAD " + parser.error());
            ++errors_;
            co_return std::nullopt;
        }
        // A literal follows.
        std::size_t want = parser.literal_size();
        if (parser.literal_synchronizing()) send("+ Ready for literal data");
        std::string data;
        while (data.size() < want) {
            std::string_view chunk = co_await client_.read_some(ec);
            if (ec) co_return std::nullopt;
            std::size_t n = std::min(want - data.size(), chunk.size());
            data.append(chunk.substr(0, n));
            client_.consume(n);
        }
        parser.feed_literal(data);
    }
}

awaitable<void> Session::run() {
    ++s_->counters.sessions;
    ++s_->counters.sessions_active;
    error_code ec;
    if (listener_.tls == config::ListenerTls::implicit) co_await client_.start_tls(true, "", ec);
    if (!ec) send("* OK [CAPABILITY " + capabilities() + "] xoauth2-proxy ready");
    while (!ec && !upstream_) {
        if (s_->draining) {
            send("* BYE Server shutting down");
            reason_ = "shutdown";
            break;
        }
        auto cmd = co_await read_command(ec);
        if (ec) {
            reason_ = ec == beast::error::timeout ? "client idle timeout" : "client disconnected";
            break;
        }
        if (errors_ >= kMaxErrors) {
            send("* BYE Too many errors");
            reason_ = "too many errors";
            result_ = "error";
            break;
        }
        if (!cmd) continue;
        const std::string& t = cmd->tag;
        const std::string& n = cmd->name;
        if (n == "CAPABILITY") {
            send("* CAPABILITY " + capabilities());
            send(t + " OK CAPABILITY completed");
        } else if (n == "NOOP") {
            send(t + " OK NOOP completed");
        } else if (n == "LOGOUT") {
            send("* BYE xoauth2-proxy logging out");
            send(t + " OK LOGOUT completed");
            reason_ = "LOGOUT";
            break;
        } else if (n == "ID") {
            send("* ID (\"name\" \"xoauth2-proxy\" \"version\" \"" XO_VERSION "\")");
            send(t + " OK ID completed");
        } else if (n == "STARTTLS") {
            if (listener_.tls != config::ListenerTls::starttls || client_.tls_active()) {
                send(t + " BAD STARTTLS not available");
                ++errors_;
                continue;
            }
            send(t + " OK Begin TLS negotiation now");
            co_await client_.flush(ec);
            if (!ec) co_await client_.start_tls(true, "", ec);
            if (ec) {
                reason_ = "TLS handshake: " + ec.message();
                result_ = "error";
            }
        } else if (n == "LOGIN") {
            if (!plaintext_ok()) {
                send(t + " NO [PRIVACYREQUIRED] LOGIN needs TLS: use STARTTLS first");
            } else if (cmd->args.size() != 2) {
                send(t + " BAD Syntax: LOGIN user password");
                ++errors_;
            } else if (!co_await login(t, cmd->args[0], cmd->args[1])) {
                if (auth_failures_ >= kMaxAuthFailures) break;
            }
        } else if (n == "AUTHENTICATE") {
            if (cmd->args.empty() || (cmd->args[0] != "PLAIN" && cmd->args[0] != "plain")) {
                send(t + " NO [CANNOT] Unsupported mechanism (AUTHENTICATE PLAIN is offered)");
                continue;
            }
            if (!plaintext_ok()) {
                send(t + " NO [PRIVACYREQUIRED] AUTHENTICATE needs TLS: use STARTTLS first");
                continue;
            }
            std::string resp = cmd->args.size() > 1 ? cmd->args[1] : "";
            if (cmd->args.size() == 1) {
                send("+ ");
                resp = co_await client_.read_line(12288, ec);
                if (ec) break;
            }
            if (resp == "*") {
                send(t + " BAD Authentication cancelled");
                continue;
            }
            auto creds = sasl::decode_plain(resp == "=" ? "" : resp);
            if (!creds) {
                send(t + " BAD Cannot decode AUTHENTICATE PLAIN response");
                ++errors_;
                continue;
            }
            if (!co_await login(t, creds->authcid, creds->password) && auth_failures_ >= kMaxAuthFailures) break;
        } else if (n == "SELECT" || n == "EXAMINE" || n == "LIST" || n == "STATUS" || n == "FETCH" || n == "APPEND") {
            send(t + " NO Log in first");
        } else {
            send(t + " BAD Unknown command");
            ++errors_;
        }
    }
    if (upstream_ && !ec) {
        co_await client_.flush(ec);
        if (!ec) {
            auto r = co_await net::relay(client_, upstream_->link(), kRelayIdle);
            up_bytes_ = r.client_to_upstream;
            down_bytes_ = r.upstream_to_client;
            reason_ = r.ended_by;
        }
    } else {
        co_await client_.flush(ec);
    }
    client_.close();
    if (upstream_) upstream_->link().close();
    --s_->counters.sessions_active;
    log_end();
}

awaitable<bool> Session::login(const std::string& tag, const std::string& user, const std::string& pass) {
    login_ = user;
    const config::User* u = (co_await server::local_login(s_, client_, ip_, user, pass)).user;
    if (!u) {
        ++auth_failures_;
        result_ = "authfail";
        reason_ = "authentication failed";
        spdlog::warn("imap session {} client={} login={} authentication failed", id_, ip_, user);
        send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.");
        co_return false;
    }
    user_ = u;
    const config::Connection* conn = s_->cfg.find_connection(u->connection);
    auto tls = conn ? s_->upstream_tls.find(conn->name) : s_->upstream_tls.end();
    if (!conn || !conn->imap.set() || tls == s_->upstream_tls.end()) {
        send(tag + " NO [UNAVAILABLE] No IMAP server for this account");
        result_ = "tempfail";
        reason_ = "connection " + u->connection + " has no imap upstream";
        co_return false;
    }
    auto up = std::make_unique<Upstream>(co_await asio::this_coro::executor, *conn, u->mailbox, s_->tokens, tls->second);
    net::UpstreamError err;
    auto started = std::chrono::steady_clock::now();
    bool ok = co_await up->open(err);
    s_->counters.observe_upstream_open(std::chrono::steady_clock::now() - started);
    if (!ok) {
        spdlog::error("imap session {} connection={} mailbox={} upstream={} {} failure: {}{}{}", id_, conn->name,
                      u->mailbox, conn->imap.text(), net::to_string(err.kind), err.detail,
                      err.advice.empty() ? "" : "; fix: ", err.advice);
        send(tag + " NO [UNAVAILABLE] Temporary failure: the mail server cannot be reached for this account, try again later");
        result_ = "tempfail";
        reason_ = std::string(net::to_string(err.kind)) + ": " + err.detail;
        co_return false;
    }
    ++s_->counters.auth_ok;
    spdlog::info("imap session {} upstream {} open for {} ({}, AUTHENTICATE {})", id_, conn->imap.text(), u->mailbox,
                 up->tls_description(), conn->sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2");
    std::string caps = up->capabilities();
    send(tag + " OK " + (caps.empty() ? "" : "[CAPABILITY " + caps + "] ") + "Logged in");
    upstream_ = std::move(up);
    result_ = "ok";
    reason_.clear();
    co_return true;
}

void Session::log_end() {
    spdlog::info("imap session {} end client={}:{} login={} connection={} mailbox={} upstream={} bytes_in={} "
                 "bytes_out={} result={} reason=\"{}\"",
                 id_, ip_, port_, login_.empty() ? "-" : login_, user_ ? user_->connection : "-",
                 user_ ? user_->mailbox : "-",
                 user_ && s_->cfg.find_connection(user_->connection) ? s_->cfg.find_connection(user_->connection)->imap.text() : "-",
                 up_bytes_, down_bytes_, result_, reason_);
}

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls));
    co_await session.run();
}

}  // namespace xo::imap
