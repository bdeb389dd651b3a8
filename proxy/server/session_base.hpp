// The skeleton every client session shares, whatever the protocol: the Link,
// the session id, the counters, the listener's session slot, STARTTLS on the
// server side, the idle wait that a shutdown may end, the local login followed
// by opening the upstream (login_and_open), and one end-of-session log line in
// one format with every value escaped. run() is exception-safe: a throw in a
// protocol's serve() becomes a logged fatal reply and the counters stay right.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "asio.hpp"
#include "config/config.hpp"
#include "net/link.hpp"
#include "net/upstream_base.hpp"
#include "server/outcome.hpp"
#include "server/services.hpp"
#include "util/text.hpp"

namespace xo::server {

enum class Result { ok, authfail, tempfail, aborted, error };
const char* to_string(Result r);

// Sessions of one listener: max_sessions in all, max_sessions_per_client from
// one address. A Slot holds one place until it is destroyed. Thread-safe.
class ListenerLoad : public std::enable_shared_from_this<ListenerLoad> {
public:
    ListenerLoad(std::size_t max_sessions, std::size_t max_per_client)
        : max_(max_sessions), max_per_client_(max_per_client) {}
    class Slot {
    public:
        Slot() = default;
        Slot(std::shared_ptr<ListenerLoad> load, std::string ip) : load_(std::move(load)), ip_(std::move(ip)) {}
        Slot(Slot&& o) noexcept = default;
        Slot& operator=(Slot&& o) noexcept;
        ~Slot() { release(); }

    private:
        void release();
        std::shared_ptr<ListenerLoad> load_;
        std::string ip_;
    };
    // A slot, or an empty optional with `why` ("listener full", "too many sessions from IP").
    std::optional<Slot> acquire(const std::string& ip, std::string& why);
    std::size_t active() const { return active_.load(); }

private:
    friend class Slot;
    void release(const std::string& ip);
    std::size_t max_, max_per_client_;
    std::atomic<std::size_t> active_{0};
    std::mutex mu_;
    std::unordered_map<std::string, std::size_t> per_client_;
};

class SessionBase {
public:
    SessionBase(const char* protocol, tcp::socket socket, const config::Listener& listener,
                std::shared_ptr<Services> services, std::shared_ptr<ssl::context> server_tls,
                ListenerLoad::Slot slot);
    virtual ~SessionBase();
    SessionBase(const SessionBase&) = delete;
    SessionBase& operator=(const SessionBase&) = delete;

    awaitable<void> run();

protected:
    virtual awaitable<void> serve() = 0;               // the protocol's dialogue
    virtual std::string fatal_reply() const = 0;       // with CRLF: "421 ...", "* BYE ...", "-ERR ..."
    virtual const config::Upstream& upstream_of(const config::Connection& c) const = 0;
    // Opens and authenticates this protocol's upstream for the mailbox.
    virtual awaitable<bool> open_upstream(const config::Connection& c, const std::string& mailbox,
                                          net::UpstreamError& err) = 0;
    virtual awaitable<void> finish() { co_return; }    // after the client is closed: close the upstream

    // Reads one command line; while it waits the session is idle and a
    // shutdown closes it (reason "shutdown while idle"). Read buffers grown by
    // earlier lines are given back first.
    awaitable<std::string> read_command(std::size_t max_line, error_code& ec);
    // The same for byte-stream readers (IMAP): what is buffered, or one read.
    awaitable<std::string_view> read_input(error_code& ec);
    // The server side of STARTTLS (the reply is queued by the caller) or of implicit TLS.
    awaitable<bool> server_tls();
    // Checks the login locally, then opens the upstream of its connection.
    awaitable<LoginOutcome> login_and_open(std::string login, std::string password);
    // Opens the upstream for (connection, mailbox); `why` for the log line when it fails.
    awaitable<bool> open_for(const config::Connection& conn, const std::string& mailbox, std::string& why);
    // Makes, opens and authenticates an upstream client of type U (smtp::,
    // imap:: or pop3::Upstream; `extra` goes to its constructor after the TLS context).
    template <class U, class... Extra>
    awaitable<bool> open_as(std::unique_ptr<U>& out, const config::Connection& c, std::string mailbox,
                            net::UpstreamError& err, Extra... extra) {
        auto tls = s_->upstream_tls.find(c.name);
        if (tls == s_->upstream_tls.end()) {
            err = {net::UpstreamError::Kind::tls, "connection " + c.name + " has no usable TLS context", ""};
            co_return false;
        }
        auto up = std::make_unique<U>(co_await asio::this_coro::executor, c, mailbox, s_->tokens, tls->second, extra...);
        if (!co_await up->open(err)) co_return false;
        spdlog::info("{} session {} upstream {} open for {} ({}, AUTH {})", protocol_, id_, upstream_of(c).text(),
                     util::log_escape(mailbox), up->tls_description(),
                     c.sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2");
        out = std::move(up);
        co_return true;
    }
    void set_result(Result r, std::string reason);
    bool plaintext_auth_allowed() const;
    bool draining() const { return s_->draining.load(); }

    const char* protocol_;
    const config::Listener& listener_;
    std::shared_ptr<Services> s_;
    net::Link client_;
    ListenerLoad::Slot slot_;
    std::string id_, ip_;
    uint16_t port_ = 0;
    std::string login_;                          // last login tried
    const config::User* user_ = nullptr;         // after a successful login
    const config::Connection* conn_ = nullptr;   // the upstream's connection, once one was tried
    std::string mailbox_;
    uint64_t messages_ = 0, bytes_in_ = 0, bytes_out_ = 0;
    Result result_ = Result::ok;
    std::string reason_;

private:
    void log_end() const;
    uint64_t wait_idle();                 // registers the shutdown closer
    void end_idle(uint64_t closer, const error_code& ec);
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace xo::server
