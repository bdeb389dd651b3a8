// Pure parts of the oauth module: base64, URLs and forms, JWT signing (checked
// with OpenSSL's verify), token endpoint answers, and the token cache's
// single-flight and refresh window against an in-process fake provider.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <thread>

#include "diagnose/diagnose.hpp"
#include "oauth/jwt.hpp"
#include "oauth/provider.hpp"
#include "oauth/token_cache.hpp"
#include "oauth/token_store.hpp"
#include "util/base64.hpp"

using namespace xo;
using namespace xo::oauth;

TEST(OauthBase64, RoundTripsAndRejects) {
    for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\x01\xff", 3)}) {
        EXPECT_EQ(util::base64_decode(util::base64_encode(s)).value(), s);
        EXPECT_EQ(util::base64url_decode(util::base64url_encode(s)).value(), s);
    }
    EXPECT_EQ(util::base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(util::base64_encode("fo"), "Zm8=");
    EXPECT_EQ(util::base64url_encode("\xfb\xff"), "-_8");
    EXPECT_FALSE(util::base64_decode("Zm9v!").has_value());
    EXPECT_FALSE(util::base64_decode("Zm8").has_value());
}

TEST(OauthUrl, ParsesAndEncodes) {
    auto u = parse_url("https://login.microsoftonline.com/tenant/oauth2/v2.0/token");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "login.microsoftonline.com");
    EXPECT_EQ(u->port, "443");
    EXPECT_EQ(u->target, "/tenant/oauth2/v2.0/token");
    u = parse_url("https://localhost:20000/google/token");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->port, "20000");
    EXPECT_FALSE(parse_url("ftp://x/"));
    EXPECT_FALSE(parse_url("https://:12/"));
    EXPECT_EQ(encode_form({{"scope", "https://outlook.office365.com/.default"}, {"a b", "c&d"}}),
              "scope=https%3A%2F%2Foutlook.office365.com%2F.default&a%20b=c%26d");
    auto f = decode_form("code=abc%2F1&state=x+y&empty");
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f[0].second, "abc/1");
    EXPECT_EQ(f[1].second, "x y");
    EXPECT_EQ(f[2].first, "empty");
}

namespace {
PrivateKey make_rsa_key() {
    EVP_PKEY* k = EVP_RSA_gen(2048);
    return PrivateKey(k);
}

bool verify_jwt(const std::string& jwt, EVP_PKEY* key, bool pss) {
    auto dot = jwt.rfind('.');
    std::string input = jwt.substr(0, dot);
    std::string sig = util::base64url_decode(jwt.substr(dot + 1)).value();
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key);
    if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}
}  // namespace

TEST(OauthJwt, SignsRs256AndPs256) {
    auto key = make_rsa_key();
    nlohmann::json claims = {{"iss", "a"}, {"exp", 1}};
    for (bool pss : {false, true}) {
        std::string jwt = sign_jwt({{"typ", "JWT"}}, claims, key.get(), pss ? JwtAlg::ps256 : JwtAlg::rs256);
        auto parts_end = jwt.find('.');
        auto header = nlohmann::json::parse(util::base64url_decode(jwt.substr(0, parts_end)).value());
        EXPECT_EQ(header["alg"], pss ? "PS256" : "RS256");
        EXPECT_TRUE(verify_jwt(jwt, key.get(), pss));
        std::string tampered = jwt;
        tampered[parts_end + 2] ^= 1;
        EXPECT_FALSE(verify_jwt(tampered, key.get(), pss));
    }
    auto a = random_uuid(), b = random_uuid();
    EXPECT_NE(a, b);
    EXPECT_EQ(a.size(), 36u);
    EXPECT_EQ(a[14], '4');
}

TEST(OauthResponse, ParsesSuccessAndMicrosoftError) {
    HttpResult ok{true, "", 200,
                  R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0"})",
                  "application/json", "", false};
    auto r = parse_token_response(ok);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.token->access_token, "eyJ0");
    auto left = r.token->expires_at - std::chrono::steady_clock::now();
    EXPECT_GT(left, std::chrono::seconds(3590));

    HttpResult bad{true, "", 401,
                   R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]})",
                   "application/json", "", false};
    r = parse_token_response(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error.code, "AADSTS7000215");
    EXPECT_EQ(r.error.error, "invalid_client");
    EXPECT_EQ(r.error.description, "AADSTS7000215: Invalid client secret provided.");
    EXPECT_FALSE(r.error.transient);
    EXPECT_NE(r.error.summary().find("HTTP 401"), std::string::npos);
    EXPECT_NE(diagnose::token_error_advice(r.error.code, r.error.error, r.error.description).find("secret's ID"),
              std::string::npos);

    HttpResult server{true, "", 500, "<html>oops</html>", "text/html", "", false};
    r = parse_token_response(server);
    EXPECT_TRUE(r.error.transient);
    EXPECT_EQ(r.error.error, "server_error");

    // Found by fuzzing: an empty "error" is no error name; the HTTP status speaks.
    HttpResult empty_error{true, "", 500, R"({"error": ""})", "application/json", "", false};
    r = parse_token_response(empty_error);
    EXPECT_EQ(r.error.error, "server_error");

    HttpResult net{false, "connect localhost:1: Connection refused", 0, "", "", "", false};
    r = parse_token_response(net);
    EXPECT_TRUE(r.error.transient);
    EXPECT_EQ(r.error.error, "network");

    HttpResult google{true, "", 400, R"({"error":"invalid_grant","error_description":"Invalid email or User ID"})", "", "", false};
    r = parse_token_response(google);
    EXPECT_EQ(r.error.code, "");
    EXPECT_NE(diagnose::token_error_advice("", r.error.error, r.error.description).find("mailbox"), std::string::npos);
}

namespace {
// A provider that answers after a short delay, counting its requests.
class FakeProvider : public TokenProvider {
public:
    explicit FakeProvider(std::chrono::seconds lifetime, bool per_mailbox = false)
        : lifetime_(lifetime), per_mailbox_(per_mailbox) {}
    awaitable<TokenResult> fetch(std::string mailbox) override {
        int n = ++calls;
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
        co_await t.async_wait(use_awaitable);
        TokenResult r;
        if (fail_transient > 0) {
            --fail_transient;
            r.error.error = "server_error";
            r.error.transient = true;
            co_return r;
        }
        Token tok;
        tok.access_token = "token-" + std::to_string(n) + "-" + mailbox;
        tok.expires_at = std::chrono::steady_clock::now() + lifetime_;
        tok.expires_wall = std::chrono::system_clock::now() + lifetime_;
        r.token = tok;
        co_return r;
    }
    bool per_mailbox() const override { return per_mailbox_; }
    std::string describe() const override { return "fake"; }
    std::atomic<int> calls{0};
    std::atomic<int> fail_transient{0};

private:
    std::chrono::seconds lifetime_;
    bool per_mailbox_;
};

awaitable<void> get_into(std::shared_ptr<TokenCache> c, std::string conn, std::string mailbox, std::string* out) {
    auto r = co_await c->get(conn, mailbox);
    *out = r.ok() ? r.token->access_token : "error:" + r.error.error;
}

config::TokenSettings fast_settings() {
    config::TokenSettings s;
    s.backoff = std::chrono::milliseconds(1);
    return s;
}
}  // namespace

TEST(OauthTokenCache, FiftyConcurrentCallersCauseOneRequest) {
    auto fake = std::make_shared<FakeProvider>(std::chrono::seconds(3600));
    auto cache = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"c", {fake, std::chrono::seconds(300)}}}, fast_settings());
    asio::io_context io;
    std::vector<std::string> got(50);
    // Callers on strands of a 2-thread pool, as in the daemon.
    for (auto& g : got) asio::co_spawn(asio::make_strand(io), get_into(cache, "c", "", &g), asio::detached);
    std::thread t([&] { io.run(); });
    io.run();
    t.join();
    EXPECT_EQ(fake->calls.load(), 1);
    for (const auto& g : got) EXPECT_EQ(g, "token-1-");
    EXPECT_EQ(cache->total_requests(), 1u);
}

TEST(OauthTokenCache, RenewsOnceInsideRefreshWindow) {
    // Lifetime 10 s with a 300 s window: every get() is inside the window, so each
    // sequential round renews once, while concurrent callers of a round share it.
    auto fake = std::make_shared<FakeProvider>(std::chrono::seconds(10));
    auto cache = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"c", {fake, std::chrono::seconds(300)}}}, fast_settings());
    for (int round = 1; round <= 2; ++round) {
        asio::io_context io;
        std::vector<std::string> got(10);
        for (auto& g : got) asio::co_spawn(io, get_into(cache, "c", "", &g), asio::detached);
        io.run();
        EXPECT_EQ(fake->calls.load(), round);
    }
    // Outside the window the token is reused.
    auto fresh = std::make_shared<FakeProvider>(std::chrono::seconds(3600));
    auto cache2 = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"c", {fresh, std::chrono::seconds(300)}}}, fast_settings());
    for (int i = 0; i < 3; ++i) {
        asio::io_context io;
        std::string g;
        asio::co_spawn(io, get_into(cache2, "c", "", &g), asio::detached);
        io.run();
        EXPECT_EQ(g, "token-1-");
    }
    EXPECT_EQ(fresh->calls.load(), 1);
}

TEST(OauthTokenCache, PerMailboxInvalidateAndRetries) {
    auto fake = std::make_shared<FakeProvider>(std::chrono::seconds(3600), true);
    auto cache = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"g", {fake, std::chrono::seconds(300)}}}, fast_settings());
    asio::io_context io;
    std::string a, b;
    asio::co_spawn(io, get_into(cache, "g", "a@x", &a), asio::detached);
    asio::co_spawn(io, get_into(cache, "g", "b@x", &b), asio::detached);
    io.run();
    EXPECT_EQ(fake->calls.load(), 2);
    EXPECT_NE(a, b);
    cache->invalidate("g", "a@x", "not-the-cached-one");
    cache->invalidate("g", "a@x", a);
    io.restart();
    std::string a2;
    fake->fail_transient = 2;  // two 5xx, then success: within max_attempts 3
    asio::co_spawn(io, get_into(cache, "g", "a@x", &a2), asio::detached);
    io.run();
    EXPECT_EQ(fake->calls.load(), 5);
    EXPECT_NE(a2, a);
    auto st = cache->status();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(cache->total_requests(), 5u);

    io.restart();
    fake->fail_transient = 10;
    std::string unknown;
    asio::co_spawn(io, get_into(cache, "nope", "", &unknown), asio::detached);
    io.run();
    EXPECT_EQ(unknown, "error:unknown_connection");
}

// The Redis store's values: sealed with the store key and bound to their key name.
TEST(StoreSeal, RoundTripBoundToKeyAndName) {
    std::string key(32, 'k'), other(32, 'o');
    std::string sealed = xo::oauth::seal(key, "xoauth2:grant:c:m", "refresh-token-value");
    EXPECT_EQ(sealed.find("refresh-token-value"), std::string::npos);
    EXPECT_EQ(xo::oauth::unseal(key, "xoauth2:grant:c:m", sealed).value_or(""), "refresh-token-value");
    EXPECT_FALSE(xo::oauth::unseal(key, "xoauth2:grant:c:other", sealed).has_value());   // moved to another key
    EXPECT_FALSE(xo::oauth::unseal(other, "xoauth2:grant:c:m", sealed).has_value());
    std::string flipped = sealed;
    flipped[14] ^= 1;
    EXPECT_FALSE(xo::oauth::unseal(key, "xoauth2:grant:c:m", flipped).has_value());
    EXPECT_NE(xo::oauth::seal(key, "n", "same"), xo::oauth::seal(key, "n", "same"));   // fresh nonce
}
