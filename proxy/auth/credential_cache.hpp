// Verified-credentials cache: remembers, per login, that a password was checked
// good against a given hash string, so a warm login costs an HMAC instead of a
// KDF. Stores only HMAC-SHA256(process-random key, login \0 password \0 hash);
// a changed hash in the config therefore misses. Entries expire after `ttl`;
// at most `max_entries` logins are kept (least recently used go first).
// Lookups compare in constant time. Thread-safe; never throws after construction.
#pragma once
#include <chrono>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace xo::auth {

class CredentialCache {
public:
    using clock = std::chrono::steady_clock;
    // Throws std::runtime_error when the random key cannot be drawn.
    explicit CredentialCache(clock::duration ttl = std::chrono::hours(1), std::size_t max_entries = 10000);
    ~CredentialCache();
    CredentialCache(const CredentialCache&) = delete;
    CredentialCache& operator=(const CredentialCache&) = delete;

    // True when this password was verified good for login against hash within ttl.
    bool contains(std::string_view login, std::string_view password, std::string_view hash);
    // Remember a password verified good (replaces the login's previous entry).
    void insert(std::string_view login, std::string_view password, std::string_view hash);
    void erase(std::string_view login);
    std::size_t size() const;

private:
    std::string mac(std::string_view login, std::string_view password, std::string_view hash) const;

    struct Entry {
        std::string login;
        std::string mac;
        clock::time_point expires;
    };
    clock::duration ttl_;
    std::size_t max_entries_;
    unsigned char key_[32];
    mutable std::mutex mu_;
    std::list<Entry> lru_;   // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace xo::auth
