// net::openssl_error(): the OpenSSL error queue in words, for the JWT signer
// and the Redis client alike; it leaves the queue empty, so that an old error
// is never blamed on a later call.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <string>

#include "net/tls.hpp"

// As a certificate file that holds no PEM fails to load (jwt.cpp's load_certificate_file).
TEST(OpensslError, FailingPemReadInWordsAndQueueDrained) {
    ERR_clear_error();
    const char text[] = "this is not a PEM certificate\n";
    BIO* bio = BIO_new_mem_buf(text, int(sizeof text - 1));
    ASSERT_NE(bio, nullptr);
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ASSERT_EQ(cert, nullptr);
    ASSERT_NE(ERR_peek_error(), 0u);

    std::string why = xo::net::openssl_error();
    EXPECT_NE(why.find("PEM routines"), std::string::npos) << why;
    EXPECT_NE(why.find("no start line"), std::string::npos) << why;
    EXPECT_EQ(ERR_peek_error(), 0u) << "the queue was left with errors in it";
}

TEST(OpensslError, FirstOfSeveralErrorsAndQueueDrained) {
    ERR_clear_error();
    ERR_raise(ERR_LIB_PEM, PEM_R_BAD_PASSWORD_READ);
    ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
    std::string why = xo::net::openssl_error();
    EXPECT_NE(why.find("PEM routines"), std::string::npos) << why;   // the first, not the last
    EXPECT_NE(why.find("bad password read"), std::string::npos) << why;
    EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(OpensslError, EmptyQueueSaysSo) {
    ERR_clear_error();
    EXPECT_EQ(xo::net::openssl_error(), "unknown OpenSSL error");
}
