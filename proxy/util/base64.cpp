#include "util/base64.hpp"

#include <array>
#include <cstdint>

namespace xo::util {
namespace {
constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view in, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = in.size() - i;
    if (rest) {
        uint32_t v = uint8_t(in[i]) << 16;
        if (rest == 2) v |= uint8_t(in[i + 1]) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        if (rest == 2) out += alphabet[(v >> 6) & 63];
        if (pad) out.append(rest == 1 ? 2 : 1, '=');
    }
    return out;
}

std::optional<std::string> decode(std::string_view in, const char* alphabet, bool padding_required) {
    std::array<int8_t, 256> map;
    map.fill(-1);
    for (int i = 0; i < 64; ++i) map[uint8_t(alphabet[i])] = int8_t(i);
    std::size_t pad = 0;
    while (pad < 2 && in.size() > pad && in[in.size() - 1 - pad] == '=') ++pad;
    std::string_view body = in.substr(0, in.size() - pad);
    if (padding_required && in.size() % 4 != 0) return std::nullopt;
    if (pad && in.size() % 4 != 0) return std::nullopt;
    if (body.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(body.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : body) {
        int8_t v = map[uint8_t(c)];
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((acc >> bits) & 0xff);
        }
    }
    return out;
}
}  // namespace

std::string base64_encode(std::string_view in) { return encode(in, kStd, true); }
std::optional<std::string> base64_decode(std::string_view in) { return decode(in, kStd, true); }
std::string base64url_encode(std::string_view in) { return encode(in, kUrl, false); }
std::optional<std::string> base64url_decode(std::string_view in) { return decode(in, kUrl, false); }
}  // namespace xo::util
