#include "oauth/jwt.hpp"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <stdexcept>

#include "net/tls.hpp"
#include "util/base64.hpp"

namespace xo::oauth {
namespace {

struct BioDeleter { void operator()(BIO* b) const { BIO_free(b); } };
using Bio = std::unique_ptr<BIO, BioDeleter>;

Bio open_file(const std::string& path) {
    Bio bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) throw std::runtime_error("cannot open " + path + ": " + net::openssl_error());
    return bio;
}

}  // namespace

PrivateKey load_private_key_file(const std::string& path) {
    auto bio = open_file(path);
    PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) throw std::runtime_error(path + ": not a PEM private key (" + net::openssl_error() + ")");
    return key;
}

PrivateKey load_private_key_pem(const std::string& pem, const std::string& what) {
    Bio bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
    PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) throw std::runtime_error(what + ": not a PEM private key (" + net::openssl_error() + ")");
    return key;
}

Certificate load_certificate_file(const std::string& path) {
    auto bio = open_file(path);
    Certificate cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) throw std::runtime_error(path + ": not a PEM certificate (" + net::openssl_error() + ")");
    return cert;
}

std::string sign_jwt(nlohmann::json header, const nlohmann::json& claims, EVP_PKEY* key, JwtAlg alg) {
    header["alg"] = alg == JwtAlg::rs256 ? "RS256" : "PS256";
    std::string input = util::base64url_encode(header.dump()) + "." + util::base64url_encode(claims.dump());
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) != 1)
        throw std::runtime_error("JWT sign init: " + net::openssl_error());
    if (alg == JwtAlg::ps256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
            throw std::runtime_error("JWT PS256 setup: " + net::openssl_error());
    }
    std::size_t len = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1)
        throw std::runtime_error("JWT sign: " + net::openssl_error());
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        throw std::runtime_error("JWT sign: " + net::openssl_error());
    sig.resize(len);
    return input + "." + util::base64url_encode(sig);
}

namespace {
std::string thumbprint(X509* cert, const EVP_MD* md) {
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, md, buf, &len) != 1) throw std::runtime_error("certificate digest failed");
    return util::base64url_encode(std::string_view(reinterpret_cast<char*>(buf), len));
}
}  // namespace

std::string cert_thumbprint_sha1(X509* cert) { return thumbprint(cert, EVP_sha1()); }
std::string cert_thumbprint_sha256(X509* cert) { return thumbprint(cert, EVP_sha256()); }

std::string random_uuid() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char out[37];
    std::snprintf(out, sizeof out,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                  b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return out;
}

}  // namespace xo::oauth
