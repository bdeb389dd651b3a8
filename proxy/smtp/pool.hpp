// Authenticated SMTP upstream sessions per (connection, mailbox), shared by
// every client session of that mailbox (Exchange Online allows 3 at once and
// answers the fourth 432 4.3.2). acquire() hands out an idle session, or room
// to open a new one while fewer than the cap exist, or waits in a fair queue
// for at most upstream_wait; release() takes a session back after a
// transaction (RSET state) and gives it to the first waiter or keeps it idle
// for at most upstream_idle. A session is retired after upstream_max_messages
// or a minute before its token expires. Thread-safe; waiters are woken on
// their own executors. A session handed to another client session keeps the
// I/O executor (strand) it was opened on; that is safe because every
// operation's completion, Beast's timeout handler included, runs on the
// executor of the coroutine that started it (async_base::get_executor), and a
// pooled session is used by one client session at a time.
// Pipelined hand-over: pass_on() gives a session whose final reply to a
// message is still due straight to the first waiter (the reply travels as an
// OwedReply, see upstream.hpp), so that the waiter's commands follow the
// message without a round trip in between. A session that owes replies never
// sits idle: release() reads them first.
#pragma once
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "asio.hpp"
#include "smtp/upstream.hpp"

namespace xo::smtp {

struct PoolLimits {
    std::size_t max_sessions = 3;   // 0: no cap
    std::chrono::steady_clock::duration wait = std::chrono::seconds(60);
    std::chrono::steady_clock::duration idle = std::chrono::seconds(30);
    std::size_t max_messages = 100;
};

class UpstreamPool : public std::enable_shared_from_this<UpstreamPool> {
public:
    explicit UpstreamPool(PoolLimits limits) : limits_(limits) {}

    struct Lease {
        std::unique_ptr<Upstream> up;   // an idle authenticated session, or
        bool room = false;              // room to open one (then release() or forfeit())
        bool ok() const { return up || room; }   // neither: the wait timed out
    };
    awaitable<Lease> acquire();
    // Back after a transaction. `reusable`: the session is authenticated and in
    // RSET state; otherwise it is closed.
    // A session that still owes replies to others is settled first (in a coroutine of its own).
    void release(std::unique_ptr<Upstream> up, bool reusable);
    // Hands `up` (which owes its holder's final reply) to the first waiter, if one
    // waits and the session may serve again; else false and `up` stays with the caller.
    bool pass_on(std::unique_ptr<Upstream>& up);
    void forfeit();   // room from acquire() not used, or a session that was lost
    // A reload changed this pool's connection: idle sessions close now, the
    // ones in use close when they come back.
    void retire();
    // Closes every idle session: one of them was found closed by the server (restarted, or
    // cutting idle connections), so the others, opened to the same server, likely are too.
    void drop_idle();

    // The warm AUTH path: true when every session of the pool is in use and one
    // came back healthy within upstream_idle (as long as an idle session is
    // trusted without a probe): the mailbox's upstream is proven, and a login
    // need not take a session from the clients with mail to send.
    // `smtputf8`: whether those sessions' server offers SMTPUTF8.
    bool busy_and_proven(bool& smtputf8) const;

    std::size_t open_sessions() const;   // idle + in use + being opened
    std::size_t idle_sessions() const;
    std::size_t waiting() const;

private:
    struct Waiter {
        asio::any_io_executor ex;
        std::shared_ptr<asio::steady_timer> timer;
        std::unique_ptr<Upstream> up;
        bool room = false, done = false;
    };
    bool usable(const Upstream& up, std::chrono::steady_clock::time_point now) const;
    void proved(const Upstream& up);   // `up` came back healthy: busy_and_proven() trusts it (mu_ held)
    void hand_over(std::unique_lock<std::mutex>& lock, std::unique_ptr<Upstream> up);   // to a waiter, or idle
    static awaitable<void> settle_then_release(std::shared_ptr<UpstreamPool> self, std::unique_ptr<Upstream> up,
                                               bool reusable);
    void sweep(std::chrono::steady_clock::time_point now);   // closes idle sessions past their time (mu_ held)
    void schedule_sweep(const asio::any_io_executor& ex);

    PoolLimits limits_;
    mutable std::mutex mu_;
    std::size_t total_ = 0;
    struct Idle {
        std::unique_ptr<Upstream> up;
        std::chrono::steady_clock::time_point since;
    };
    std::vector<Idle> idle_;                      // most recently used last
    std::deque<std::shared_ptr<Waiter>> waiters_;
    bool sweep_scheduled_ = false;
    bool retired_ = false;
    std::chrono::steady_clock::time_point proven_{};   // a session last came back healthy
    bool smtputf8_ = false;                            // ... from a server offering SMTPUTF8
};

// One pool per (connection, mailbox), made on first use. Shared by the
// configurations a reload replaces: a pool is found by the connection's
// smtp_identity(), so a connection the reload leaves alone keeps its pool
// (and the provider's per-mailbox cap holds across the reload).
// An UpstreamPool that is never given a session (only acquire() for room and
// forfeit()) is a fair, bounded-wait counting semaphore: the IMAP listener
// uses it to keep to max_imap_sessions per mailbox.
class PoolRegistry {
public:
    // The SMTP pool of (c, mailbox), keyed by c.smtp_identity().
    std::shared_ptr<UpstreamPool> get(const config::Connection& c, const std::string& mailbox);
    // The pool of (identity, mailbox), made with `limits` on first use.
    std::shared_ptr<UpstreamPool> get(const std::string& identity, const std::string& mailbox, const PoolLimits& limits);
    // After a reload: pools whose identity is not in `keep` are retired.
    void retain(const std::set<std::string>& keep);
    void retain(const config::Config& cfg);   // keeps the connections' smtp_identity()

private:
    std::mutex mu_;
    std::map<std::string, std::shared_ptr<UpstreamPool>> pools_;
};

}  // namespace xo::smtp
