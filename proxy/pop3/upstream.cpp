#include "pop3/upstream.hpp"

#include "diagnose/diagnose.hpp"
#include "pop3/parser.hpp"
#include "smtp/sasl.hpp"

namespace xo::pop3 {

using net::UpstreamError;

Upstream::Upstream(const asio::any_io_executor& ex, const config::Connection& c, std::string mailbox,
                   std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls)
    : UpstreamBase(ex, c, c.pop3, std::move(mailbox), std::move(tokens), std::move(tls)) {}

awaitable<bool> Upstream::open(UpstreamError& err) {
    std::string token;
    if (!co_await connect(token, err)) co_return false;
    error_code ec;
    auto protocol_error = [&](const std::string& what, const std::string& got) {
        return fail(err, UpstreamError::Kind::protocol, what + ": " + (ec ? ec.message() : got));
    };
    std::string l = co_await link_.read_line(8192, ec);
    if (ec || parse_status(l).kind != Status::Kind::ok) co_return protocol_error("greeting", l);
    if (!co_await capa(ec)) co_return protocol_error("CAPA", "refused");
    if (where_.tls == config::UpstreamTls::starttls) {
        if (!caps_.count("STLS"))
            co_return fail(err, UpstreamError::Kind::tls,
                           where_.text() + " does not offer STLS; refusing to authenticate in clear");
        link_.queue("STLS\r\n");
        l = co_await link_.read_line(8192, ec);
        if (ec || parse_status(l).kind != Status::Kind::ok) co_return protocol_error("STLS", l);
        if (!co_await start_tls(err)) co_return false;
        if (!co_await capa(ec)) co_return protocol_error("CAPA", "refused");
    }
    co_return co_await authenticate_with_retry(token, err);
}

awaitable<std::string> Upstream::command(std::string_view line, error_code& ec) {
    link_.queue(std::string(line) + "\r\n");
    co_return co_await link_.read_line(8192, ec);
}

awaitable<bool> Upstream::capa(error_code& ec) {
    caps_.clear();
    link_.queue("CAPA\r\n");
    std::string l = co_await link_.read_line(8192, ec);
    if (ec || parse_status(l).kind != Status::Kind::ok) co_return false;
    for (int i = 0; i < 200; ++i) {
        l = co_await link_.read_line(8192, ec);
        if (ec) co_return false;
        if (l == ".") co_return true;
        add_capa_line(caps_, l.rfind("..", 0) == 0 ? l.substr(1) : l);
    }
    co_return false;
}

awaitable<bool> Upstream::authenticate(const std::string& token, bool& retry, UpstreamError& err) {
    error_code ec;
    const std::string mech = bearer() ? "OAUTHBEARER" : "XOAUTH2";
    if (!caps_.count("SASL:" + mech))
        co_return fail(err, UpstreamError::Kind::auth, where_.text() + " does not offer SASL " + mech,
                       "POP may be disabled for the mailbox, or the sasl: setting is wrong");
    link_.queue("AUTH " + mech + "\r\n");
    bool sent = false;
    std::string detail;
    for (int i = 0; i < 4; ++i) {
        std::string l = co_await link_.read_line(65536, ec);
        if (ec) break;
        Status st = parse_status(l);
        if (st.kind == Status::Kind::continuation) {
            if (!sent) {
                link_.queue(initial_response(token) + "\r\n");
                sent = true;
            } else {   // Gmail-style error challenge
                if (auto ch = sasl::parse_error_challenge(st.text)) {
                    retry = ch->retry_with_fresh_token;
                    detail = "status " + ch->status + ", ";
                }
                link_.queue(bearer() ? "AQ==\r\n" : "\r\n");
            }
            continue;
        }
        if (st.kind == Status::Kind::ok) {
            err = UpstreamError{};
            co_return true;
        }
        std::string said = (st.code.empty() ? "" : "[" + st.code + "] ") + st.text;
        co_return fail(err, UpstreamError::Kind::auth, detail + "AUTH " + mech + " for " + mailbox_ + " refused: -ERR " + said,
                       diagnose::upstream_reply_advice(said));
    }
    co_return fail(err, UpstreamError::Kind::protocol,
                   detail + "AUTH " + mech + ": " + (ec ? ec.message() : "unexpected answer"));
}

}  // namespace xo::pop3
