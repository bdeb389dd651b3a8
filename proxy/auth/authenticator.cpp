#include "auth/authenticator.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "auth/password.hpp"

namespace xo::auth {

Authenticator::Authenticator(const config::Config& cfg, std::chrono::seconds ttl, std::size_t max_entries)
    : cfg_(cfg), ttl_(ttl), max_entries_(max_entries), key_(32, '\0') {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), int(key_.size())) != 1)
        throw std::runtime_error("RAND_bytes failed");
    dummy_hash_ = hash_password("dummy password for unknown logins");
}

std::string Authenticator::mac(std::string_view login, std::string_view password, std::string_view hash) const {
    std::string msg;
    msg.reserve(login.size() + password.size() + hash.size() + 2);
    msg.append(login).append(1, '\0').append(password).append(1, '\0').append(hash);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key_.data(), int(key_.size()), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
         out, &len);
    OPENSSL_cleanse(msg.data(), msg.size());
    return std::string(reinterpret_cast<char*>(out), len);
}

const config::User* Authenticator::check_cached(std::string_view login, std::string_view password) {
    const config::User* user = cfg_.find_user(std::string(login));
    if (!user) return nullptr;
    std::string m = mac(login, password, user->password_hash);
    std::lock_guard lock(mu_);
    auto it = cache_.find(std::string(login));
    if (it == cache_.end()) return nullptr;
    if (std::chrono::steady_clock::now() >= it->second.expires) {
        cache_.erase(it);
        return nullptr;
    }
    if (it->second.mac.size() == m.size() && CRYPTO_memcmp(it->second.mac.data(), m.data(), m.size()) == 0)
        return user;
    return nullptr;
}

const config::User* Authenticator::check(std::string_view login, std::string_view password) {
    if (const config::User* u = check_cached(login, password)) return u;
    const config::User* user = cfg_.find_user(std::string(login));
    if (!user) {
        verify_password(password, dummy_hash_);   // same cost as a real check
        return nullptr;
    }
    if (!verify_password(password, user->password_hash)) return nullptr;
    std::string m = mac(login, password, user->password_hash);
    std::lock_guard lock(mu_);
    if (cache_.size() >= max_entries_) cache_.clear();   // crude bound; warm logins re-derive once
    cache_[std::string(login)] = Entry{std::move(m), std::chrono::steady_clock::now() + ttl_};
    return user;
}

}  // namespace xo::auth
