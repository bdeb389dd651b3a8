#include "smtp/session.hpp"

#include <spdlog/spdlog.h>

#include "net/link.hpp"
#include "smtp/parser.hpp"
#include "smtp/sasl.hpp"
#include "smtp/upstream.hpp"
#include "util/base64.hpp"

namespace xo::smtp {
namespace {

constexpr std::size_t kCommandLine = 4096;
constexpr std::size_t kAuthLine = 12288;   // RFC 4954 section 4
constexpr int kMaxErrors = 10;
constexpr int kMaxAuthFailures = 3;

class Session {
public:
    Session(tcp::socket socket, const config::Listener& listener, std::shared_ptr<server::Services> services,
            std::shared_ptr<ssl::context> server_tls)
        : listener_(listener), s_(std::move(services)),
          client_(std::move(socket), std::move(server_tls)), id_(server::new_session_id()) {
        client_.set_timeout(listener_.idle_timeout);
        ip_ = client_.remote_address();
        port_ = client_.remote_port();
        for (const auto& n : listener_.trusted_networks)
            if (n.contains(ip_)) trusted_ = true;
    }

    awaitable<void> run();

private:
    void reply(std::string_view text) {
        client_.queue(text);
        client_.queue("\r\n");
    }
    void reset_transaction() {
        in_mail_ = false;
        recipients_ = 0;
    }
    bool auth_allowed() const { return server::plaintext_auth_allowed(listener_, client_.tls_active(), ip_); }
    awaitable<bool> handle(const std::string& line);
    void ehlo(const std::string& arg, bool extended);
    awaitable<void> auth(const std::string& arg);
    awaitable<std::optional<std::string>> auth_response(std::string_view prompt);
    awaitable<bool> open_upstream(const config::Connection& conn, const std::string& mailbox, std::string& why);
    awaitable<void> mail(const std::string& arg);
    awaitable<void> rcpt(const std::string& arg);
    awaitable<bool> data();
    // PIPELINING towards the upstream: MAIL/RCPT (and DATA) the client sent in
    // one go are sent on in one go; their replies are read, in order, here.
    void send_pipelined(const std::string& line, char kind);
    awaitable<bool> resolve_pending();
    bool pipelining() const { return upstream_ && upstream_->capabilities().pipelining && client_.has_line(); }
    awaitable<void> drop_upstream(bool polite);
    void log_end();

    const config::Listener& listener_;
    std::shared_ptr<server::Services> s_;
    net::Link client_;
    std::string id_, ip_;
    std::string login_;                         // last login tried
    uint16_t port_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);   // false once run() ended
    bool trusted_ = false;
    bool greeted_ = false;
    const config::User* user_ = nullptr;        // after AUTH
    const config::Connection* conn_ = nullptr;  // the upstream's connection
    std::string mailbox_;
    std::unique_ptr<Upstream> upstream_;
    bool in_mail_ = false;
    std::string pending_;                       // kinds of upstream replies still to read: 'M', 'R', 'D'
    Reply data_reply_;                          // the DATA reply read by resolve_pending()
    int recipients_ = 0;
    int errors_ = 0, auth_failures_ = 0;
    uint64_t messages_ = 0, bytes_ = 0;
    std::string result_ = "ok", reason_;
};

awaitable<void> Session::run() {
    ++s_->counters.sessions;
    ++s_->counters.sessions_active;
    error_code ec;
    if (listener_.tls == config::ListenerTls::implicit) {
        co_await client_.start_tls(true, "", ec);
        if (ec) {
            result_ = "error";
            reason_ = "TLS handshake: " + ec.message();
        }
    }
    if (!ec) {
        reply("220 " + s_->hostname + " ESMTP xoauth2-proxy");
        for (;;) {
            if (s_->draining && !in_mail_) {
                reply("421 4.3.2 Service shutting down, try again later");
                reason_ = "shutdown";
                break;
            }
            std::string line;
            if (client_.has_line()) {
                line = co_await client_.read_line(kCommandLine, ec);
            } else {
                // Waiting for the client: a shutdown may close us here (no message in flight).
                co_await client_.flush(ec);
                if (ec) break;
                auto ex = co_await asio::this_coro::executor;
                // Runs on this session's strand; `alive_` tells whether the Link still exists.
                uint64_t closer = s_->register_idle_closer([ex, link = &client_, alive = alive_] {
                    asio::post(ex, [link, alive] {
                        if (*alive) link->close();
                    });
                });
                line = co_await client_.read_line(kCommandLine, ec);
                s_->unregister_idle_closer(closer);
                if (ec && s_->draining) {
                    reason_ = "shutdown while idle";
                    break;
                }
            }
            if (ec == asio::error::message_size) {
                ec = {};
                reply("500 5.5.6 Line too long");
                if (++errors_ >= kMaxErrors) break;
                continue;
            }
            if (ec) {
                if (reason_.empty()) reason_ = ec == beast::error::timeout ? "client idle timeout" : "client disconnected";
                if (in_mail_ || ec == beast::error::timeout) result_ = "aborted";
                break;
            }
            if (!co_await handle(line)) break;
            if (errors_ >= kMaxErrors) {
                reply("421 4.7.0 Too many errors, closing connection");
                result_ = "error";
                reason_ = "too many errors";
                break;
            }
        }
    }
    co_await client_.flush(ec);
    client_.close();
    co_await drop_upstream(true);
    --s_->counters.sessions_active;
    log_end();
    *alive_ = false;
}

awaitable<bool> Session::handle(const std::string& line) {
    ParsedCommand cmd = parse_command(line);
    if (!pending_.empty() && cmd.verb != Verb::Rcpt && cmd.verb != Verb::Data) co_await resolve_pending();
    switch (cmd.verb) {
        case Verb::Ehlo:
        case Verb::Helo:
            if (cmd.arg.empty()) {
                reply("501 5.5.4 Syntax: " + std::string(cmd.verb == Verb::Ehlo ? "EHLO" : "HELO") + " hostname");
                ++errors_;
                co_return true;
            }
            ehlo(cmd.arg, cmd.verb == Verb::Ehlo);
            co_return true;
        case Verb::Starttls: {
            if (listener_.tls != config::ListenerTls::starttls || client_.tls_active()) {
                reply("502 5.5.1 STARTTLS not available");
                ++errors_;
                co_return true;
            }
            reply("220 2.0.0 Ready to start TLS");
            error_code ec;
            co_await client_.flush(ec);
            if (!ec) co_await client_.start_tls(true, "", ec);
            if (ec) {
                result_ = "error";
                reason_ = "TLS handshake: " + ec.message();
                co_return false;
            }
            greeted_ = false;   // RFC 3207: forget everything learned before TLS
            reset_transaction();
            co_return true;
        }
        case Verb::Auth:
            co_await auth(cmd.arg);
            if (auth_failures_ < kMaxAuthFailures) co_return true;
            reason_ = "too many authentication failures";
            co_return false;
        case Verb::Mail: co_await mail(cmd.arg); co_return true;
        case Verb::Rcpt: co_await rcpt(cmd.arg); co_return true;
        case Verb::Data: co_return co_await data();
        case Verb::Rset:
            if (upstream_ && in_mail_) {
                error_code ec;
                Reply r = co_await upstream_->command("RSET", ec);
                if (ec || r.code / 100 != 2) co_await drop_upstream(false);
            }
            reset_transaction();
            reply("250 2.0.0 Ok");
            co_return true;
        case Verb::Noop: reply("250 2.0.0 Ok"); co_return true;
        case Verb::Vrfy: reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"); co_return true;
        case Verb::Help: reply("214 2.0.0 Commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS"); co_return true;
        case Verb::Quit:
            reply("221 2.0.0 Bye");
            if (reason_.empty()) reason_ = "QUIT";
            co_return false;
        case Verb::Bdat: reply("502 5.5.1 BDAT not supported"); ++errors_; co_return true;
        case Verb::Unknown: break;
    }
    reply("500 5.5.2 Command not recognized");
    ++errors_;
    co_return true;
}

void Session::ehlo(const std::string& arg, bool extended) {
    (void)arg;
    reset_transaction();
    greeted_ = true;
    if (!extended) {
        reply("250 " + s_->hostname);
        return;
    }
    std::string r = "250-" + s_->hostname + " greets you\r\n250-PIPELINING\r\n250-SIZE " +
                    std::to_string(listener_.max_message_size) + "\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n";
    if (listener_.tls == config::ListenerTls::starttls && !client_.tls_active()) r += "250-STARTTLS\r\n";
    if (auth_allowed() && !user_) r += "250-AUTH PLAIN LOGIN\r\n";
    r += "250 HELP";
    reply(r);
}

awaitable<std::optional<std::string>> Session::auth_response(std::string_view prompt) {
    reply(std::string("334 ") + std::string(prompt));
    error_code ec;
    std::string line = co_await client_.read_line(kAuthLine, ec);
    if (ec == asio::error::message_size) {
        reply("500 5.5.6 Authentication exchange line is too long");
        co_return std::nullopt;
    }
    if (ec) co_return std::nullopt;
    if (line == "*") {
        reply("501 5.0.0 Authentication cancelled");
        co_return std::nullopt;
    }
    co_return line;
}

awaitable<void> Session::auth(const std::string& arg) {
    if (user_) { reply("503 5.5.1 Already authenticated"); ++errors_; co_return; }
    if (in_mail_) { reply("503 5.5.1 AUTH not allowed during a mail transaction"); ++errors_; co_return; }
    if (!greeted_) { reply("503 5.5.1 Send EHLO first"); ++errors_; co_return; }
    if (!auth_allowed()) { reply("538 5.7.11 Encryption required for requested authentication mechanism"); ++errors_; co_return; }
    auto sp = arg.find(' ');
    std::string mech = arg.substr(0, sp);
    for (auto& c : mech) c = char(std::toupper((unsigned char)c));
    std::string initial = sp == std::string::npos ? "" : arg.substr(sp + 1);
    std::string login, password;
    if (mech == "PLAIN") {
        if (initial.empty()) {
            auto r = co_await auth_response("");
            if (!r) co_return;
            initial = *r;
        }
        auto creds = sasl::decode_plain(initial == "=" ? "" : initial);
        if (!creds) { reply("501 5.5.2 Cannot decode AUTH PLAIN response"); ++errors_; co_return; }
        login = creds->authcid;
        password = creds->password;
    } else if (mech == "LOGIN") {
        // (no co_await inside ?: -- g++ 12 miscompiles it)
        std::optional<std::string> user_b64;
        if (initial.empty()) user_b64 = co_await auth_response(sasl::kLoginUsernamePrompt);
        else user_b64 = initial;
        if (!user_b64) co_return;
        auto pass_b64 = co_await auth_response(sasl::kLoginPasswordPrompt);
        if (!pass_b64) co_return;
        auto u = util::base64_decode(*user_b64);
        auto p = util::base64_decode(*pass_b64);
        if (!u || !p) { reply("501 5.5.2 Cannot decode AUTH LOGIN response"); ++errors_; co_return; }
        login = *u;
        password = *p;
    } else {
        reply("504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)");
        ++errors_;
        co_return;
    }
    login_ = login;
    const config::User* user = (co_await server::local_login(s_, client_, ip_, login, password)).user;
    if (!user) {
        ++auth_failures_;
        spdlog::warn("session {} client={} login={} authentication failed", id_, ip_, login);
        reply("535 5.7.8 Authentication credentials invalid");
        result_ = "authfail";
        reason_ = "authentication failed";
        co_return;
    }
    if (result_ == "authfail") result_ = "ok";
    const config::Connection* conn = s_->cfg.find_connection(user->connection);
    std::string why = "connection " + user->connection + " is not configured";
    bool opened = false;   // (no co_await inside || -- g++ 12)
    if (conn) opened = co_await open_upstream(*conn, user->mailbox, why);
    if (!opened) {
        // The client's password was right: the fault is on our side or upstream,
        // and the sender must keep the message.
        reply("454 4.7.0 Temporary authentication failure: upstream unavailable for " + user->mailbox);
        result_ = "tempfail";
        reason_ = why;
        co_return;
    }
    user_ = user;
    ++s_->counters.auth_ok;
    reply("235 2.7.0 Authentication successful");
}

awaitable<bool> Session::open_upstream(const config::Connection& conn, const std::string& mailbox, std::string& why) {
    co_await drop_upstream(true);
    auto tls = s_->upstream_tls.find(conn.name);
    if (tls == s_->upstream_tls.end()) {
        why = "connection " + conn.name + " has no usable TLS context";
        co_return false;
    }
    auto up = std::make_unique<Upstream>(co_await asio::this_coro::executor, conn, mailbox, s_->tokens, tls->second,
                                         s_->hostname);
    UpstreamError err;
    conn_ = &conn;   // for the session's log line, whatever happens
    mailbox_ = mailbox;
    auto started = std::chrono::steady_clock::now();
    bool opened = co_await up->open(err);
    s_->counters.observe_upstream_open(std::chrono::steady_clock::now() - started);
    if (!opened) {
        why = std::string(to_string(err.kind)) + ": " + err.detail;
        spdlog::error("session {} connection={} mailbox={} upstream={} {} failure: {}{}{}", id_, conn.name, mailbox,
                      conn.smtp.text(), to_string(err.kind), err.detail, err.advice.empty() ? "" : "; fix: ",
                      err.advice);
        co_return false;
    }
    spdlog::info("session {} upstream {} open for {} ({}, AUTH {})", id_, conn.smtp.text(), mailbox,
                 up->tls_description(), conn.sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2");
    upstream_ = std::move(up);
    co_return true;
}

awaitable<void> Session::drop_upstream(bool polite) {
    if (!upstream_) co_return;
    if (polite) co_await upstream_->quit();
    else upstream_->link().close();
    upstream_.reset();
}

awaitable<void> Session::mail(const std::string& arg) {
    if (!greeted_) { reply("503 5.5.1 Send EHLO/HELO first"); ++errors_; co_return; }
    if (in_mail_) { reply("503 5.5.1 Nested MAIL command"); ++errors_; co_return; }
    auto path = parse_mail_from(arg);
    if (!path.ok()) { reply(path.error); ++errors_; co_return; }
    std::string params;
    for (const auto& [k, v] : path.path.params) {
        if (k == "SIZE") {
            if (std::strtoull(v.c_str(), nullptr, 10) > listener_.max_message_size) {
                reply("552 5.3.4 Message size exceeds fixed maximum message size");
                co_return;
            }
        }
        if (k == "AUTH") continue;   // our AUTH identity is not the upstream's
        params += " " + k + (v.empty() ? "" : "=" + v);
    }
    if (!user_) {
        if (!trusted_) { reply("530 5.7.0 Authentication required"); co_return; }
        const config::Sender* map = s_->cfg.find_sender(path.path.address);
        if (!map) {
            spdlog::warn("session {} client={} trusted sender <{}> maps to no connection", id_, ip_, path.path.address);
            reply("550 5.7.1 Sender <" + path.path.address + "> is not mapped to a connection");
            co_return;
        }
        const config::Connection* conn = s_->cfg.find_connection(map->connection);
        std::string mailbox = map->mailbox.empty() ? path.path.address : map->mailbox;
        if (!upstream_ || conn != conn_ || mailbox != mailbox_) {
            std::string why = "connection " + map->connection + " is not configured";
            bool opened = false;
            if (conn) opened = co_await open_upstream(*conn, mailbox, why);
            if (!opened) {
                reply("451 4.7.0 Temporary failure: upstream unavailable for " + mailbox + ", try again later");
                result_ = "tempfail";
                reason_ = why;
                co_return;
            }
        }
    } else if (!upstream_) {
        std::string why;
        if (!co_await open_upstream(*s_->cfg.find_connection(user_->connection), user_->mailbox, why)) {
            reply("451 4.7.0 Temporary failure: upstream unavailable, try again later");
            result_ = "tempfail";
            reason_ = why;
            co_return;
        }
    }
    const auto& caps = upstream_->capabilities();
    bool wants_utf8 = false;
    for (const auto& [k, v] : path.path.params) if (k == "SMTPUTF8") wants_utf8 = true;
    if (wants_utf8 && !caps.smtputf8) {
        reply("555 5.6.7 The upstream server does not support SMTPUTF8");
        co_return;
    }
    send_pipelined("MAIL FROM:<" + path.path.address + ">" + params, 'M');
    if (!pipelining()) co_await resolve_pending();
}

void Session::send_pipelined(const std::string& line, char kind) {
    upstream_->link().queue(line);
    upstream_->link().queue("\r\n");
    pending_ += kind;
}

awaitable<bool> Session::resolve_pending() {
    error_code ec;
    co_await upstream_->link().flush(ec);
    while (!pending_.empty()) {
        char kind = pending_.front();
        Reply r;
        if (!ec) r = co_await upstream_->read_reply(ec);
        if (ec) {   // one reply per command the client sent, whatever happened
            for (std::size_t i = 0; i < pending_.size(); ++i)
                reply("451 4.4.2 Upstream connection lost, try again later");
            reason_ = "upstream lost: " + ec.message();
            pending_.clear();
            reset_transaction();
            co_await drop_upstream(false);
            co_return false;
        }
        pending_.erase(0, 1);
        if (kind == 'D') {   // the caller streams the message after a 354
            data_reply_ = r;
            continue;
        }
        client_.queue(r.wire());
        if (kind == 'M' && r.code / 100 == 2) in_mail_ = true;
        if (kind == 'R' && r.code / 100 == 2) ++recipients_;
        if (r.code == 421) {
            for (std::size_t i = 0; i < pending_.size(); ++i) reply("421 4.4.2 Upstream closed the connection");
            pending_.clear();
            reset_transaction();
            co_await drop_upstream(false);
            co_return false;
        }
    }
    co_return true;
}

awaitable<void> Session::rcpt(const std::string& arg) {
    auto path = parse_rcpt_to(arg);
    if (!path.ok() || (!in_mail_ && pending_.find('M') == std::string::npos)) {
        // A local answer: the upstream's answers to what came before go first.
        if (!pending_.empty()) co_await resolve_pending();
        reply(path.ok() ? "503 5.5.1 Need MAIL before RCPT" : path.error);
        ++errors_;
        co_return;
    }
    std::string params;
    for (const auto& [k, v] : path.path.params) params += " " + k + (v.empty() ? "" : "=" + v);
    send_pipelined("RCPT TO:<" + path.path.address + ">" + params, 'R');
    if (!pipelining()) co_await resolve_pending();
}

awaitable<bool> Session::data() {
    error_code ec;
    Reply r;
    if (!pending_.empty() && pending_.find('M') != std::string::npos) {
        // Pipelined MAIL/RCPT/DATA: DATA goes with them; the upstream decides
        // (it answers 554/503 itself when no recipient was accepted).
        send_pipelined("DATA", 'D');
        if (!co_await resolve_pending()) co_return true;
        r = data_reply_;
    } else {
        if (!pending_.empty()) {   // (no co_await inside && -- g++ 12)
            bool ok = co_await resolve_pending();
            if (!ok) co_return true;
        }
        if (!in_mail_) { reply("503 5.5.1 Need MAIL command"); ++errors_; co_return true; }
        if (recipients_ == 0) { reply("554 5.5.1 No valid recipients"); co_return true; }
        r = co_await upstream_->command("DATA", ec);
        if (ec) {
            reply("451 4.4.2 Upstream connection lost, try again later");
            co_await drop_upstream(false);
            reset_transaction();
            co_return true;
        }
    }
    if (r.code != 354) {
        client_.queue(r.wire());
        reset_transaction();
        co_return true;
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    DataScanner scanner;
    std::string out;
    bool upstream_ok = true, too_big = false;
    std::string upstream_error;
    upstream_->link().set_timeout(std::chrono::minutes(10));
    for (;;) {
        std::string_view chunk = co_await client_.read_some(ec);
        if (ec) {
            // The client went away mid-message: the upstream never sees the final
            // dot, so nothing is delivered; the client was told nothing either.
            reason_ = "client lost during DATA: " + ec.message();
            result_ = "aborted";
            co_await drop_upstream(false);
            co_return false;
        }
        out.clear();
        auto res = scanner.feed(chunk, out);
        client_.consume(res.consumed);
        if (!too_big && scanner.message_bytes() > listener_.max_message_size) {
            too_big = true;
            upstream_ok = false;
            upstream_error = "message larger than " + std::to_string(listener_.max_message_size) + " bytes";
            upstream_->link().close();
        }
        if (upstream_ok && !out.empty()) {
            error_code uec;
            co_await upstream_->link().write(out, uec);
            if (uec) {
                upstream_ok = false;
                upstream_error = "upstream lost during DATA: " + uec.message();
            }
        }
        if (res.done) break;
    }
    reset_transaction();
    if (too_big) {
        reply("552 5.3.4 Message size exceeds fixed maximum message size");
        ++s_->counters.messages_refused;
        co_await drop_upstream(false);
        co_return true;
    }
    if (upstream_ok) {
        r = co_await upstream_->read_reply(ec);
        if (ec) {
            upstream_ok = false;
            upstream_error = "upstream lost before its final reply: " + ec.message();
        }
    }
    upstream_->link().set_timeout(std::chrono::minutes(5));
    if (!upstream_ok) {
        reply("451 4.4.2 Upstream connection lost during data transfer, message not accepted, try again later");
        ++s_->counters.messages_failed;
        reason_ = upstream_error;
        result_ = "tempfail";
        spdlog::warn("session {} connection={} {}", id_, conn_->name, upstream_error);
        co_await drop_upstream(false);
        co_return true;
    }
    client_.queue(r.wire());
    if (r.code / 100 == 2) {
        ++messages_;
        bytes_ += scanner.message_bytes();
        ++s_->counters.messages_relayed;
        s_->counters.bytes_relayed += scanner.message_bytes();
    } else {
        ++s_->counters.messages_refused;
        spdlog::info("session {} upstream refused message at end of data: {} {}", id_, r.code, r.text());
    }
    co_return true;
}

void Session::log_end() {
    const config::User* u = user_;
    spdlog::info("session {} end client={}:{} login={} connection={} mailbox={} upstream={} messages={} bytes={} "
                 "result={} reason=\"{}\"",
                 id_, ip_, port_, u ? u->login : (!login_.empty() ? login_ : trusted_ ? "(trusted)" : "-"),
                 conn_ ? conn_->name : (u ? u->connection : "-"), !mailbox_.empty() ? mailbox_ : (u ? u->mailbox : "-"),
                 conn_ ? conn_->smtp.text() : "-", messages_, bytes_, result_, reason_);
}

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls));
    co_await session.run();
}

}  // namespace xo::smtp
