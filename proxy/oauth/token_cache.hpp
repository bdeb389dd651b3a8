// Tokens per (connection, mailbox for per-mailbox flows), shared by all
// sessions. get() never throws and every wait in it is bounded:
//   - a token with more than the refresh window left is answered at once;
//   - inside the window, while it still has >= min_left (60 s) left, it is
//     answered at once and ONE background refresh starts (stale-while-revalidate);
//   - with less than min_left left (or none) callers wait for the one request
//     in flight (single flight), at most max_wait, then get an error result.
// A provider that throws is turned into a ProviderError for every waiter.
// Transient failures are retried with backoff; a failed renewal still hands
// out a token that has not expired. Entries without a valid token that are not
// used for `idle_evict` are dropped, and per-mailbox entries are capped.
// Must be owned by a std::shared_ptr (background refreshes keep it alive).
// Thread-safe: callers may run on any executor; a caller's executor must
// outlive its get().
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "asio.hpp"
#include "oauth/provider.hpp"

namespace xo::oauth {

struct CacheEntryStatus {
    std::string connection, mailbox, provider;
    bool has_token = false;
    std::chrono::system_clock::time_point expires_wall;
    std::optional<ProviderError> last_error;
    std::chrono::system_clock::time_point last_error_at;
    uint64_t requests = 0, failures = 0;
};

// Bounds of a TokenCache; the defaults suit the daemon.
struct TokenCacheLimits {
    std::chrono::seconds min_left{60};              // below this, callers wait for the refresh
    std::chrono::steady_clock::duration max_wait{}; // zero: derived from the token settings
    std::chrono::steady_clock::duration idle_evict = std::chrono::minutes(10);
    std::chrono::steady_clock::duration background_retry = std::chrono::seconds(10);
    std::size_t max_mailbox_entries = 10000;
};

class TokenCache : public std::enable_shared_from_this<TokenCache> {
public:
    struct Source {
        std::shared_ptr<TokenProvider> provider;
        std::chrono::seconds refresh_window{300};
    };
    // "Now" for decisions about token lifetimes (Token::expires_at); injectable
    // so tests of the refresh window need not sleep. Bounds on waiting are
    // real time (Asio timers).
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    using Limits = TokenCacheLimits;
    TokenCache(std::map<std::string, Source> sources, config::TokenSettings settings, Clock clock = {},
               Limits limits = Limits());

    // A valid token for the connection (and mailbox), or an error result.
    awaitable<TokenResult> get(std::string connection, std::string mailbox);
    // The upstream refused `token`: drop it so the next get() fetches a new one.
    void invalidate(const std::string& connection, const std::string& mailbox, const std::string& token);

    // A reload: takes over the valid tokens (and request counts) `old` holds
    // for the named connections, whose token_identity() the reload did not
    // change, so a reload costs no token request. Call before first use.
    void adopt(const TokenCache& old, const std::vector<std::string>& connections);

    std::vector<CacheEntryStatus> status() const;
    // The store of the interactive flows' refresh tokens, when one is open (for /status).
    void set_store(std::shared_ptr<TokenStore> store) { store_ = std::move(store); }
    std::shared_ptr<TokenStore> store() const { return store_; }
    uint64_t total_requests() const;
    std::size_t size() const;
    // The longest a caller waits for a request in flight.
    std::chrono::steady_clock::duration max_wait() const { return limits_.max_wait; }

private:
    struct Waiter;
    struct Entry {
        std::optional<Token> token;
        bool in_flight = false;
        uint64_t flight = 0;                                   // id of the request in flight
        std::chrono::steady_clock::time_point flight_started;  // real time
        std::vector<std::weak_ptr<Waiter>> waiters;
        std::chrono::steady_clock::time_point last_used;                 // clock_ time
        std::optional<std::chrono::steady_clock::time_point> last_failed;  // clock_ time
        bool per_mailbox = false;
        std::optional<ProviderError> last_error;
        std::chrono::system_clock::time_point last_error_at;
        uint64_t requests = 0, failures = 0;
    };
    friend struct FlightGuard;

    std::string key(const std::string& connection, const std::string& mailbox) const;
    static awaitable<TokenResult> wait_for(std::shared_ptr<Waiter> w, std::chrono::steady_clock::duration bound);
    static awaitable<void> run_flight(std::shared_ptr<TokenCache> self, std::string connection, std::string mailbox,
                                      std::string key, uint64_t flight);
    awaitable<TokenResult> fetch_with_retries(std::shared_ptr<TokenProvider> p, std::string connection,
                                              std::string mailbox, std::string key);
    // Caller holds mu_: marks a new flight; the caller spawns run_flight() with its id.
    uint64_t start_flight_locked(Entry& e);
    void count_request(const std::string& key, bool failure);
    // Ends flight `flight` of `key` with `r`; wakes the waiters when `wake`.
    void finish_flight(const std::string& key, uint64_t flight, TokenResult r, bool wake);
    void evict_locked(std::chrono::steady_clock::time_point now);

    std::map<std::string, Source> sources_;
    config::TokenSettings settings_;
    Clock clock_;
    Limits limits_;
    mutable std::mutex mu_;
    std::map<std::string, Entry> entries_;
    std::size_t mailbox_entries_ = 0;
    uint64_t next_flight_ = 1;
    std::chrono::steady_clock::time_point last_sweep_;
    std::shared_ptr<TokenStore> store_;
};

}  // namespace xo::oauth

namespace xo::oauth {
// One provider per connection of the config. A connection whose provider cannot
// be built (unreadable key, interactive flow) is left out and reported in
// `problems` as "connection NAME: why"; its sessions then get a temporary error.
std::shared_ptr<TokenCache> make_token_cache(const config::Config& cfg, std::vector<std::string>& problems);
}  // namespace xo::oauth
