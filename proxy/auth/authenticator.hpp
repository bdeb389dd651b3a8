// Local logins: check(login, password) answers the configured user or nullptr.
// Unknown logins cost the same key derivation as wrong passwords (a dummy hash
// is verified), so timing does not tell which logins exist. A password verified
// before is remembered as an HMAC under a per-process random key (never the
// password itself) for `ttl`, so a warm login costs microseconds, not a KDF.
// Thread-safe.
#pragma once
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.hpp"

namespace xo::auth {

class Authenticator {
public:
    explicit Authenticator(const config::Config& cfg, std::chrono::seconds ttl = std::chrono::hours(1),
                           std::size_t max_entries = 10000);
    // Full check: cache, else key derivation. Slow when cold: call off the I/O threads.
    const config::User* check(std::string_view login, std::string_view password);
    // Cache only: the user when this exact password was verified within ttl, else nullptr.
    const config::User* check_cached(std::string_view login, std::string_view password);

private:
    std::string mac(std::string_view login, std::string_view password, std::string_view hash) const;

    const config::Config& cfg_;
    std::chrono::seconds ttl_;
    std::size_t max_entries_;
    std::string key_;         // random, per process
    std::string dummy_hash_;  // verified for unknown logins
    struct Entry {
        std::string mac;
        std::chrono::steady_clock::time_point expires;
    };
    std::mutex mu_;
    std::unordered_map<std::string, Entry> cache_;
};

}  // namespace xo::auth
