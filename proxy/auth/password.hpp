// Local password hashes: scrypt through OpenSSL ("$scrypt$ln=14,r=8,p=1$salt$hash",
// salt and hash in base64), PBKDF2-SHA256 accepted for verification
// ("$pbkdf2-sha256$i=ITER$salt$hash"). Comparisons are constant-time.
// verify_password() returns false for a malformed hash; it never throws.
#pragma once
#include <string>
#include <string_view>

namespace xo::auth {

std::string hash_password(std::string_view password);
bool verify_password(std::string_view password, std::string_view hash);
bool is_valid_hash(std::string_view hash);

}  // namespace xo::auth
