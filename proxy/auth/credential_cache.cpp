#include "auth/credential_cache.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace xo::auth {

CredentialCache::CredentialCache(clock::duration ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(max_entries ? max_entries : 1) {
    if (RAND_bytes(key_, sizeof key_) != 1) throw std::runtime_error("RAND_bytes failed");
}

CredentialCache::~CredentialCache() { OPENSSL_cleanse(key_, sizeof key_); }

std::string CredentialCache::mac(std::string_view login, std::string_view password, std::string_view hash) const {
    std::string msg;
    msg.reserve(login.size() + password.size() + hash.size() + 2);
    msg.append(login).append(1, '\0').append(password).append(1, '\0').append(hash);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key_, int(sizeof key_), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
         &len);
    OPENSSL_cleanse(msg.data(), msg.size());
    return std::string(reinterpret_cast<char*>(out), len);
}

bool CredentialCache::contains(std::string_view login, std::string_view password, std::string_view hash) {
    std::string m = mac(login, password, hash);   // outside the lock
    std::lock_guard lock(mu_);
    auto it = index_.find(std::string(login));
    if (it == index_.end()) return false;
    if (clock::now() >= it->second->expires) {
        lru_.erase(it->second);
        index_.erase(it);
        return false;
    }
    const std::string& stored = it->second->mac;
    bool same = stored.size() == m.size() && CRYPTO_memcmp(stored.data(), m.data(), m.size()) == 0;
    if (same) lru_.splice(lru_.begin(), lru_, it->second);
    return same;
}

void CredentialCache::insert(std::string_view login, std::string_view password, std::string_view hash) {
    std::string m = mac(login, password, hash);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(std::string(login)); it != index_.end()) {
        lru_.erase(it->second);
        index_.erase(it);
    }
    while (index_.size() >= max_entries_) {
        index_.erase(lru_.back().login);
        lru_.pop_back();
    }
    lru_.push_front(Entry{std::string(login), std::move(m), clock::now() + ttl_});
    index_[lru_.front().login] = lru_.begin();
}

void CredentialCache::erase(std::string_view login) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(std::string(login)); it != index_.end()) {
        lru_.erase(it->second);
        index_.erase(it);
    }
}

std::size_t CredentialCache::size() const {
    std::lock_guard lock(mu_);
    return index_.size();
}

}  // namespace xo::auth
