// What every session shares: the configuration, the token cache, local
// credential checks and failure throttling, the upstream TLS contexts (one per
// connection, built once), and the counters the admin listener reports.
// Built once at start by make_services(); read-only afterwards except for the
// parts that lock themselves (token cache, authenticator, throttle, metrics).
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
    config::Config cfg;
    std::shared_ptr<oauth::TokenCache> tokens;
    std::unique_ptr<auth::Authenticator> authenticator;
    auth::FailureThrottle throttle;
    std::map<std::string, std::shared_ptr<ssl::context>> upstream_tls;   // by connection name
    std::string hostname;
    Counters counters;
    asio::thread_pool kdf_pool{1};   // password hashing off the I/O threads

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
std::shared_ptr<Services> make_services(const config::Config& cfg, std::vector<std::string>& problems);

// "1a2b3c4d": short random session ids for log lines.
std::string new_session_id();

// Checks a local login off the I/O threads (a KDF costs milliseconds); a login
// verified before is answered from the authenticator's cache without the hop.
awaitable<const config::User*> check_login(std::shared_ptr<Services> s, std::string login, std::string password);

// A session's local login, whatever the protocol: waits first when `ip` failed
// repeatedly (after sending the client what is queued), checks, and keeps the
// throttle and the counters. user is nullptr for a wrong password or unknown
// login; busy when the check could not run now (try again later).
struct LoginResult {
    const config::User* user = nullptr;
    bool busy = false;
};
awaitable<LoginResult> local_login(std::shared_ptr<Services> s, net::Link& client, std::string ip,
                                           std::string login, std::string password);

bool is_loopback(const std::string& ip);

// Passwords in clear only over TLS, from loopback, or where the listener allows it.
bool plaintext_auth_allowed(const config::Listener& l, bool tls_active, const std::string& ip);

}  // namespace xo::server
