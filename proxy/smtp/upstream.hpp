// The upstream side of an SMTP session: connect to the connection's submission
// server, EHLO, STARTTLS (required: a server that does not offer it is refused),
// certificate and host name verified, EHLO again, then AUTH XOAUTH2 (or
// OAUTHBEARER) in the two-step form. A Gmail-style error challenge is answered
// with an empty line (or ^A); on status 400/401 one fresh token is tried.
// open() reports what failed in UpstreamError; it never throws.
#pragma once
#include <string>

#include "asio.hpp"
#include "net/upstream_base.hpp"
#include "smtp/parser.hpp"

namespace xo::smtp {

using UpstreamError = net::UpstreamError;
using net::to_string;

class Upstream final : public net::UpstreamBase {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls, std::string hostname);

    awaitable<bool> open(UpstreamError& err);
    // Sends one command line (without CRLF) and reads its reply.
    awaitable<Reply> command(std::string_view line, error_code& ec);
    awaitable<Reply> read_reply(error_code& ec);
    const Capabilities& capabilities() const { return caps_; }
    uint64_t messages() const { return messages_; }   // accepted by this session so far
    void message_sent() { ++messages_; }
    awaitable<void> quit();

private:
    awaitable<bool> authenticate(const std::string& token, bool& retry, UpstreamError& err) override;

    std::string hostname_;
    ReplyParser parser_;
    Capabilities caps_;
    uint64_t messages_ = 0;
};

}  // namespace xo::smtp
