#include "auth/authenticator.hpp"

#include "auth/password.hpp"

namespace xo::auth {

Authenticator::Authenticator(const config::Config& cfg, std::chrono::steady_clock::duration ttl,
                             std::size_t max_entries)
    : cfg_(cfg), dummy_hash_(hash_password("dummy password for unknown logins")), cache_(ttl, max_entries) {
    for (const auto& u : cfg_.users) users_.emplace(u.login, &u);   // first one wins, as in find_user()
}

const config::User* Authenticator::user(std::string_view login) const {
    auto it = users_.find(std::string(login));
    return it == users_.end() ? nullptr : it->second;
}

const config::User* Authenticator::check_cached(std::string_view login, std::string_view password) {
    const config::User* u = user(login);
    return u && cache_.contains(login, password, u->password_hash) ? u : nullptr;
}

const config::User* Authenticator::check(std::string_view login, std::string_view password) {
    const config::User* u = user(login);
    if (!u) {
        verify_password(password, dummy_hash_);   // same cost as a real check
        return nullptr;
    }
    if (cache_.contains(login, password, u->password_hash)) return u;
    if (!verify_password(password, u->password_hash)) return nullptr;
    cache_.insert(login, password, u->password_hash);
    return u;
}

}  // namespace xo::auth
