// Local password hashes: scrypt through OpenSSL ("$scrypt$ln=14,r=8,p=1$salt$hash",
// 16-byte salt and 32-byte hash in base64), PBKDF2-SHA256 accepted for
// verification ("$pbkdf2-sha256$i=ITER$salt$hash"). Comparisons are constant-time.
// verify_password() returns false for a malformed hash and never throws;
// hash_password() throws std::runtime_error only when OpenSSL fails.
#pragma once
#include <iosfwd>
#include <string>
#include <string_view>

namespace xo::auth {

std::string hash_password(std::string_view password);
bool verify_password(std::string_view password, std::string_view hash);
// True for a hash verify_password() understands (scheme, parameters in range, base64).
bool is_valid_hash(std::string_view hash);

// 'xoauth2-proxy hash-password': the password is all of standard input with one
// trailing newline ("\n" or "\r\n") removed; anything else is kept.
std::string password_from_input(std::string_view input);
// Reads `in` to the end, writes the hash and a newline to `out`; 0, or 2 with a
// message on `err` when the password is empty.
int hash_password_command(std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace xo::auth
