// FileTokenStore under two writers in two processes (the daemon and
// `authorize`): each rotates its own mailbox's refresh token many times at
// once with the other; with the store's flock no rotation is lost.
// And its file format, pinned with OpenSSL directly rather than with the
// store's own code, so that stores written by any earlier release still open.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "oauth/token_store.hpp"
#include "util/base64.hpp"

using xo::oauth::FileTokenStore;
using xo::oauth::StoreError;
using xo::oauth::StoredGrant;

namespace {

constexpr int kRotations = 40;

void rotate(const std::string& path, const std::string& mailbox) {
    FileTokenStore store(path);
    for (int i = 1; i <= kRotations; ++i) {
        StoredGrant g;
        g.refresh_token = mailbox + "-r" + std::to_string(i);
        g.updated = i;
        store.put("conn", mailbox, g);
    }
}

}  // namespace

TEST(TokenStore, TwoProcessesRotatingLoseNothing) {
    auto dir = std::filesystem::temp_directory_path() / ("xo-store-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string path = (dir / "tokens.store").string();
    { FileTokenStore init(path); }   // creates the key file before the writers race

    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int rc = 0;
        try {
            rotate(path, "child@contoso.test");
        } catch (...) {
            rc = 1;
        }
        ::_exit(rc);
    }
    rotate(path, "parent@contoso.test");
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    FileTokenStore check(path);
    auto all = check.all();
    ASSERT_EQ(all.size(), 2u);
    for (const char* m : {"child@contoso.test", "parent@contoso.test"}) {
        auto g = check.get("conn", m);
        ASSERT_TRUE(g) << m << " lost";
        EXPECT_EQ(g->refresh_token, std::string(m) + "-r" + std::to_string(kRotations)) << m;
    }
    std::filesystem::remove_all(dir);
}

namespace {

// The on-disk format, written out here by hand: "XOTS1\n" + 12-byte nonce +
// AES-256-GCM ciphertext of the JSON document + 16-byte tag, with the magic
// as additional authenticated data.
const std::string kMagic = "XOTS1\n";
const std::string kKey = "0123456789abcdef0123456789ABCDEF";   // 32 bytes
const std::string kNonce = "fixed-nonce!";                      // 12 bytes

using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
const auto* u8(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }
auto* u8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

std::string gcm_file(const std::string& key, const std::string& nonce, const std::string& plain,
                     const std::string& aad = kMagic) {
    Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    std::string ct(plain.size(), '\0'), tag(16, '\0');
    int len = 0, fin = 0;
    bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) == 1 &&
              EVP_EncryptUpdate(ctx.get(), nullptr, &len, u8(aad), int(aad.size())) == 1 &&
              EVP_EncryptUpdate(ctx.get(), u8(ct), &len, u8(plain), int(plain.size())) == 1 &&
              EVP_EncryptFinal_ex(ctx.get(), u8(ct) + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, u8(tag)) == 1;
    EXPECT_TRUE(ok);
    return kMagic + nonce + ct + tag;
}

// The JSON document of a file in that format, or "" when it does not open.
std::string open_gcm_file(const std::string& key, const std::string& file) {
    if (file.size() < kMagic.size() + 12 + 16 || file.compare(0, kMagic.size(), kMagic) != 0) return "";
    std::string nonce = file.substr(kMagic.size(), 12);
    std::string ct = file.substr(kMagic.size() + 12, file.size() - kMagic.size() - 12 - 16);
    std::string tag = file.substr(file.size() - 16), plain(ct.size(), '\0');
    Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) == 1 &&
              EVP_DecryptUpdate(ctx.get(), nullptr, &len, u8(kMagic), int(kMagic.size())) == 1 &&
              EVP_DecryptUpdate(ctx.get(), u8(plain), &len, u8(ct), int(ct.size())) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, u8(tag)) == 1 &&
              EVP_DecryptFinal_ex(ctx.get(), u8(plain) + len, &fin) == 1;
    return ok ? plain : "";
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
    ::chmod(path.c_str(), 0600);   // the store refuses files others may read
}

// A directory with a key file holding kKey; the store itself is "tokens.store".
struct StoreDir {
    std::filesystem::path dir;
    std::string store, key;
    explicit StoreDir(const std::string& name)
        : dir(std::filesystem::path(testing::TempDir()) / (name + "-" + std::to_string(::getpid()))) {
        ::unsetenv("XOAUTH2_PROXY_STORE_KEY");   // the key file below, not the environment
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        store = (dir / "tokens.store").string();
        key = (dir / "tokens.key").string();
        spit(key, xo::util::base64_encode(kKey) + "\n");
    }
    ~StoreDir() { std::filesystem::remove_all(dir); }
};

const std::string kDocument =
    R"({"grants":{"dev\nbob@contoso.test":{"obtained":1700000000,"refresh_token":"rt-bob","scope":"s1","updated":1700000100}}})";

}  // namespace

// A store made byte for byte as every release so far writes it opens, and a
// write puts back the same format: magic, nonce, ciphertext, tag.
TEST(TokenStoreFormat, HandBuiltFileOpensAndWritesKeepTheFormat) {
    StoreDir d("xo-store-format");
    spit(d.store, gcm_file(kKey, kNonce, kDocument));

    FileTokenStore store(d.store, d.key);
    auto g = store.get("dev", "bob@contoso.test");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->refresh_token, "rt-bob");
    EXPECT_EQ(g->scope, "s1");
    EXPECT_EQ(g->obtained, 1700000000);
    EXPECT_EQ(g->updated, 1700000100);

    store.put("dev", "carol@contoso.test", {"rt-carol", "s2", 1, 2});
    std::string written = slurp(d.store);
    ASSERT_EQ(written.compare(0, kMagic.size(), kMagic), 0);
    std::string doc = open_gcm_file(kKey, written);
    EXPECT_NE(doc.find("\"rt-bob\""), std::string::npos) << "the hand-written reader cannot open the store's write";
    EXPECT_NE(doc.find("\"rt-carol\""), std::string::npos);
    EXPECT_EQ(written.find("rt-carol"), std::string::npos);   // encrypted
    EXPECT_EQ(written.size(), kMagic.size() + 12 + doc.size() + 16);
}

// A changed byte anywhere (header, nonce, ciphertext, tag) or another key is
// refused with a message that says what is wrong, and the file is left as it is.
TEST(TokenStoreFormat, TamperedOrForeignFilesAreRefused) {
    StoreDir d("xo-store-tamper");
    const std::string good = gcm_file(kKey, kNonce, kDocument);
    auto refused = [&](const std::string& file, const std::string& why) {
        spit(d.store, file);
        try {
            FileTokenStore store(d.store, d.key);
            ADD_FAILURE() << "opened a store that should be refused (" << why << ")";
        } catch (const StoreError& e) {
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(d.store), std::string::npos) << e.what();
        }
        EXPECT_EQ(slurp(d.store), file) << "a refused store was changed";
    };
    const std::string undecryptable = "cannot be decrypted: it is corrupt, or was written with another key";
    const std::string wrong_header = "is not an xoauth2-proxy token store (wrong header)";

    std::string magic = good;
    magic[4] = '2';   // "XOTS2\n"
    refused(magic, wrong_header);
    refused("XOTS1\n" + std::string(20, 'x'), wrong_header);   // too short to hold nonce and tag
    refused("{\"grants\":{}}", wrong_header);                   // plain JSON
    for (std::size_t at : {kMagic.size(), kMagic.size() + 12, good.size() / 2, good.size() - 1}) {
        std::string flipped = good;
        flipped[at] ^= 1;
        refused(flipped, undecryptable);
    }
    refused(gcm_file(std::string(32, 'o'), kNonce, kDocument), undecryptable);
    refused(gcm_file(kKey, kNonce, kDocument, ""), undecryptable);   // the magic is bound in as AAD

    spit(d.store, good);   // and the untouched file still opens
    FileTokenStore store(d.store, d.key);
    EXPECT_TRUE(store.get("dev", "bob@contoso.test"));
}
