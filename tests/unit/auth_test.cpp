// Local credentials: hashes, constant-time verification, the warm-login cache,
// uniform answers for unknown logins, failure throttling, and hash-password's input.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>

#include "auth/authenticator.hpp"
#include "auth/credential_cache.hpp"
#include "auth/password.hpp"
#include "auth/throttle.hpp"

using namespace xo::auth;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(AuthPassword, HashAndVerify) {
    std::string h = hash_password("pass word\"1");
    EXPECT_EQ(h.rfind("$scrypt$ln=14,r=8,p=1$", 0), 0u);
    auto salt_at = h.find('$', 3 + 6 + 1) + 1;   // after "$scrypt$ln=14,r=8,p=1$"
    auto hash_at = h.find('$', salt_at) + 1;
    EXPECT_EQ(hash_at - salt_at - 1, 24u);         // 16 bytes of salt in base64
    EXPECT_EQ(h.size() - hash_at, 44u);            // 32 bytes of hash in base64
    EXPECT_TRUE(is_valid_hash(h));
    EXPECT_TRUE(verify_password("pass word\"1", h));
    EXPECT_FALSE(verify_password("pass word\"2", h));
    EXPECT_FALSE(verify_password("pass word\"1 ", h));
    EXPECT_FALSE(verify_password("", h));
    EXPECT_NE(hash_password("x"), hash_password("x"));   // salted
}

// Vectors computed with Python's hashlib:
//   base64.b64encode(hashlib.pbkdf2_hmac('sha256', PASSWORD, SALT, ITER))
//   base64.b64encode(hashlib.scrypt(PASSWORD, salt=SALT, n=2**14, r=8, p=1, dklen=32))
struct Vector {
    const char* password;
    const char* hash;
};
class AuthKnownVectors : public ::testing::TestWithParam<Vector> {};

TEST_P(AuthKnownVectors, Verify) {
    const auto& v = GetParam();
    EXPECT_TRUE(is_valid_hash(v.hash));
    EXPECT_TRUE(verify_password(v.password, v.hash));
    EXPECT_FALSE(verify_password(std::string(v.password) + "x", v.hash));
}

INSTANTIATE_TEST_SUITE_P(
    Auth, AuthKnownVectors,
    ::testing::Values(
        Vector{"password", "$pbkdf2-sha256$i=1000$c2FsdHNhbHRzYWx0c2FsdA==$8nX7hwFEzIB8aPajJTYK8weHQc5Ngz0pFVAKvSu4jQA="},
        Vector{"p\xc3\xa4ssword",
               "$pbkdf2-sha256$i=29000$MDEyMzQ1Njc4OWFiY2RlZg==$sB9mswhkOTQdUegtwlkp71Xn+56CSaL7Kkm4SCisUYw="},
        Vector{"correct horse",
               "$scrypt$ln=14,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$0LupyHkzAIgDr9UDsriAAf87vMbCbcaUfDvFOAHk0D0="}));

TEST(AuthPassword, MalformedHashes) {
    for (const char* bad : {"", "plain", "$scrypt$ln=14$a$b", "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ=",
                            "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$scrypt$ln=20,r=32,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",   // 4 GiB of memory
                            "$scrypt$ln=14,r=8,p=1,x=2$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$scrypt$ln=14,r=8,p=1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",          // 4-byte salt
                            "$md5$x$y$z", "$pbkdf2-sha256$i=10$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$pbkdf2-sha256$i=abc$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$scrypt$ln=14,r=8,p=1$!!!$aGFzaA==", "scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ=$aGFzaA==$"}) {
        EXPECT_FALSE(is_valid_hash(bad)) << bad;
        EXPECT_FALSE(verify_password("x", bad)) << bad;
    }
}

TEST(AuthPassword, HashPasswordInput) {
    EXPECT_EQ(password_from_input("pw\n"), "pw");
    EXPECT_EQ(password_from_input("pw\r\n"), "pw");
    EXPECT_EQ(password_from_input("pw\n\n"), "pw\n");   // one newline only
    EXPECT_EQ(password_from_input("pw"), "pw");
    EXPECT_EQ(password_from_input(" pw \n"), " pw ");
    EXPECT_EQ(password_from_input("\n"), "");
    std::istringstream in("secret pw\n");
    std::ostringstream out, err;
    EXPECT_EQ(hash_password_command(in, out, err), 0);
    std::string h = out.str();
    ASSERT_FALSE(h.empty());
    EXPECT_EQ(h.back(), '\n');
    EXPECT_TRUE(verify_password("secret pw", h.substr(0, h.size() - 1)));
    EXPECT_EQ(err.str(), "");
    std::istringstream empty("\n");
    std::ostringstream out2, err2;
    EXPECT_EQ(hash_password_command(empty, out2, err2), 2);
    EXPECT_EQ(out2.str(), "");
    EXPECT_NE(err2.str().find("empty password"), std::string::npos);
}

TEST(AuthCredentialCache, RemembersOnlyTheVerifiedTriple) {
    CredentialCache c;
    EXPECT_FALSE(c.contains("erp", "pw", "$h1"));
    c.insert("erp", "pw", "$h1");
    EXPECT_TRUE(c.contains("erp", "pw", "$h1"));
    EXPECT_FALSE(c.contains("erp", "pw2", "$h1"));   // wrong password
    EXPECT_FALSE(c.contains("erp", "pw", "$h2"));    // hash changed in the config
    EXPECT_FALSE(c.contains("erp2", "pw", "$h1"));
    EXPECT_TRUE(c.contains("erp", "pw", "$h1"));     // a miss does not evict
    c.erase("erp");
    EXPECT_FALSE(c.contains("erp", "pw", "$h1"));
}

TEST(AuthCredentialCache, EntriesExpire) {
    CredentialCache c(1s);   // (long enough that a stalled test thread does not pass it early)
    c.insert("erp", "pw", "$h");
    EXPECT_TRUE(c.contains("erp", "pw", "$h"));
    std::this_thread::sleep_for(1200ms);
    EXPECT_FALSE(c.contains("erp", "pw", "$h"));
    EXPECT_EQ(c.size(), 0u);
}

TEST(AuthCredentialCache, BoundedLeastRecentlyUsedFirst) {
    CredentialCache c(1h, 3);
    for (const char* l : {"a", "b", "c"}) c.insert(l, "pw", "$h");
    EXPECT_TRUE(c.contains("a", "pw", "$h"));   // a is now the most recent
    c.insert("d", "pw", "$h");                  // evicts b
    EXPECT_EQ(c.size(), 3u);
    EXPECT_TRUE(c.contains("a", "pw", "$h"));
    EXPECT_FALSE(c.contains("b", "pw", "$h"));
    EXPECT_TRUE(c.contains("c", "pw", "$h"));
    EXPECT_TRUE(c.contains("d", "pw", "$h"));
    c.insert("d", "pw2", "$h");                 // replaces, no growth
    EXPECT_EQ(c.size(), 3u);
    EXPECT_FALSE(c.contains("d", "pw", "$h"));
}

namespace {
xo::config::Config users_config() {
    xo::config::Config cfg;
    cfg.users.push_back({"erp", hash_password("right"), "c", "erp@contoso.com", 1});
    cfg.users.push_back({"scan", hash_password("other"), "c", "scan@contoso.com", 2});
    return cfg;
}
}  // namespace

TEST(AuthAuthenticator, WarmLoginsSkipTheKdfAndWrongPasswordsNeverHit) {
    auto cfg = users_config();
    Authenticator a(cfg);
    EXPECT_EQ(a.check_cached("erp", "right"), nullptr);   // cold
    auto t0 = Clock::now();
    const xo::config::User* u = a.check("erp", "right");
    auto cold = Clock::now() - t0;
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->mailbox, "erp@contoso.com");
    t0 = Clock::now();
    for (int i = 0; i < 1000; ++i) ASSERT_NE(a.check("erp", "right"), nullptr);
    auto warm = (Clock::now() - t0) / 1000;
    EXPECT_GT(cold, 5ms);   // scrypt ln=14: tens of milliseconds
    EXPECT_LT(warm, 1ms);   // an HMAC: microseconds
    EXPECT_NE(a.check_cached("erp", "right"), nullptr);
    EXPECT_EQ(a.check_cached("erp", "wrong"), nullptr);
    t0 = Clock::now();
    EXPECT_EQ(a.check("erp", "wrong"), nullptr);
    EXPECT_GT(Clock::now() - t0, 5ms);                     // a wrong password always pays the KDF
    EXPECT_NE(a.check_cached("erp", "right"), nullptr);    // and does not evict the good one
    EXPECT_EQ(a.check_cached("scan", "right"), nullptr);   // per login
    EXPECT_EQ(a.check("ERP", "right"), nullptr);           // logins are case-sensitive
}

TEST(AuthAuthenticator, UnknownLoginsCostAKeyDerivationToo) {
    auto cfg = users_config();
    Authenticator a(cfg);
    auto t0 = Clock::now();
    EXPECT_EQ(a.check("erp", "wrong"), nullptr);
    auto wrong = Clock::now() - t0;
    t0 = Clock::now();
    EXPECT_EQ(a.check("nobody", "right"), nullptr);
    auto unknown = Clock::now() - t0;
    EXPECT_GT(unknown, wrong / 4);
    EXPECT_LT(unknown, wrong * 4);
    EXPECT_EQ(a.check_cached("nobody", "right"), nullptr);
}

TEST(AuthAuthenticator, ANewHashInTheConfigInvalidatesTheCache) {
    auto cfg = users_config();
    Authenticator a(cfg);
    ASSERT_NE(a.check("erp", "right"), nullptr);
    cfg.users[0].password_hash = hash_password("changed");   // same login, new password
    EXPECT_EQ(a.check_cached("erp", "right"), nullptr);
    EXPECT_EQ(a.check("erp", "right"), nullptr);
    EXPECT_NE(a.check("erp", "changed"), nullptr);
}

TEST(AuthAuthenticator, SeveralThreadsAtOnce) {
    auto cfg = users_config();
    Authenticator a(cfg);
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 3; ++i) {
                bool right = (t + i) % 2 == 0;
                const auto* u = a.check(t % 2 ? "erp" : "scan", right ? (t % 2 ? "right" : "other") : "nope");
                (u ? good : bad)++;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(good + bad, 24);
    EXPECT_EQ(good, 12);
}

TEST(AuthThrottle, DelaysGrowPerAddress) {
    FailureThrottle t;
    const std::string ip = "192.0.2.1";
    EXPECT_EQ(t.delay_for(ip), 0ms);
    t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 0ms);
    t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 1000ms);
    t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 2000ms);
    t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 4000ms);
    t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 8000ms);
    for (int i = 0; i < 100; ++i) t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 15000ms);   // cap
    EXPECT_EQ(t.delay_for("192.0.2.2"), 0ms);
    EXPECT_EQ(t.delay_for("2001:db8::1"), 0ms);
    t.record_success(ip);
    EXPECT_EQ(t.delay_for(ip), 15000ms);   // a success halves the count, it does not clear it
}

TEST(AuthThrottle, SuccessDecaysInsteadOfClearing) {
    FailureThrottle t;
    const std::string ip = "192.0.2.1";
    for (int i = 0; i < 4; ++i) t.record_failure(ip);
    EXPECT_EQ(t.delay_for(ip), 4000ms);
    t.record_success(ip);                    // 4 -> 2
    EXPECT_EQ(t.delay_for(ip), 1000ms);
    t.record_success(ip);                    // 2 -> 1
    EXPECT_EQ(t.delay_for(ip), 0ms);
    EXPECT_TRUE(t.recently_failed(ip));
    t.record_success(ip);                    // 1 -> 0: forgotten
    EXPECT_FALSE(t.recently_failed(ip));
    EXPECT_EQ(t.size(), 0u);
}

TEST(AuthThrottle, GlobalThresholdRefusesAddressesWithRecentFailuresFirst) {
    FailureThrottle t(10min, 100000, 50, 1min);
    for (int i = 0; i < 49; ++i) t.record_failure("10.0.0." + std::to_string(i));
    EXPECT_FALSE(t.under_attack());
    EXPECT_FALSE(t.refuse_now("10.0.0.1"));
    t.record_failure("10.0.0.49");           // 50 failures from 50 addresses within a minute
    EXPECT_TRUE(t.under_attack());
    EXPECT_TRUE(t.refuse_now("10.0.0.1"));   // failed recently: refused first
    EXPECT_FALSE(t.refuse_now("10.0.1.1"));  // no failures: keeps its turn
    EXPECT_EQ(t.delay_for("10.0.0.1"), 0ms); // one failure each: no per-address delay
}

TEST(AuthThrottle, GlobalWindowPasses) {
    FailureThrottle t(10min, 100000, 5, 1s);
    for (int i = 0; i < 5; ++i) t.record_failure("10.0.0." + std::to_string(i));
    EXPECT_TRUE(t.under_attack());
    std::this_thread::sleep_for(1200ms);
    EXPECT_FALSE(t.under_attack());
    EXPECT_FALSE(t.refuse_now("10.0.0.1"));
}

TEST(AuthThrottle, FailuresDecayAfterTheWindow) {
    FailureThrottle t(1s);
    for (int i = 0; i < 4; ++i) t.record_failure("192.0.2.1");
    EXPECT_EQ(t.delay_for("192.0.2.1"), 4000ms);
    std::this_thread::sleep_for(1200ms);
    EXPECT_EQ(t.delay_for("192.0.2.1"), 0ms);
    for (int i = 0; i < 2; ++i) t.record_failure("192.0.2.3");
    std::this_thread::sleep_for(1200ms);
    t.record_failure("192.0.2.3");   // the old ones no longer count
    EXPECT_EQ(t.delay_for("192.0.2.3"), 0ms);
}

TEST(AuthThrottle, MemoryIsBounded) {
    FailureThrottle t(10min, 100);
    for (int i = 0; i < 1000; ++i) t.record_failure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    EXPECT_EQ(t.size(), 100u);
    for (int i = 0; i < 3; ++i) t.record_failure("192.0.2.9");
    EXPECT_EQ(t.size(), 100u);
    EXPECT_EQ(t.delay_for("192.0.2.9"), 2000ms);   // the newest are kept
}
