// The upstream side of an IMAP session: connect (implicit TLS on 993, or
// STARTTLS on 143, certificate and host name verified), learn the
// capabilities, then AUTHENTICATE XOAUTH2 (OAUTHBEARER with sasl: oauthbearer)
// inline when SASL-IR is offered, else after the "+" continuation. A
// Gmail-style error challenge is answered with an empty line; on status
// 400/401 one fresh token is tried. Every response is read through
// imap::ResponseParser. open() never throws.
#pragma once
#include <set>
#include <string>

#include "asio.hpp"
#include "imap/parser.hpp"
#include "net/upstream_base.hpp"

namespace xo::imap {

class Upstream final : public net::UpstreamBase {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls);
    awaitable<bool> open(net::UpstreamError& err);
    const std::string& capabilities() const { return post_login_caps_; }   // as the server listed them

private:
    awaitable<ResponseLine> response(error_code& ec);
    awaitable<bool> ask_capabilities(error_code& ec);
    awaitable<bool> authenticate(const std::string& token, bool& retry, net::UpstreamError& err) override;

    ResponseParser parser_;
    std::set<std::string> caps_;
    std::string post_login_caps_;
    int tag_ = 0;
};

}  // namespace xo::imap
