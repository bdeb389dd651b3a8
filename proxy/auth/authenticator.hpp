// Local logins: check(login, password) answers the configured user or nullptr.
// Unknown logins cost the same key derivation as wrong passwords (a dummy hash
// is verified), so timing does not tell which logins exist. A password verified
// before is remembered in a CredentialCache (an HMAC, never the password) for
// `ttl`, so a warm login costs microseconds, not a KDF.
// Safe to call from several threads at once. `cfg` must outlive the
// Authenticator and not change under it (a reloaded config gets a new one).
#pragma once
#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/credential_cache.hpp"
#include "config/config.hpp"

namespace xo::auth {

class Authenticator {
public:
    explicit Authenticator(const config::Config& cfg,
                           std::chrono::steady_clock::duration ttl = std::chrono::hours(1),
                           std::size_t max_entries = 10000);
    // Full check: cache, else key derivation. Slow when cold: call off the I/O threads.
    const config::User* check(std::string_view login, std::string_view password);
    // Cache only: the user when this exact password was verified within ttl, else nullptr.
    const config::User* check_cached(std::string_view login, std::string_view password);

private:
    const config::User* user(std::string_view login) const;

    const config::Config& cfg_;
    std::unordered_map<std::string, const config::User*> users_;   // login -> entry of cfg_.users
    std::string dummy_hash_;                                      // verified for unknown logins
    CredentialCache cache_;
};

}  // namespace xo::auth
