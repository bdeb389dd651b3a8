#include "pop3/upstream.hpp"

#include "diagnose/diagnose.hpp"
#include "sasl/sasl.hpp"

namespace xo::pop3 {

using net::UpstreamError;
using Kind = UpstreamError::Kind;

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls)
    : UpstreamBase(ex, conn, conn.pop3, std::move(mailbox), std::move(tokens), std::move(tls)) {}

awaitable<Response> Upstream::read_response(bool multiline, error_code& ec) {
    Response r;
    parser_.expect_multiline(multiline);
    co_await read_through(parser_, r, ResponseParser::Result::response, ResponseParser::Result::error, ec);
    co_return r;
}

awaitable<Response> Upstream::command(std::string_view line, bool multiline, error_code& ec) {
    std::string out(line);
    out += "\r\n";
    link_.queue(out);
    co_return co_await read_response(multiline, ec);
}

awaitable<bool> Upstream::capa(error_code& ec) {
    Response r = co_await command("CAPA", true, ec);
    if (ec || r.status.kind != Status::Kind::ok) co_return false;
    caps_ = Capabilities::from_lines(r.lines);
    co_return true;
}

awaitable<bool> Upstream::open(UpstreamError& err) {
    std::string token;
    if (!co_await connect(token, err)) co_return false;
    error_code ec;
    auto protocol_error = [&](const std::string& what, const Response& r) {
        return fail(err, Kind::protocol, what + ": " + (ec ? ec.message() : "-ERR " + r.status.text));
    };
    Response r = co_await read_response(false, ec);
    if (ec || r.status.kind != Status::Kind::ok) co_return protocol_error("greeting", r);
    if (!co_await capa(ec)) co_return protocol_error("CAPA", r);
    if (where_.tls == config::UpstreamTls::starttls) {
        if (!caps_.has("STLS"))
            co_return fail(err, Kind::tls, where_.text() + " does not offer STLS; refusing to authenticate in clear");
        r = co_await command("STLS", false, ec);
        if (ec || r.status.kind != Status::Kind::ok) co_return protocol_error("STLS", r);
        if (!co_await start_tls(err)) co_return false;
        if (!co_await capa(ec)) co_return protocol_error("CAPA", r);
    }
    co_return co_await authenticate_with_retry(token, err);
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry, UpstreamError& err) {
    error_code ec;
    const std::string mech = bearer() ? "OAUTHBEARER" : "XOAUTH2";
    if (!caps_.has_sasl(mech))
        co_return fail(err, Kind::auth, where_.text() + " does not offer SASL " + mech,
                       "POP may be disabled for the mailbox, or the sasl: setting is wrong");
    std::string detail;
    Response r = co_await command("AUTH " + mech, false, ec);
    if (!ec && r.status.kind == Status::Kind::continuation)
        r = co_await command(initial_response(token), false, ec);
    if (!ec && r.status.kind == Status::Kind::continuation) {   // Gmail-style error challenge
        if (auto ch = sasl::parse_error_challenge(r.status.text)) {
            retry = ch->retry_with_fresh_token;
            detail = "status " + ch->status + ", ";
        }
        r = co_await command(bearer() ? sasl::kOauthbearerErrorAnswer : sasl::kXoauth2ErrorAnswer, false, ec);
    }
    if (ec) co_return fail(err, Kind::protocol, detail + "AUTH " + mech + ": " + ec.message());
    if (r.status.kind == Status::Kind::ok) {
        err = UpstreamError{};
        co_return true;
    }
    co_return fail(err, Kind::auth,
                   detail + "AUTH " + mech + " for " + mailbox_ + " refused: -ERR " +
                       (r.status.code.empty() ? "" : "[" + r.status.code + "] ") + r.status.text,
                   diagnose::upstream_reply_advice(r.status.text));
}

}  // namespace xo::pop3
