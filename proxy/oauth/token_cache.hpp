// Tokens per (connection, mailbox for per-mailbox flows), shared by all
// sessions. get() answers from the cache until the refresh window before
// expiry; then one request renews it while every other caller for the same key
// waits for that answer (single-flight). Transient failures are retried with
// backoff; a failed renewal still hands out a token that has not expired.
// Thread-safe: callers may run on any executor of the pool.
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

class TokenCache {
public:
    struct Source {
        std::shared_ptr<TokenProvider> provider;
        std::chrono::seconds refresh_window{300};
    };
    TokenCache(std::map<std::string, Source> sources, config::TokenSettings settings);

    // A valid token for the connection (and mailbox), or the provider's error.
    awaitable<TokenResult> get(std::string connection, std::string mailbox);
    // The upstream refused `token`: drop it so the next get() fetches a new one.
    void invalidate(const std::string& connection, const std::string& mailbox, const std::string& token);

    std::vector<CacheEntryStatus> status() const;
    uint64_t total_requests() const;

private:
    struct Entry {
        std::optional<Token> token;
        bool in_flight = false;
        std::vector<std::function<void(TokenResult)>> waiters;
        uint64_t generation = 0;   // bumped when a fetch completes
        TokenResult last_result;   // what that fetch answered
        std::optional<ProviderError> last_error;
        std::chrono::system_clock::time_point last_error_at;
        uint64_t requests = 0, failures = 0;
    };
    std::string key(const std::string& connection, const std::string& mailbox) const;
    awaitable<TokenResult> wait_for(Entry& e, uint64_t generation);
    awaitable<TokenResult> fetch_with_retries(std::shared_ptr<TokenProvider> p, std::string connection,
                                              std::string mailbox, Entry* e);

    std::map<std::string, Source> sources_;
    config::TokenSettings settings_;
    mutable std::mutex mu_;
    std::map<std::string, Entry> entries_;  // node-based: Entry addresses are stable
};

}  // namespace xo::oauth

namespace xo::oauth {
// One provider per connection of the config. A connection whose provider cannot
// be built (unreadable key, interactive flow) is left out and reported in
// `problems` as "connection NAME: why"; its sessions then get a temporary error.
std::shared_ptr<TokenCache> make_token_cache(const config::Config& cfg, std::vector<std::string>& problems);
}  // namespace xo::oauth
