// Base64 (RFC 4648 section 4) and base64url (section 5, unpadded) codecs.
// decode functions return std::nullopt on any character outside the alphabet
// or a malformed length; whitespace is not skipped.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace xo::util {
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);
std::string base64url_encode(std::string_view in);        // no padding
std::optional<std::string> base64url_decode(std::string_view in);  // padding optional
}  // namespace xo::util
