// Refresh tokens of the interactive flows, kept encrypted at rest.
// TokenStore is the interface (a networked backend can implement it later);
// FileTokenStore keeps one file: "XOTS1\n" + 12-byte nonce + AES-256-GCM
// ciphertext + 16-byte tag of a JSON document. The key comes from the
// environment (XOAUTH2_PROXY_STORE_KEY, base64 of 32 bytes) or a key file made
// with mode 0600 on first use. Writes are atomic (temporary file, fsync,
// rename); put() holds an exclusive flock on "<path>.lock" around its
// read-modify-write, so writers in other processes (`authorize` and the
// daemon) never lose each other's rotation. A file that cannot be decrypted, or one readable by group or
// others, is reported with StoreError and never replaced.
#pragma once
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace xo::oauth {

struct StoreError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct StoredGrant {
    std::string refresh_token;
    std::string scope;
    long long obtained = 0;   // unix time of the first authorization
    long long updated = 0;    // unix time the refresh token was last rotated
};

// The store key: XOAUTH2_PROXY_STORE_KEY when set, else `key_file` (made with
// mode 0600 on first use); `key_file` empty: the variable is required.
std::string load_store_key(const std::string& key_file);
// AES-256-GCM with `aad` bound in: 12-byte nonce + ciphertext + 16-byte tag.
std::string seal(const std::string& key, const std::string& aad, const std::string& plain);
// nullopt when `sealed` was not made by seal() with this key and aad.
std::optional<std::string> unseal(const std::string& key, const std::string& aad, const std::string& sealed);

class TokenStore {
public:
    virtual ~TokenStore() = default;
    virtual std::optional<StoredGrant> get(const std::string& connection, const std::string& mailbox) = 0;
    virtual void put(const std::string& connection, const std::string& mailbox, const StoredGrant& grant) = 0;
    virtual std::map<std::string, StoredGrant> all() = 0;   // key "connection\nmailbox"
    // "file /var/lib/..." or "redis://h:p/0": for messages.
    virtual std::string describe() const = 0;
    // A networked store's connection state ("connected to ...", "... unavailable: why").
    virtual std::string health() const { return ""; }
    virtual bool healthy() const { return true; }
    // Ends background work (a networked store's connection thread) before the
    // io_context it completes on goes away.
    virtual void close() {}
};

class FileTokenStore final : public TokenStore {
public:
    // `key_file` empty: "<path>.key". Throws StoreError for a bad key or store file.
    explicit FileTokenStore(std::string path, std::string key_file = "");
    std::optional<StoredGrant> get(const std::string& connection, const std::string& mailbox) override;
    void put(const std::string& connection, const std::string& mailbox, const StoredGrant& grant) override;
    std::map<std::string, StoredGrant> all() override;
    const std::string& path() const { return path_; }
    std::string describe() const override { return path_; }

private:
    void load_locked();      // re-reads the file when it changed on disk
    void save_locked();
    std::string path_, key_file_, key_;
    std::mutex mu_;
    std::map<std::string, StoredGrant> grants_;
    std::chrono::system_clock::time_point loaded_mtime_{};
    bool loaded_ = false;
};

}  // namespace xo::oauth
