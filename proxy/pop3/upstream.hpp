// The upstream side of a POP3 session: connect (implicit TLS on 995, or STLS
// on 110, certificate and host name verified), CAPA, then AUTH XOAUTH2 (or
// OAUTHBEARER) after the "+" continuation. A Gmail-style error challenge is
// answered with an empty line; on status 400/401 one fresh token is tried.
// Every response is read through pop3::ResponseParser. open() never throws.
#pragma once
#include <string>

#include "asio.hpp"
#include "net/upstream_base.hpp"
#include "pop3/parser.hpp"

namespace xo::pop3 {

class Upstream final : public net::UpstreamBase {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls);
    awaitable<bool> open(net::UpstreamError& err);
    // Sends one command line (without CRLF) and reads its response (multi-line when asked).
    awaitable<Response> command(std::string_view line, bool multiline, error_code& ec);
    const Capabilities& capabilities() const { return caps_; }

private:
    awaitable<Response> read_response(bool multiline, error_code& ec);
    awaitable<bool> capa(error_code& ec);
    awaitable<bool> authenticate(const std::string& token, bool& retry, net::UpstreamError& err) override;

    ResponseParser parser_;
    Capabilities caps_;
};

}  // namespace xo::pop3
