// The upstream side of a POP3 session: connect (POP3S on 995, or STLS on 110,
// certificate and host name verified), CAPA, then AUTH XOAUTH2 (OAUTHBEARER
// with sasl: oauthbearer) after the "+" continuation. A Gmail-style error
// challenge is answered with an empty line; on status 400/401 one fresh token
// is tried. open() reports what failed in UpstreamError; it never throws.
#pragma once
#include <set>
#include <string>

#include "asio.hpp"
#include "net/upstream_base.hpp"

namespace xo::pop3 {

class Upstream final : public net::UpstreamBase {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& c, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls);

    awaitable<bool> open(net::UpstreamError& err);
    // Sends one command line (without CRLF) and returns the status line ("+OK 2 320").
    awaitable<std::string> command(std::string_view line, error_code& ec);

private:
    awaitable<bool> capa(error_code& ec);
    awaitable<bool> authenticate(const std::string& token, bool& retry, net::UpstreamError& err) override;

    std::set<std::string> caps_;
};

}  // namespace xo::pop3
