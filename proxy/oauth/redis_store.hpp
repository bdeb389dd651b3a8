// The token store in Redis, shared by the replicas of a deployment. Key names
// are not secret; every value is sealed with AES-256-GCM under the file store's
// key (XOAUTH2_PROXY_STORE_KEY, required here) and bound to its key name:
//   xoauth2:grant:CONN:MAILBOX   hash {ver: N, data: sealed grant}: the refresh token
//   xoauth2:access:CONN:MAILBOX  sealed access token, expiring with it (PX)
//   xoauth2:lock:CONN:MAILBOX    refresh lock: its owner's random id (SET NX PX)
// get/put/all block (the CLI) and throw StoreError; the daemon's refresh uses
// the awaitable calls, whose failures come back as `error` text.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "asio.hpp"
#include "config/config.hpp"
#include "oauth/provider.hpp"
#include "oauth/redis_client.hpp"
#include "oauth/token_store.hpp"

namespace xo::oauth {

class RedisTokenStore final : public TokenStore {
public:
    // Throws StoreError: bad URL, no XOAUTH2_PROXY_STORE_KEY, bad CA file. Connects lazily.
    explicit RedisTokenStore(const config::TokenSettings& s);
    std::optional<StoredGrant> get(const std::string& connection, const std::string& mailbox) override;
    void put(const std::string& connection, const std::string& mailbox, const StoredGrant& grant) override;
    std::map<std::string, StoredGrant> all() override;
    std::string describe() const override { return client_->url().display(); }
    std::string health() const override { return client_->state(); }
    bool healthy() const override { return client_->up(); }
    void close() override { client_->stop(); }

    // --- the shared refresh (daemon)
    struct Access {
        std::string error;            // Redis trouble
        std::optional<Token> token;   // valid for more than `fresh_for`
    };
    awaitable<Access> get_access(std::string connection, std::string mailbox, std::chrono::seconds fresh_for);
    struct Lock {
        std::string error;
        bool acquired = false;
        std::string owner;
    };
    awaitable<Lock> try_lock(std::string connection, std::string mailbox);
    struct Grant {
        std::string error;
        std::optional<StoredGrant> grant;
        long long version = 0;        // the fencing token of the write that follows
    };
    awaitable<Grant> get_grant(std::string connection, std::string mailbox);
    // Writes the rotated grant (when given) and the access token if the grant is
    // still at `version`, then releases the lock if `owner` holds it. -1: fenced
    // (another writer moved the grant), 1: written; `error` for Redis trouble.
    struct Commit {
        std::string error;
        int result = 0;
    };
    awaitable<Commit> commit(std::string connection, std::string mailbox, std::string owner, long long version,
                             std::optional<StoredGrant> grant, std::optional<Token> access);
    awaitable<void> unlock(std::string connection, std::string mailbox, std::string owner);
    std::chrono::milliseconds lock_timeout() const { return lock_timeout_; }

private:
    awaitable<RedisResult> run(std::vector<std::string> argv);
    RedisResult run_sync(std::vector<std::string> argv);   // throws StoreError when Redis does not answer
    std::string seal_b64(const std::string& key_name, const std::string& plain) const;
    std::optional<std::string> unseal_b64(const std::string& key_name, const std::string& b64) const;
    std::optional<StoredGrant> decode_grant(const std::string& key_name, const std::string& data) const;
    std::string encode_grant(const std::string& key_name, const StoredGrant& g) const;

    std::string key_;
    std::chrono::milliseconds lock_timeout_;
    std::unique_ptr<RedisClient> client_;
};

// The store tokens.store names: a file, or Redis for a redis:// URL. Throws StoreError.
std::shared_ptr<TokenStore> make_token_store(const config::TokenSettings& s);

}  // namespace xo::oauth
