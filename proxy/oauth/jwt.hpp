// JSON Web Tokens signed with RS256 or PS256 (RFC 7515/7518) through OpenSSL,
// for client assertions (Microsoft) and JWT bearer grants (Google).
// Loading functions throw std::runtime_error with the file name and OpenSSL's
// reason; signing throws on an internal OpenSSL failure, and nlohmann's
// type_error for a claim that is not valid UTF-8: claims name identities, so
// they are never silently replaced: callers check outside input first.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace xo::oauth {

struct PkeyDeleter { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct X509Deleter { void operator()(X509* x) const { X509_free(x); } };
using PrivateKey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using Certificate = std::unique_ptr<X509, X509Deleter>;

PrivateKey load_private_key_file(const std::string& path);
PrivateKey load_private_key_pem(const std::string& pem, const std::string& what);
Certificate load_certificate_file(const std::string& path);

enum class JwtAlg { rs256, ps256 };

// header and claims are serialized compactly; "alg" is set from `alg`.
std::string sign_jwt(nlohmann::json header, const nlohmann::json& claims, EVP_PKEY* key, JwtAlg alg);

// base64url of the SHA-1 (x5t) or SHA-256 (x5t#S256) of the certificate's DER.
std::string cert_thumbprint_sha1(X509* cert);
std::string cert_thumbprint_sha256(X509* cert);

// A random version 4 UUID, for jti.
std::string random_uuid();

}  // namespace xo::oauth
