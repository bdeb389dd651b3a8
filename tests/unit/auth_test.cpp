// Local credentials: hashes, constant-time verification, the warm-login cache,
// uniform answers for unknown logins, and failure throttling.
#include <gtest/gtest.h>

#include <chrono>

#include "auth/authenticator.hpp"
#include "auth/password.hpp"
#include "auth/throttle.hpp"

using namespace xo::auth;

TEST(AuthPassword, HashAndVerify) {
    std::string h = hash_password("pass word\"1");
    EXPECT_EQ(h.rfind("$scrypt$ln=14,r=8,p=1$", 0), 0u);
    EXPECT_TRUE(is_valid_hash(h));
    EXPECT_TRUE(verify_password("pass word\"1", h));
    EXPECT_FALSE(verify_password("pass word\"2", h));
    EXPECT_FALSE(verify_password("", h));
    EXPECT_NE(hash_password("x"), hash_password("x"));   // salted
}

TEST(AuthPassword, Pbkdf2KnownVector) {
    // python3 -c "import hashlib,base64;print(base64.b64encode(hashlib.pbkdf2_hmac('sha256',b'password',b'saltsaltsaltsalt',1000)).decode())"
    std::string h = "$pbkdf2-sha256$i=1000$c2FsdHNhbHRzYWx0c2FsdA==$" "8nX7hwFEzIB8aPajJTYK8weHQc5Ngz0pFVAKvSu4jQA=";
    EXPECT_TRUE(is_valid_hash(h));
    EXPECT_TRUE(verify_password("password", h));
    EXPECT_FALSE(verify_password("Password", h));
}

TEST(AuthPassword, MalformedHashes) {
    for (const char* bad : {"", "plain", "$scrypt$ln=14$a$b", "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$md5$x$y$z", "$pbkdf2-sha256$i=10$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",
                            "$scrypt$ln=14,r=8,p=1$!!!$aGFzaA=="}) {
        EXPECT_FALSE(is_valid_hash(bad)) << bad;
        EXPECT_FALSE(verify_password("x", bad)) << bad;
    }
}

TEST(AuthAuthenticator, WarmLoginsSkipTheKdfAndWrongPasswordsNeverHit) {
    xo::config::Config cfg;
    cfg.users.push_back({"erp", hash_password("right"), "c", "erp@contoso.com", 1});
    Authenticator a(cfg);
    using clock = std::chrono::steady_clock;
    EXPECT_EQ(a.check_cached("erp", "right"), nullptr);   // cold
    auto t0 = clock::now();
    EXPECT_NE(a.check("erp", "right"), nullptr);
    auto cold = clock::now() - t0;
    t0 = clock::now();
    for (int i = 0; i < 1000; ++i) ASSERT_NE(a.check("erp", "right"), nullptr);
    auto warm = (clock::now() - t0) / 1000;
    EXPECT_GT(cold, std::chrono::milliseconds(5));
    EXPECT_LT(warm, std::chrono::milliseconds(1));
    EXPECT_NE(a.check_cached("erp", "right"), nullptr);
    EXPECT_EQ(a.check_cached("erp", "wrong"), nullptr);
    EXPECT_EQ(a.check("erp", "wrong"), nullptr);
    EXPECT_EQ(a.check("nobody", "right"), nullptr);
    // An unknown login costs a key derivation too (no user enumeration by timing).
    t0 = clock::now();
    a.check("nobody", "x");
    EXPECT_GT(clock::now() - t0, cold / 4);
}

TEST(AuthThrottle, SlowsRepeatedFailuresPerAddress) {
    FailureThrottle t;
    EXPECT_EQ(t.delay_for("192.0.2.1").count(), 0);
    t.record_failure("192.0.2.1");
    t.record_failure("192.0.2.1");
    EXPECT_EQ(t.delay_for("192.0.2.1").count(), 1000);
    t.record_failure("192.0.2.1");
    EXPECT_EQ(t.delay_for("192.0.2.1").count(), 2000);
    for (int i = 0; i < 10; ++i) t.record_failure("192.0.2.1");
    EXPECT_EQ(t.delay_for("192.0.2.1").count(), 15000);
    EXPECT_EQ(t.delay_for("192.0.2.2").count(), 0);
    t.record_success("192.0.2.1");
    EXPECT_EQ(t.delay_for("192.0.2.1").count(), 0);
}
