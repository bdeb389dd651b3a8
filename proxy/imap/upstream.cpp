#include "imap/upstream.hpp"

#include "diagnose/diagnose.hpp"
#include "imap/parser.hpp"
#include "sasl/sasl.hpp"

namespace xo::imap {

using net::UpstreamError;
using Kind = UpstreamError::Kind;

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls)
    : UpstreamBase(ex, conn, conn.imap, std::move(mailbox), std::move(tokens), std::move(tls)) {}

// Every response is read through ResponseParser (untagged literals skipped).
awaitable<ResponseLine> Upstream::response(error_code& ec) {
    ResponseLine r;
    co_await read_through(parser_, r, ResponseParser::Status::response, ResponseParser::Status::error, ec);
    co_return r;
}

awaitable<bool> Upstream::ask_capabilities(error_code& ec) {
    std::string tag = "x" + std::to_string(++tag_);
    link_.queue(tag + " CAPABILITY\r\n");
    for (;;) {
        ResponseLine r = co_await response(ec);
        if (ec) co_return false;
        if (r.kind == ResponseLine::Kind::untagged && r.status == "CAPABILITY") caps_ = parse_capabilities(r.text);
        if (r.kind == ResponseLine::Kind::tagged && r.tag == tag) co_return r.status == "OK";
    }
}

awaitable<bool> Upstream::open(UpstreamError& err) {
    std::string token;
    if (!co_await connect(token, err)) co_return false;
    error_code ec;
    auto protocol_error = [&](const std::string& what, const ResponseLine& got) {
        return fail(err, Kind::protocol,
                    what + ": " + (ec ? ec.message() : got.status + (got.code.empty() ? "" : " [" + got.code + "]") + " " + got.text));
    };
    ResponseLine g = co_await response(ec);
    if (ec || g.kind != ResponseLine::Kind::untagged || g.status != "OK") co_return protocol_error("greeting", g);
    if (where_.tls == config::UpstreamTls::starttls) {
        if (!co_await ask_capabilities(ec)) co_return protocol_error("CAPABILITY", g);
        if (!caps_.count("STARTTLS"))
            co_return fail(err, Kind::tls, where_.text() + " does not offer STARTTLS; refusing to authenticate in clear");
        link_.queue("x" + std::to_string(++tag_) + " STARTTLS\r\n");
        ResponseLine l = co_await response(ec);
        if (ec || l.kind != ResponseLine::Kind::tagged || l.status != "OK") co_return protocol_error("STARTTLS", l);
        if (!co_await start_tls(err)) co_return false;
    }
    if (!co_await ask_capabilities(ec)) co_return protocol_error("CAPABILITY", g);
    co_return co_await authenticate_with_retry(token, err);
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry, UpstreamError& err) {
    error_code ec;
    const std::string mech = bearer() ? "OAUTHBEARER" : "XOAUTH2";
    if (!caps_.count("AUTH=" + mech))
        co_return fail(err, Kind::auth, where_.text() + " does not offer AUTH=" + mech,
                       "IMAP may be disabled for the mailbox, or the sasl: setting is wrong");
    std::string ir = initial_response(token), detail;
    std::string tag = "x" + std::to_string(++tag_);
    bool sent_ir = caps_.count("SASL-IR") > 0;
    link_.queue(tag + " AUTHENTICATE " + mech + (sent_ir ? " " + ir : "") + "\r\n");
    for (;;) {
        ResponseLine r = co_await response(ec);
        if (ec) co_return fail(err, Kind::protocol, detail + "AUTHENTICATE " + mech + ": " + ec.message());
        if (r.kind == ResponseLine::Kind::continuation) {
            if (!sent_ir) {
                link_.queue(ir + "\r\n");
                sent_ir = true;
            } else {   // Gmail-style error challenge
                if (auto ch = sasl::parse_error_challenge(r.text)) {
                    retry = ch->retry_with_fresh_token;
                    detail = "status " + ch->status + ", ";
                }
                link_.queue(bearer() ? "AQ==\r\n" : "\r\n");
            }
            continue;
        }
        if (r.kind == ResponseLine::Kind::untagged) {
            if (r.status == "CAPABILITY") post_login_caps_ = r.text;
            continue;
        }
        if (r.kind != ResponseLine::Kind::tagged || r.tag != tag) continue;
        if (r.status == "OK") {
            if (r.code.rfind("CAPABILITY ", 0) == 0) post_login_caps_ = r.code.substr(11);
            err = UpstreamError{};
            co_return true;
        }
        co_return fail(err, r.code == "UNAVAILABLE" ? Kind::protocol : Kind::auth,
                       detail + "AUTHENTICATE " + mech + " for " + mailbox_ + " refused: " + r.status +
                           (r.code.empty() ? "" : " [" + r.code + "]") + " " + r.text,
                       diagnose::upstream_reply_advice(r.code + " " + r.text));
    }
}

}  // namespace xo::imap
