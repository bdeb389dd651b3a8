#include "oauth/token_store.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/base64.hpp"
#include "util/text.hpp"

namespace xo::oauth {
namespace {

constexpr char kMagic[] = "XOTS1\n";
constexpr std::size_t kMagicLen = sizeof kMagic - 1, kNonce = 12, kTag = 16;

std::string mode_text(mode_t m) {
    char b[8];
    std::snprintf(b, sizeof b, "%04o", unsigned(m & 07777));
    return b;
}

void check_private(const std::string& path, const char* what) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return;
    if (st.st_mode & 077)
        throw StoreError(std::string(what) + " " + path + " has mode " + mode_text(st.st_mode) +
                         ": it must not be readable by group or others; chmod 600 " + path);
}

// An exclusive flock(2) on "<store>.lock", held for one read-modify-write of
// the store: the daemon and `authorize` (two processes) take it alike, so a
// rotated refresh token written by one is never overwritten by the other's
// stale copy. The lock file is separate because the store itself is replaced
// by rename. Waits for the holder (a write takes milliseconds).
class StoreLock {
public:
    explicit StoreLock(const std::string& store) {
        std::filesystem::create_directories(std::filesystem::path(store).parent_path());
        std::string path = store + ".lock";
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0) throw StoreError("cannot open lock file " + path + ": " + std::strerror(errno));
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd_);
            throw StoreError("cannot lock " + path + ": " + std::strerror(e));
        }
    }
    ~StoreLock() { ::close(fd_); }   // closing releases the lock
    StoreLock(const StoreLock&) = delete;
    StoreLock& operator=(const StoreLock&) = delete;

private:
    int fd_ = -1;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_atomically(const std::string& path, const std::string& data) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw StoreError("cannot write " + tmp + ": " + std::strerror(errno));
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            ::close(fd);
            ::unlink(tmp.c_str());
            throw StoreError("cannot write " + tmp + ": " + std::strerror(errno));
        }
        off += std::size_t(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        throw StoreError("cannot sync " + tmp + ": " + std::strerror(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        throw StoreError("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
    }
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace

std::string load_store_key(const std::string& key_file) {
    if (const char* env = std::getenv("XOAUTH2_PROXY_STORE_KEY"); env && *env) {
        auto k = util::base64_decode(env);
        if (!k || k->size() != 32) throw StoreError("XOAUTH2_PROXY_STORE_KEY must be base64 of 32 bytes (openssl rand -base64 32)");
        return *k;
    }
    if (key_file.empty())
        throw StoreError("XOAUTH2_PROXY_STORE_KEY is not set: a shared token store needs the key in it (openssl rand -base64 32), the same on every replica");
    struct stat st {};
    if (stat(key_file.c_str(), &st) != 0) {   // first use: make one, mode 0600, never overwrite
        std::string k(32, '\0');
        if (RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), 32) != 1) throw StoreError("RAND_bytes failed");
        std::filesystem::create_directories(std::filesystem::path(key_file).parent_path());
        int fd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) throw StoreError("cannot create key file " + key_file + ": " + std::strerror(errno));
        std::string b64 = util::base64_encode(k) + "\n";
        bool ok = ::write(fd, b64.data(), b64.size()) == ssize_t(b64.size()) && ::fsync(fd) == 0;
        ::close(fd);
        if (!ok) throw StoreError("cannot write key file " + key_file);
        return k;
    }
    check_private(key_file, "key file");
    std::string text = read_file(key_file);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto k = util::base64_decode(text);
    if (!k || k->size() != 32) throw StoreError("key file " + key_file + " does not hold base64 of 32 bytes");
    return *k;
}

std::string seal(const std::string& key, const std::string& aad, const std::string& plain) {
    unsigned char nonce[kNonce];
    if (RAND_bytes(nonce, kNonce) != 1) throw StoreError("RAND_bytes failed");
    std::string ct(plain.size(), '\0');
    unsigned char tag[kTag];
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0, fin = 0;
    bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) == 1 &&
              EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()), nonce) == 1 &&
              EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()), int(aad.size())) == 1 &&
              EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()), &len,
                                reinterpret_cast<const unsigned char*>(plain.data()), int(plain.size())) == 1 &&
              EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()) + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, tag) == 1;
    if (!ok) throw StoreError("token store encryption failed");
    std::string out(reinterpret_cast<char*>(nonce), kNonce);
    out += ct;
    out.append(reinterpret_cast<char*>(tag), kTag);
    return out;
}

std::optional<std::string> unseal(const std::string& key, const std::string& aad, const std::string& sealed) {
    if (sealed.size() < kNonce + kTag) return std::nullopt;
    const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
    const auto* ct = nonce + kNonce;
    std::size_t ct_len = sealed.size() - kNonce - kTag;
    const auto* tag = ct + ct_len;
    std::string plain(ct_len, '\0');
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) == 1 &&
              EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()), nonce) == 1 &&
              EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()), int(aad.size())) == 1 &&
              EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, ct, int(ct_len)) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, const_cast<unsigned char*>(tag)) == 1 &&
              EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &fin) == 1;
    if (!ok) {
        OPENSSL_cleanse(plain.data(), plain.size());
        return std::nullopt;
    }
    return plain;
}

FileTokenStore::FileTokenStore(std::string path, std::string key_file)
    : path_(std::move(path)), key_file_(key_file.empty() ? path_ + ".key" : std::move(key_file)) {
    key_ = load_store_key(key_file_);
    std::lock_guard lock(mu_);
    load_locked();
}

void FileTokenStore::load_locked() {
    struct stat st {};
    if (stat(path_.c_str(), &st) != 0) {
        grants_.clear();
        loaded_ = true;
        return;
    }
    auto mtime = std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                       std::chrono::nanoseconds(st.st_mtim.tv_nsec));
    if (loaded_ && mtime == loaded_mtime_) return;
    check_private(path_, "token store");
    std::string raw = read_file(path_);
    auto corrupt = [&](const std::string& why) {
        return StoreError("token store " + path_ + " " + why + "; it was left as it is (restore it, or move it away and run 'xoauth2-proxy authorize' again)");
    };
    if (raw.size() < kMagicLen + kNonce + kTag || raw.compare(0, kMagicLen, kMagic) != 0)
        throw corrupt("is not an xoauth2-proxy token store (wrong header)");
    // The rest is seal()'s output, with the magic bound in as its AAD.
    auto opened = unseal(key_, std::string(kMagic, kMagicLen), raw.substr(kMagicLen));
    if (!opened) throw corrupt("cannot be decrypted: it is corrupt, or was written with another key (" + key_file_ + ")");
    std::string& plain = *opened;   // wiped below, where it stands
    auto j = nlohmann::json::parse(plain, nullptr, false);
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!j.is_object() || !j.contains("grants") || !j["grants"].is_object()) throw corrupt("holds no grants");
    grants_.clear();
    for (auto it = j["grants"].begin(); it != j["grants"].end(); ++it) {
        StoredGrant g;
        g.refresh_token = it.value().value("refresh_token", "");
        g.scope = it.value().value("scope", "");
        g.obtained = it.value().value("obtained", 0LL);
        g.updated = it.value().value("updated", 0LL);
        grants_[it.key()] = g;
    }
    loaded_mtime_ = mtime;
    loaded_ = true;
}

void FileTokenStore::save_locked() {
    nlohmann::json j;
    j["grants"] = nlohmann::json::object();
    for (const auto& [k, g] : grants_)
        j["grants"][k] = {{"refresh_token", g.refresh_token}, {"scope", g.scope}, {"obtained", g.obtained}, {"updated", g.updated}};
    // Keys are checked as UTF-8 in put(); replace, never throw, all the same.
    std::string plain = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    // "XOTS1\n" + seal() with the magic as AAD: a header that cannot be
    // swapped for another without the tag failing. `plain` holds every
    // refresh token: wiped also when sealing throws.
    std::string out(kMagic, kMagicLen);
    try {
        out += seal(key_, out, plain);
    } catch (...) {
        OPENSSL_cleanse(plain.data(), plain.size());
        throw;
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    write_atomically(path_, out);
    struct stat st {};
    if (stat(path_.c_str(), &st) == 0)
        loaded_mtime_ = std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                              std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

std::optional<StoredGrant> FileTokenStore::get(const std::string& connection, const std::string& mailbox) {
    std::lock_guard lock(mu_);
    load_locked();
    auto it = grants_.find(connection + "\n" + mailbox);
    if (it == grants_.end()) return std::nullopt;
    return it->second;
}

void FileTokenStore::put(const std::string& connection, const std::string& mailbox, const StoredGrant& grant) {
    if (!util::valid_utf8(connection) || !util::valid_utf8(mailbox))
        throw StoreError("mailbox is not valid UTF-8: not stored");
    std::lock_guard lock(mu_);
    StoreLock file_lock(path_);   // other processes: `authorize`, a second daemon
    // Re-read under the lock whatever the mtime says: two writes within one
    // tick of the file system's clock leave the same mtime.
    loaded_ = false;
    load_locked();
    grants_[connection + "\n" + mailbox] = grant;
    save_locked();
}

std::map<std::string, StoredGrant> FileTokenStore::all() {
    std::lock_guard lock(mu_);
    load_locked();
    return grants_;
}

}  // namespace xo::oauth
