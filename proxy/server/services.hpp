// What every session shares: the configuration, the token cache, local
// credential checks and failure throttling, the upstream TLS contexts (one per
// connection, built once), and the counters the admin listener reports.
// Built by make_services() at start and again at each reload (SIGHUP): a
// session keeps the Services it started with for its life, new sessions get
// the newest; the counters are shared by all of them. Read-only after
// construction except for the parts that lock themselves (token cache,
// authenticator, throttle, metrics).
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>

#include "asio.hpp"
#include "auth/authenticator.hpp"
#include "auth/throttle.hpp"
#include "config/config.hpp"
#include "net/link.hpp"
#include "oauth/token_cache.hpp"
#include "smtp/api_send.hpp"
#include "smtp/pool.hpp"

namespace xo::server {

struct Counters {
    std::atomic<uint64_t> sessions{0}, sessions_active{0};
    std::atomic<uint64_t> auth_ok{0}, auth_failed{0};
    std::atomic<uint64_t> messages_relayed{0}, messages_refused{0}, messages_failed{0};
    std::atomic<uint64_t> bytes_relayed{0};
    // Upstream open latency histogram (seconds), for /metrics.
    static constexpr std::array<double, 8> kBuckets{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    std::array<std::atomic<uint64_t>, 8> upstream_open_buckets{};
    std::atomic<uint64_t> upstream_open_count{0}, upstream_open_micros{0};
    void observe_upstream_open(std::chrono::steady_clock::duration d) {
        double secs = std::chrono::duration<double>(d).count();
        for (std::size_t i = 0; i < kBuckets.size(); ++i)
            if (secs <= kBuckets[i]) {
                ++upstream_open_buckets[i];
                break;
            }
        ++upstream_open_count;
        upstream_open_micros += uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    }
};

struct Services {
    // `counters`: those of the Services this one replaces (a reload), so the
    // metrics and the count of running sessions span every generation.
    explicit Services(std::shared_ptr<Counters> counters = nullptr)
        : shared_counters(counters ? std::move(counters) : std::make_shared<Counters>()), counters(*shared_counters) {}
    Services(const Services&) = delete;
    Services& operator=(const Services&) = delete;

    std::shared_ptr<Counters> shared_counters;
    config::Config cfg;
    std::shared_ptr<oauth::TokenCache> tokens;
    std::unique_ptr<auth::Authenticator> authenticator;
    auth::FailureThrottle throttle;
    std::map<std::string, std::shared_ptr<ssl::context>> upstream_tls;   // by connection name
    // Authenticated SMTP upstream sessions per (connection, mailbox); the same
    // registry in every generation (a reload keeps the pools of unchanged connections).
    std::shared_ptr<smtp::PoolRegistry> smtp_pools;
    // max_imap_sessions per mailbox: room-only pools (counting semaphores), by imap_identity().
    std::shared_ptr<smtp::PoolRegistry> imap_slots;
    // send_via graph / gmail_api: concurrent API requests per mailbox; the
    // send_via: auto connections that moved to Graph (535 5.7.139) until the next reload.
    std::shared_ptr<smtp::api::ApiGate> api_gate = std::make_shared<smtp::api::ApiGate>();
    smtp::api::SwitchedConnections api_switched;
    std::string hostname;
    Counters& counters;   // *shared_counters
    asio::thread_pool kdf_pool{1};   // password hashing off the I/O threads
    // Checks queued on or running in kdf_pool. At most kdf_max_pending (a KDF
    // costs ~50 ms, so a cold login waits at most ~0.4 s); addresses that
    // failed recently may fill only half of it. Over the bound: "busy" at once.
    std::atomic<int> kdf_pending{0};
    int kdf_max_pending = 8;
    // Cold checks running, by login: a second check for the same login waits
    // for the first (then usually hits the credential cache) instead of taking
    // a slot, so 50 sessions of one device starting at once cost one KDF.
    struct KdfFlight;
    std::mutex kdf_mu;
    std::map<std::string, std::shared_ptr<KdfFlight>> kdf_flights;

    // Shutdown (SIGTERM): sessions register a closer for while they wait for a
    // command; drain() sets `draining` and closes the waiting ones, so only
    // sessions in the middle of a message keep running (to their reply).
    std::atomic<bool> draining{false};
    uint64_t register_idle_closer(std::function<void()> close);
    void unregister_idle_closer(uint64_t id);
    void drain();

private:
    std::mutex closers_mu_;
    uint64_t next_closer_ = 1;
    std::map<uint64_t, std::function<void()>> closers_;
};

// Throws std::runtime_error when a connection's CA file cannot be loaded.
// `previous`: the Services being replaced by a reload (its counters carry on).
std::shared_ptr<Services> make_services(const config::Config& cfg, std::vector<std::string>& problems,
                                        const std::shared_ptr<Services>& previous = nullptr);

// The Services new sessions get (and the admin listener reports): swapped by a
// reload while running sessions keep theirs. Thread-safe.
class CurrentServices {
public:
    explicit CurrentServices(std::shared_ptr<Services> s) : s_(std::move(s)) {}
    std::shared_ptr<Services> get() const {
        std::lock_guard lock(mu_);
        return s_;
    }
    void set(std::shared_ptr<Services> s) {
        std::lock_guard lock(mu_);
        s_ = std::move(s);
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<Services> s_;
};

// "1a2b3c4d": short random session ids for log lines.
std::string new_session_id();

// The answer to a local login: the user, or nullptr for a wrong password or
// unknown login; `busy` when it was not checked at all (the password-hashing
// queue is full, or the service is under attack and this address failed
// recently): a temporary failure for the client, not a wrong password.
struct LoginResult {
    const config::User* user = nullptr;
    bool busy = false;
};

// Checks a local login off the I/O threads (a KDF costs milliseconds); a login
// verified before is answered from the authenticator's cache without the hop;
// while a check for the same login runs, waits for it first (at most 2 s).
// Callers run on a strand or a single-threaded executor (sessions do).
// `limit`: the most checks that may be pending in kdf_pool, this one included;
// beyond it the answer is busy at once.
awaitable<LoginResult> check_login(std::shared_ptr<Services> s, std::string login, std::string password, int limit);

// One attempt from `ip` without any delay: refused as busy under attack for an
// address that failed recently, else checked (addresses that failed recently
// get half the queue); keeps the throttle and the counters.
awaitable<LoginResult> attempt_login(std::shared_ptr<Services> s, std::string ip, std::string login,
                                     std::string password);

// A session's local login, whatever the protocol: waits first when `ip` failed
// repeatedly (after sending the client what is queued), then attempt_login().
awaitable<LoginResult> local_login(std::shared_ptr<Services> s, net::Link& client, std::string ip,
                                   std::string login, std::string password);

bool is_loopback(const std::string& ip);

// Passwords in clear only over TLS, from loopback, or where the listener allows it.
bool plaintext_auth_allowed(const config::Listener& l, bool tls_active, const std::string& ip);

}  // namespace xo::server
