// Credential expiry: a certificate's notAfter from the file, secret_expires,
// the 30-day warning, a certificate that cannot be read, and a stored refresh
// token near its idle limit (Microsoft 90 days, Google six months).
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "diagnose/expiry.hpp"
#include "oauth/token_store.hpp"

using namespace xo::diagnose;

namespace {
// A self-signed certificate valid for `days`, written as PEM to `path`.
void write_certificate(const std::string& path, long days) {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("t"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}
}  // namespace

TEST(Expiry, CertificateSecretAndWarningWindow) {
    std::string cert = testing::TempDir() + "/expiry-test.crt";
    write_certificate(cert, 10);
    xo::config::Config cfg;
    xo::config::Connection c;
    c.name = "app";
    c.flow = xo::config::Flow::certificate;
    c.certificate_file = cert;
    cfg.connections["app"] = c;
    xo::config::Connection s;
    s.name = "sec";
    s.flow = xo::config::Flow::client_secret;
    long long now = unix_now();
    s.secret_expires = now + 40 * 86400;
    cfg.connections["sec"] = s;
    xo::config::Connection bad = c;
    bad.name = "bad";
    bad.certificate_file = testing::TempDir() + "/no-such.crt";
    cfg.connections["bad"] = bad;
    cfg.tokens.store = testing::TempDir() + "/no-such-store.db";   // absent: not created

    auto list = credential_expiries(cfg);
    ASSERT_EQ(list.size(), 3u);
    const CredentialExpiry* ce = nullptr;
    const CredentialExpiry* se = nullptr;
    const CredentialExpiry* be = nullptr;
    for (const auto& e : list) (e.connection == "app" ? ce : e.connection == "sec" ? se : be) = &e;
    ASSERT_TRUE(ce && se && be);
    EXPECT_EQ(ce->kind, "certificate");
    EXPECT_NEAR(double(ce->expires_at), double(now + 10 * 86400), 120.0);
    EXPECT_TRUE(due(*ce, now));
    EXPECT_NE(describe(*ce, now).find("certificate " + cert + " of connection app expires "), std::string::npos);
    EXPECT_TRUE(describe(*ce, now).find("(in 9 days)") != std::string::npos || describe(*ce, now).find("(in 10 days)") != std::string::npos);
    EXPECT_NE(expiry_advice(*ce).find("Upload certificate"), std::string::npos);
    EXPECT_EQ(se->kind, "secret");
    EXPECT_FALSE(due(*se, now));
    EXPECT_TRUE(due(*se, now + 11 * 86400));
    EXPECT_NE(describe(*se, now + 41 * 86400).find("expired"), std::string::npos);
    EXPECT_EQ(be->expires_at, 0);
    EXPECT_FALSE(due(*be, now));
    EXPECT_NE(describe(*be, now).find("expiry unknown"), std::string::npos);
    std::ifstream store(cfg.tokens.store);
    EXPECT_FALSE(store.good());
    std::remove(cert.c_str());
}

// The diagnosis row refresh_token_idle, from a real store file: a Microsoft refresh
// token last rotated 70 days ago is due (20 days left), a Google one is not.
TEST(Expiry, RefreshTokenIdleFromTheStore) {
    unsetenv("XOAUTH2_PROXY_STORE_KEY");   // the store's own key file
    std::string path = testing::TempDir() + "/expiry-idle-store.db";
    std::remove(path.c_str());
    std::remove((path + ".key").c_str());
    long long now = unix_now();
    {
        xo::oauth::FileTokenStore store(path);
        store.put("dev", "bob@contoso.test", {"rt-not-shown", "scope", now - 80 * 86400, now - 70 * 86400});
        store.put("gmail", "alice@fabrikam.test", {"rt-not-shown-2", "scope", now - 80 * 86400, now - 70 * 86400});
    }
    xo::config::Config cfg;
    xo::config::Connection dev;
    dev.name = "dev";
    dev.provider = xo::config::Provider::microsoft;
    dev.flow = xo::config::Flow::device_code;
    cfg.connections["dev"] = dev;
    xo::config::Connection gmail = dev;
    gmail.name = "gmail";
    gmail.provider = xo::config::Provider::google;
    gmail.flow = xo::config::Flow::authorization_code;
    cfg.connections["gmail"] = gmail;
    cfg.tokens.store = path;
    auto list = credential_expiries(cfg);
    ASSERT_EQ(list.size(), 2u);
    for (const auto& e : list) {
        EXPECT_EQ(e.kind, "refresh_token");
        if (e.connection == "dev") {
            EXPECT_EQ(e.mailbox, "bob@contoso.test");
            EXPECT_EQ(e.expires_at, now + 20 * 86400);
            EXPECT_TRUE(due(e, now));
            EXPECT_NE(describe(e, now).find("refresh token of bob@contoso.test of connection dev expires "), std::string::npos);
            std::string a = expiry_advice(e);
            EXPECT_NE(a.find("the stored refresh token dies after 90 days without use"), std::string::npos) << a;
            EXPECT_NE(a.find("; to fix: use the connection (or run 'xoauth2-proxy test CONNECTION"), std::string::npos) << a;
            EXPECT_EQ(a.find("rt-not-shown"), std::string::npos);
        } else {
            EXPECT_EQ(e.expires_at, now + 110 * 86400);
            EXPECT_FALSE(due(e, now));
        }
    }
    std::remove(path.c_str());
    std::remove((path + ".key").c_str());
}
