#include "smtp/upstream.hpp"

#include "diagnose/diagnose.hpp"
#include "sasl/sasl.hpp"

namespace xo::smtp {

using Kind = UpstreamError::Kind;

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls, std::string hostname)
    : UpstreamBase(ex, conn, conn.smtp, std::move(mailbox), std::move(tokens), std::move(tls)),
      hostname_(std::move(hostname)) {}

awaitable<Reply> Upstream::command(std::string_view line, error_code& ec) {
    std::string out(line);
    out += "\r\n";
    link_.queue(out);
    co_return co_await read_reply(ec);
}

namespace {
void deliver(const std::shared_ptr<OwedReply>& o, Reply r, error_code ec) {
    asio::post(o->ex, [o, r = std::move(r), ec]() mutable {
        if (o->done) return;
        o->reply = std::move(r);
        o->ec = ec;
        o->done = true;
        o->timer.cancel();
    });
}
}  // namespace

awaitable<Reply> OwedReply::wait(std::chrono::steady_clock::duration limit, error_code& out) {
    timer.expires_after(limit);
    while (!done) {
        error_code e;
        co_await timer.async_wait(asio::redirect_error(use_awaitable, e));
        if (!e && !done) {   // the limit passed: the session's reader never got to it
            out = beast::error::timeout;
            co_return Reply{};
        }
    }
    out = ec;
    co_return reply;
}

Upstream::~Upstream() {
    for (auto& o : owed_) deliver(o, Reply{}, asio::error::operation_aborted);
}

awaitable<void> Upstream::settle(error_code& ec) {
    while (!owed_.empty() && !ec) {
        Reply r;
        co_await read_through(parser_, r, ReplyParser::Status::reply, ReplyParser::Status::error, ec);
        if (ec) break;
        deliver(owed_.front(), std::move(r), {});
        owed_.pop_front();
    }
    for (auto& o : owed_) deliver(o, Reply{}, ec);
    owed_.clear();
}

awaitable<Reply> Upstream::read_reply(error_code& ec) {
    Reply reply;
    if (!owed_.empty()) co_await settle(ec);
    if (ec) co_return reply;
    co_await read_through(parser_, reply, ReplyParser::Status::reply, ReplyParser::Status::error, ec);
    co_return reply;
}

awaitable<bool> Upstream::open(UpstreamError& err) {
    std::string token;
    if (!co_await connect(token, err)) co_return false;
    error_code ec;
    auto protocol_error = [&](const std::string& what, const Reply& r) {
        return fail(err, Kind::protocol, what + (ec ? ": " + ec.message() : ": " + std::to_string(r.code) + " " + r.text()),
                    diagnose::upstream_reply_advice(std::to_string(r.code) + " " + r.text()));
    };
    Reply r = co_await read_reply(ec);
    if (ec || r.code != 220) co_return protocol_error("greeting", r);
    r = co_await command("EHLO " + hostname_, ec);
    if (ec || r.code != 250) co_return protocol_error("EHLO", r);
    caps_ = Capabilities::from_ehlo(r);
    if (where_.tls == config::UpstreamTls::starttls) {
        if (!caps_.starttls)
            co_return fail(err, Kind::tls, where_.text() + " does not offer STARTTLS; refusing to authenticate in clear",
                           "check the smtp: setting of the connection (port 587 expects STARTTLS)");
        r = co_await command("STARTTLS", ec);
        if (ec || r.code != 220) co_return protocol_error("STARTTLS", r);
        if (!co_await start_tls(err)) co_return false;
        r = co_await command("EHLO " + hostname_, ec);
        if (ec || r.code != 250) co_return protocol_error("EHLO after STARTTLS", r);
        caps_ = Capabilities::from_ehlo(r);
    }
    co_return co_await authenticate_with_retry(token, err);
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry, UpstreamError& err) {
    error_code ec;
    const std::string mech = bearer() ? "OAUTHBEARER" : "XOAUTH2";
    if (!caps_.has_auth(mech))
        co_return fail(err, Kind::auth, where_.text() + " does not offer AUTH " + mech,
                       "SMTP AUTH may be disabled for the tenant or mailbox, or the sasl: setting is wrong");
    std::string detail;
    Reply r = co_await command("AUTH " + mech, ec);
    if (!ec && r.code == 334) r = co_await command(initial_response(token), ec);
    if (!ec && r.code == 334) {
        // Gmail-style error challenge: a JSON status; answer, then read the final reply.
        auto parsed = sasl::parse_error_challenge(r.lines.empty() ? "" : r.lines.front());
        retry = parsed && parsed->retry_with_fresh_token;
        if (parsed) detail = "status " + parsed->status + ", ";
        r = co_await command(bearer() ? "AQ==" : "", ec);
    }
    if (ec) co_return fail(err, Kind::protocol, detail + "AUTH " + mech + ": " + ec.message());
    if (r.code == 235) {
        err = UpstreamError{};
        co_return true;
    }
    co_return fail(err, Kind::auth,
                   detail + "AUTH " + mech + " for " + mailbox_ + " refused: " + std::to_string(r.code) + " " + r.text(),
                   diagnose::upstream_reply_advice(std::to_string(r.code) + " " + r.text()));
}

awaitable<void> Upstream::quit() {
    error_code ec;
    link_.set_timeout(std::chrono::seconds(5));
    co_await command("QUIT", ec);
    link_.close();
}

}  // namespace xo::smtp
