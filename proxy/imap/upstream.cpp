#include "imap/upstream.hpp"

#include "diagnose/diagnose.hpp"
#include "imap/parser.hpp"
#include "net/tls.hpp"
#include "smtp/sasl.hpp"

namespace xo::imap {

using smtp::UpstreamError;

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls)
    : conn_(conn), mailbox_(std::move(mailbox)), tokens_(std::move(tokens)), link_(ex, std::move(tls)) {}

std::string Upstream::description() const {
    return std::string(conn_.imap.tls == config::UpstreamTls::starttls ? "STARTTLS " : "implicit TLS ") +
           link_.tls_version();
}

awaitable<std::string> Upstream::line(error_code& ec) {
    // Untagged lines may carry literals (an ID answer, say): skip their bytes.
    std::string l = co_await link_.read_line(65536, ec);
    while (!ec) {
        auto lit = trailing_literal(l);
        if (!lit || l.empty() || l[0] != '*') break;
        std::size_t left = *lit;
        while (left && !ec) {
            std::string_view d = co_await link_.read_some(ec);
            std::size_t n = std::min(left, d.size());
            link_.consume(n);
            left -= n;
        }
        if (!ec) l += co_await link_.read_line(65536, ec);
    }
    co_return l;
}

awaitable<bool> Upstream::open(UpstreamError& err) {
    auto tr = co_await tokens_->get(conn_.name, mailbox_);
    auto token_error = [&](const oauth::TokenResult& t) {
        err.kind = UpstreamError::Kind::token;
        err.detail = t.error.summary();
        err.advice = diagnose::token_error_advice(t.error.code, t.error.error, t.error.description);
        return false;
    };
    if (!tr.ok()) co_return token_error(tr);
    error_code ec;
    link_.set_timeout(std::chrono::seconds(60));
    co_await link_.connect(conn_.imap.host, conn_.imap.port, ec);
    if (ec) {
        err.kind = UpstreamError::Kind::connect;
        err.detail = "connect " + conn_.imap.text() + ": " + ec.message();
        co_return false;
    }
    auto tls_error = [&]() {
        err.kind = UpstreamError::Kind::tls;
        std::string why = net::verify_error(link_.native_ssl());
        err.detail = "TLS handshake with " + conn_.imap.text() + ": " + (why.empty() ? ec.message() : why);
        return false;
    };
    auto protocol_error = [&](const std::string& what, const std::string& got) {
        err.kind = UpstreamError::Kind::protocol;
        err.detail = what + ": " + (ec ? ec.message() : got);
        return false;
    };
    if (conn_.imap.tls == config::UpstreamTls::implicit) {
        co_await link_.start_tls(false, conn_.imap.host, ec);
        if (ec) co_return tls_error();
    }
    std::string greeting = co_await line(ec);
    ResponseLine g = parse_response_line(greeting);
    if (ec || g.kind != ResponseLine::Kind::untagged || g.status != "OK") co_return protocol_error("greeting", greeting);
    auto ask_capabilities = [&]() -> awaitable<bool> {
        std::string tag = "x" + std::to_string(++tag_);
        link_.queue(tag + " CAPABILITY\r\n");
        for (;;) {
            std::string l = co_await line(ec);
            if (ec) co_return false;
            ResponseLine r = parse_response_line(l);
            if (r.kind == ResponseLine::Kind::untagged && r.status == "CAPABILITY") caps_ = parse_capabilities(r.text);
            if (r.kind == ResponseLine::Kind::tagged && r.tag == tag) co_return r.status == "OK";
        }
    };
    if (conn_.imap.tls == config::UpstreamTls::starttls) {
        if (!co_await ask_capabilities()) co_return protocol_error("CAPABILITY", "refused");
        if (!caps_.count("STARTTLS")) {
            err.kind = UpstreamError::Kind::tls;
            err.detail = conn_.imap.text() + " does not offer STARTTLS; refusing to authenticate in clear";
            co_return false;
        }
        std::string tag = "x" + std::to_string(++tag_);
        link_.queue(tag + " STARTTLS\r\n");
        std::string l = co_await line(ec);
        if (ec || parse_response_line(l).status != "OK") co_return protocol_error("STARTTLS", l);
        co_await link_.start_tls(false, conn_.imap.host, ec);
        if (ec) co_return tls_error();
    }
    if (!co_await ask_capabilities()) co_return protocol_error("CAPABILITY", "refused");
    std::string token = tr.token->access_token;
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool retry = false;
        if (co_await authenticate(token, retry, err)) co_return true;
        if (!retry || attempt == 1) break;
        tokens_->invalidate(conn_.name, mailbox_, token);
        tr = co_await tokens_->get(conn_.name, mailbox_);
        if (!tr.ok()) co_return token_error(tr);
        token = tr.token->access_token;
    }
    co_return false;
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry, UpstreamError& err) {
    error_code ec;
    const bool bearer = conn_.sasl == config::SaslMechanism::oauthbearer;
    const std::string mech = bearer ? "OAUTHBEARER" : "XOAUTH2";
    err.kind = UpstreamError::Kind::auth;
    if (!caps_.count("AUTH=" + mech)) {
        err.detail = conn_.imap.text() + " does not offer AUTH=" + mech;
        err.advice = "IMAP may be disabled for the mailbox, or the sasl: setting is wrong";
        co_return false;
    }
    std::string ir = bearer ? sasl::oauthbearer_initial_response(mailbox_, conn_.imap.host, conn_.imap.port, token)
                            : sasl::xoauth2_initial_response(mailbox_, token);
    std::string tag = "x" + std::to_string(++tag_);
    bool inline_ir = caps_.count("SASL-IR") > 0;
    link_.queue(tag + " AUTHENTICATE " + mech + (inline_ir ? " " + ir : "") + "\r\n");
    bool sent_ir = inline_ir;
    for (;;) {
        std::string l = co_await line(ec);
        if (ec) {
            err.kind = UpstreamError::Kind::protocol;
            err.detail = "AUTHENTICATE " + mech + ": " + ec.message();
            co_return false;
        }
        ResponseLine r = parse_response_line(l);
        if (r.kind == ResponseLine::Kind::continuation) {
            if (!sent_ir) {
                link_.queue(ir + "\r\n");
                sent_ir = true;
            } else {   // Gmail-style error challenge
                if (auto ch = sasl::parse_error_challenge(r.text)) {
                    retry = ch->retry_with_fresh_token;
                    err.detail = "status " + ch->status + ", ";
                }
                link_.queue(bearer ? "AQ==\r\n" : "\r\n");
            }
            continue;
        }
        if (r.kind == ResponseLine::Kind::untagged) {
            if (r.status == "CAPABILITY") post_login_caps_ = r.text;
            continue;
        }
        if (r.kind == ResponseLine::Kind::tagged && r.tag == tag) {
            if (r.status == "OK") {
                if (r.code.rfind("CAPABILITY ", 0) == 0) post_login_caps_ = r.code.substr(11);
                err = UpstreamError{};
                co_return true;
            }
            err.detail += "AUTHENTICATE " + mech + " for " + mailbox_ + " refused: " + r.status +
                          (r.code.empty() ? "" : " [" + r.code + "]") + " " + r.text;
            err.advice = diagnose::upstream_reply_advice(r.code + " " + r.text);
            if (r.code == "UNAVAILABLE") err.kind = UpstreamError::Kind::protocol;
            co_return false;
        }
    }
}

}  // namespace xo::imap
