// Helpers shared by the libFuzzer targets: a reader over the fuzzer's bytes
// (options taken from the front, the rest as a stream), chunking of a stream at
// input-chosen points, and check() that aborts (a finding) when an invariant
// breaks. No target throws: an escaping exception is a finding too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace xo::fuzz {

class Input {
public:
    Input(const uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
    // One byte from the front (0 when empty).
    uint8_t byte() {
        if (rest_.empty()) return 0;
        uint8_t b = uint8_t(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }
    std::string_view rest() const { return rest_; }

private:
    std::string_view rest_;
};

// A small deterministic generator for the scripted fakes' choices.
class Choices {
public:
    explicit Choices(uint32_t seed) : s_(seed * 2654435761u + 1) {}
    uint32_t next() {
        s_ ^= s_ << 13;
        s_ ^= s_ >> 17;
        s_ ^= s_ << 5;
        return s_;
    }
    bool one_in(uint32_t n) { return next() % n == 0; }

private:
    uint32_t s_;
};

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
}
inline void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

// True when `s` ends in CRLF and holds no other CR or LF: one protocol line.
inline bool one_line(std::string_view s) {
    if (s.size() < 2 || s.substr(s.size() - 2) != "\r\n") return false;
    return s.substr(0, s.size() - 2).find_first_of("\r\n") == std::string_view::npos;
}
// True when `s` is lines each ending in CRLF, with no bare CR or LF.
inline bool crlf_lines(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return false;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
    }
    return s.empty() || (s.size() >= 2 && s.substr(s.size() - 2) == "\r\n");
}

}  // namespace xo::fuzz
