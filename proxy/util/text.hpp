// Text that crosses a trust boundary: bytes from clients and providers are
// checked as UTF-8 before they reach an upstream, a log line or a JSON
// document. Pure functions; none throws.
//   valid_utf8     well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF)
//   log_escape     for log lines: control bytes, DEL, '"', '\' and bytes of
//                  invalid UTF-8 become \xNN, so no value can forge a line
//   utf8_safe      for JSON: invalid sequences replaced by U+FFFD
//   truncate_utf8  at most max_bytes, cut before a character, never inside it
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace xo::util {

bool valid_utf8(std::string_view s);
// Bytes of s that start a valid UTF-8 sequence: length of that sequence, else 0.
std::size_t utf8_sequence_length(std::string_view s, std::size_t at);
std::string log_escape(std::string_view s);
std::string utf8_safe(std::string_view s);
std::string truncate_utf8(std::string_view s, std::size_t max_bytes);
// RFC 3986 percent-encoding: every byte but the unreserved ALPHA DIGIT - . _ ~
std::string url_encode(std::string_view s);

}  // namespace xo::util
