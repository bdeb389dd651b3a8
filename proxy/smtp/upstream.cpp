#include "smtp/upstream.hpp"

#include <spdlog/spdlog.h>

#include "diagnose/diagnose.hpp"
#include "net/tls.hpp"
#include "smtp/sasl.hpp"

namespace xo::smtp {

const char* to_string(UpstreamError::Kind k) {
    switch (k) {
        case UpstreamError::Kind::none: return "none";
        case UpstreamError::Kind::token: return "token";
        case UpstreamError::Kind::connect: return "connect";
        case UpstreamError::Kind::tls: return "tls";
        case UpstreamError::Kind::auth: return "auth";
        case UpstreamError::Kind::protocol: return "protocol";
    }
    return "?";
}

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls,
                   std::string hostname)
    : conn_(conn), mailbox_(std::move(mailbox)), tokens_(std::move(tokens)), hostname_(std::move(hostname)),
      link_(ex, std::move(tls)) {}

std::string Upstream::tls_description() const {
    std::string how = conn_.smtp.tls == config::UpstreamTls::starttls ? "STARTTLS " : "implicit TLS ";
    return how + link_.tls_version();
}

awaitable<Reply> Upstream::command(std::string_view line, error_code& ec) {
    std::string out(line);
    out += "\r\n";
    link_.queue(out);
    co_return co_await read_reply(ec);
}

awaitable<bool> Upstream::open(UpstreamError& err) {
    // The token first: without one there is no point in connecting.
    auto tr = co_await tokens_->get(conn_.name, mailbox_);
    if (!tr.ok()) {
        err.kind = UpstreamError::Kind::token;
        err.detail = tr.error.summary();
        err.advice = diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description);
        co_return false;
    }
    error_code ec;
    link_.set_timeout(std::chrono::seconds(60));
    co_await link_.connect(conn_.smtp.host, conn_.smtp.port, ec);
    if (ec) {
        err.kind = UpstreamError::Kind::connect;
        err.detail = "connect " + conn_.smtp.text() + ": " + ec.message();
        co_return false;
    }
    auto protocol_error = [&](const std::string& what, const Reply& r) {
        err.kind = UpstreamError::Kind::protocol;
        err.detail = what + (ec ? ": " + ec.message() : ": " + std::to_string(r.code) + " " + r.text());
        err.advice = diagnose::upstream_reply_advice(r.text());
        return false;
    };
    if (conn_.smtp.tls == config::UpstreamTls::implicit) {
        co_await link_.start_tls(false, conn_.smtp.host, ec);
        if (ec) {
            err.kind = UpstreamError::Kind::tls;
            std::string why = net::verify_error(link_.native_ssl());
            err.detail = "TLS handshake with " + conn_.smtp.text() + ": " + (why.empty() ? ec.message() : why);
            co_return false;
        }
    }
    Reply r = co_await read_reply(ec);
    if (ec || r.code != 220) co_return protocol_error("greeting", r);
    r = co_await command("EHLO " + hostname_, ec);
    if (ec || r.code != 250) co_return protocol_error("EHLO", r);
    caps_ = Capabilities::from_ehlo(r);
    if (conn_.smtp.tls == config::UpstreamTls::starttls) {
        if (!caps_.starttls) {
            err.kind = UpstreamError::Kind::tls;
            err.detail = conn_.smtp.text() + " does not offer STARTTLS; refusing to authenticate in clear";
            err.advice = "check the smtp: setting of the connection (port 587 expects STARTTLS)";
            co_return false;
        }
        r = co_await command("STARTTLS", ec);
        if (ec || r.code != 220) co_return protocol_error("STARTTLS", r);
        co_await link_.start_tls(false, conn_.smtp.host, ec);
        if (ec) {
            err.kind = UpstreamError::Kind::tls;
            std::string why = net::verify_error(link_.native_ssl());
            err.detail = "TLS handshake with " + conn_.smtp.text() + ": " + (why.empty() ? ec.message() : why);
            err.advice = "the server's certificate must be valid for " + conn_.smtp.host +
                         " and signed by a CA in the system store or the connection's ca_file";
            co_return false;
        }
        r = co_await command("EHLO " + hostname_, ec);
        if (ec || r.code != 250) co_return protocol_error("EHLO after STARTTLS", r);
        caps_ = Capabilities::from_ehlo(r);
    }
    std::string token = tr.token->access_token;
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool retry = false;
        if (co_await authenticate(token, retry, err)) co_return true;
        if (!retry || attempt == 1) break;
        tokens_->invalidate(conn_.name, mailbox_, token);
        tr = co_await tokens_->get(conn_.name, mailbox_);
        if (!tr.ok()) {
            err.kind = UpstreamError::Kind::token;
            err.detail = tr.error.summary();
            err.advice = diagnose::token_error_advice(tr.error.code, tr.error.error, tr.error.description);
            co_return false;
        }
        token = tr.token->access_token;
    }
    co_return false;
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry_with_fresh, UpstreamError& err) {
    error_code ec;
    const bool bearer = conn_.sasl == config::SaslMechanism::oauthbearer;
    const char* mech = bearer ? "OAUTHBEARER" : "XOAUTH2";
    err.kind = UpstreamError::Kind::auth;
    if (!caps_.has_auth(mech)) {
        err.detail = conn_.smtp.text() + " does not offer AUTH " + mech;
        err.advice = "SMTP AUTH may be disabled for the tenant or mailbox, or the sasl: setting is wrong";
        co_return false;
    }
    Reply r = co_await command(std::string("AUTH ") + mech, ec);
    if (!ec && r.code == 334) {
        std::string ir = bearer ? sasl::oauthbearer_initial_response(mailbox_, conn_.smtp.host, conn_.smtp.port, token)
                                : sasl::xoauth2_initial_response(mailbox_, token);
        r = co_await command(ir, ec);
    }
    if (!ec && r.code == 334) {
        // Gmail-style error challenge: a JSON status; answer, then read the final reply.
        std::string challenge = r.lines.empty() ? "" : r.lines.front();
        auto parsed = sasl::parse_error_challenge(challenge);
        retry_with_fresh = parsed && parsed->retry_with_fresh_token;
        r = co_await command(bearer ? "AQ==" : "", ec);
        if (parsed) err.detail = "status " + parsed->status + ", ";
    }
    if (ec) {
        err.kind = UpstreamError::Kind::protocol;
        err.detail += "AUTH " + std::string(mech) + ": " + ec.message();
        co_return false;
    }
    if (r.code == 235) {
        err = UpstreamError{};
        co_return true;
    }
    err.detail += "AUTH " + std::string(mech) + " for " + mailbox_ + " refused: " + std::to_string(r.code) + " " + r.text();
    err.advice = diagnose::upstream_reply_advice(std::to_string(r.code) + " " + r.text());
    co_return false;
}

awaitable<void> Upstream::quit() {
    error_code ec;
    link_.set_timeout(std::chrono::seconds(5));
    co_await command("QUIT", ec);
    link_.close();
}

}  // namespace xo::smtp

namespace xo::smtp {
awaitable<Reply> Upstream::read_reply(error_code& ec) {
    Reply reply;
    for (;;) {
        std::string_view data = co_await link_.read_some(ec);
        if (ec) co_return reply;
        std::string_view rest = data;
        auto st = parser_.feed(rest, reply);
        link_.consume(data.size() - rest.size());
        if (st == ReplyParser::Status::reply) co_return reply;
        if (st == ReplyParser::Status::error) {
            ec = asio::error::invalid_argument;
            co_return reply;
        }
    }
}
}  // namespace xo::smtp
