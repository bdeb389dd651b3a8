// The upstream side of an SMTP session: connect to the connection's submission
// server, EHLO, STARTTLS (required: a server that does not offer it is refused),
// certificate and host name verified, EHLO again, then AUTH XOAUTH2 (or
// OAUTHBEARER) in the two-step form. A Gmail-style error challenge is answered
// with an empty line (or ^A); on status 400/401 one fresh token is tried.
// open() reports what failed in UpstreamError; it never throws.
//
// Pipelined hand-over (RFC 2920): a client session that has written a whole
// message may hand the session on before the final reply is back, so that the
// next transaction's commands go out behind the message in the same round
// trip. The reply it is still owed is an OwedReply: whoever reads from the
// session next reads the owed replies first, in order, and delivers each to
// its owner's executor.
#pragma once
#include <deque>
#include <memory>
#include <string>

#include "asio.hpp"
#include "net/upstream_base.hpp"
#include "smtp/parser.hpp"

namespace xo::smtp {

using UpstreamError = net::UpstreamError;
using net::to_string;

// The final reply to a message whose session was handed on. Filled on the
// owner's executor only (deliver() posts there); the owner waits on `timer`.
struct OwedReply {
    explicit OwedReply(const asio::any_io_executor& ex) : ex(ex), timer(ex) {}
    asio::any_io_executor ex;
    asio::steady_timer timer;
    Reply reply;
    error_code ec;
    bool done = false;
    // The reply, or ec when the session was lost first (beast timeout past `limit`).
    awaitable<Reply> wait(std::chrono::steady_clock::duration limit, error_code& ec);
};

class Upstream final : public net::UpstreamBase {
public:
    Upstream(const asio::any_io_executor& ex, const config::Connection& conn, std::string mailbox,
             std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls, std::string hostname);

    awaitable<bool> open(UpstreamError& err);
    // Sends one command line (without CRLF) and reads its reply.
    awaitable<Reply> command(std::string_view line, error_code& ec);
    // The next reply of this session's own; replies owed to others are read (and delivered) first.
    awaitable<Reply> read_reply(error_code& ec);
    const Capabilities& capabilities() const { return caps_; }
    uint64_t messages() const { return messages_; }   // messages sent whole on this session so far
    void message_sent() { ++messages_; }
    awaitable<void> quit();

    // Pipelined hand-over: the next reply on the wire belongs to `o`'s owner.
    void owe(std::shared_ptr<OwedReply> o) { owed_.push_back(std::move(o)); }
    void unowe() { owed_.pop_back(); }   // the hand-over did not happen: the owner reads it itself
    bool owes() const { return !owed_.empty(); }
    // Reads every reply owed to others and delivers it; on a read error every one
    // still owed gets the error (ec set).
    awaitable<void> settle(error_code& ec);
    ~Upstream() override;   // replies still owed get operation_aborted

private:
    awaitable<bool> authenticate(const std::string& token, bool& retry, UpstreamError& err) override;

    std::string hostname_;
    ReplyParser parser_;
    Capabilities caps_;
    uint64_t messages_ = 0;
    std::deque<std::shared_ptr<OwedReply>> owed_;
};

}  // namespace xo::smtp
