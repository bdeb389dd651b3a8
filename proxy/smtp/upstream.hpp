// The upstream side of an SMTP session: connect to the connection's submission
// server, EHLO, STARTTLS (required: a server without it is refused), verify its
// certificate and host name, EHLO again, then AUTH XOAUTH2 (or OAUTHBEARER) in
// the two-step form with a token from the cache. A Gmail-style error challenge
// is answered with an empty line (or ^A); on status 400/401 the token is
// dropped, a fresh one fetched and AUTH tried once more.
// open() reports what failed in UpstreamError; it never throws.
#pragma once
#include <string>

#include "asio.hpp"
#include "config/config.hpp"
#include "net/link.hpp"
#include "oauth/token_cache.hpp"
#include "smtp/parser.hpp"

namespace xo::smtp {

struct UpstreamError {
    enum class Kind { none, token, connect, tls, auth, protocol } kind = Kind::none;
    std::string detail;   // for the log: the provider's or server's words
    std::string advice;   // what the admin should change, when known
};
const char* to_string(UpstreamError::Kind);

class Upstream {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls,
             std::string hostname);

    awaitable<bool> open(UpstreamError& err);
    // Sends one command line (without CRLF) and reads its reply.
    awaitable<Reply> command(std::string_view line, error_code& ec);
    awaitable<Reply> read_reply(error_code& ec);
    net::Link& link() { return link_; }
    const Capabilities& capabilities() const { return caps_; }
    std::string endpoint() const { return conn_.smtp.text(); }
    std::string tls_description() const;   // "STARTTLS TLSv1.3" etc.
    awaitable<void> quit();

private:
    awaitable<bool> authenticate(const std::string& token, bool& retry_with_fresh, UpstreamError& err);

    config::Connection conn_;
    std::string mailbox_;
    std::shared_ptr<oauth::TokenCache> tokens_;
    std::string hostname_;
    net::Link link_;
    ReplyParser parser_;
    Capabilities caps_;
};

}  // namespace xo::smtp
