// Credential expiry: a certificate's notAfter from the file, secret_expires,
// the 30-day warning, and a certificate that cannot be read.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdio>
#include <fstream>

#include "diagnose/expiry.hpp"

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
