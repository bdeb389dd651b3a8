// What opening an upstream session has in common across SMTP, IMAP and POP3:
// a token from the cache, the TCP connection, TLS (implicit at once, or after
// the protocol's STARTTLS) with the certificate and host name verified, and
// the XOAUTH2 attempt retried once with a fresh token when the server's error
// challenge asks for it. Each protocol's client derives and supplies
// authenticate(); failures are described in UpstreamError, never thrown.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "asio.hpp"
#include "config/config.hpp"
#include "net/link.hpp"
#include "oauth/token_cache.hpp"

namespace xo::net {

struct UpstreamError {
    enum class Kind { none, token, connect, tls, auth, protocol } kind = Kind::none;
    std::string detail;   // for the log: the provider's or server's words
    std::string advice;   // what the admin should change, when known
};
const char* to_string(UpstreamError::Kind);

class UpstreamBase {
public:
    virtual ~UpstreamBase() = default;
    Link& link() { return link_; }
    // When the token this session authenticated with expires (a pooled session retires before).
    std::chrono::steady_clock::time_point token_expires_at() const { return token_expires_; }
    std::string tls_description() const;   // "STARTTLS TLSv1.3" / "implicit TLS TLSv1.3"
    // Called as open() passes "connect", "tls" and "authenticate" (for `xoauth2-proxy test`).
    void observe_steps(std::function<void(const char* step)> f) { on_step_ = std::move(f); }

protected:
    UpstreamBase(const asio::any_io_executor& ex, const config::Connection& conn, const config::Upstream& where,
                 std::string mailbox, std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls);

    // Token, TCP connection, and TLS right away when the upstream wants implicit TLS.
    awaitable<bool> connect(std::string& token, UpstreamError& err);
    // The TLS handshake after the protocol's STARTTLS / STLS was accepted.
    awaitable<bool> start_tls(UpstreamError& err);
    // authenticate(token); on a retryable refusal: drop the token, fetch a fresh one, once more.
    awaitable<bool> authenticate_with_retry(std::string token, UpstreamError& err);
    virtual awaitable<bool> authenticate(const std::string& token, bool& retry, UpstreamError& err) = 0;

    // The one read loop of the three protocols: feeds what arrives to `parser`
    // (the protocol's reply or response parser, the only reader of upstream
    // bytes) until it has one whole `out` (`whole`); `failed`, or a read
    // error, sets `ec`.
    template <class Parser, class Out, class Status>
    awaitable<void> read_through(Parser& parser, Out& out, Status whole, Status failed, error_code& ec) {
        for (;;) {
            std::string_view data = co_await link_.read_some(ec);
            if (ec) co_return;
            std::string_view rest = data;
            const Status st = parser.feed(rest, out);
            link_.consume(data.size() - rest.size());
            if (st == whole) co_return;
            if (st == failed) {
                ec = asio::error::invalid_argument;
                co_return;
            }
        }
    }

    bool fail(UpstreamError& err, UpstreamError::Kind kind, std::string detail, std::string advice = "");
    void step(const char* name) {
        if (on_step_) on_step_(name);
    }
    bool bearer() const { return conn_.sasl == config::SaslMechanism::oauthbearer; }
    // The SASL initial response for this connection's mechanism.
    std::string initial_response(const std::string& token) const;

    config::Connection conn_;
    config::Upstream where_;
    std::string mailbox_;
    std::shared_ptr<oauth::TokenCache> tokens_;
    Link link_;
    std::function<void(const char*)> on_step_;
    std::chrono::steady_clock::time_point token_expires_ = std::chrono::steady_clock::time_point::max();
};

}  // namespace xo::net
