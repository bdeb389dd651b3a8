// util/text: UTF-8 validation (RFC 3629: no overlongs, surrogates or code
// points above U+10FFFF), log escaping, JSON-safe replacement and cuts on
// character boundaries, each driven by a table.
#include <gtest/gtest.h>

#include "util/text.hpp"

using namespace xo::util;

namespace {
struct Utf8Case {
    const char* name;
    std::string bytes;
    bool valid;
};
}  // namespace

TEST(TextValidUtf8, Table) {
    const std::vector<Utf8Case> cases = {
        {"empty", "", true},
        {"ascii", "user@example.com", true},
        {"2-byte", "p\xc3\xa4ssword", true},
        {"3-byte euro", "\xe2\x82\xac", true},
        {"4-byte emoji", "\xf0\x9f\x98\x80", true},
        {"U+10FFFF", "\xf4\x8f\xbf\xbf", true},
        {"U+FFFD", "\xef\xbf\xbd", true},
        {"lone continuation", "\x80", false},
        {"0xff", "\xff" "0@domain", false},
        {"0xfe", "\xfe", false},
        {"overlong '/' 2-byte", "\xc0\xaf", false},
        {"overlong NUL 2-byte", "\xc1\x80", false},
        {"overlong 3-byte", "\xe0\x80\xaf", false},
        {"overlong 4-byte", "\xf0\x80\x80\xaf", false},
        {"surrogate U+D800", "\xed\xa0\x80", false},
        {"surrogate U+DFFF", "\xed\xbf\xbf", false},
        {"above U+10FFFF (F4 90)", "\xf4\x90\x80\x80", false},
        {"F5 lead", "\xf5\x80\x80\x80", false},
        {"truncated 2-byte at end", "ab\xc3", false},
        {"truncated 3-byte at end", "ab\xe2\x82", false},
        {"truncated 4-byte at end", "ab\xf0\x9f\x98", false},
        {"truncated 3-byte before ascii", "\xe2\x82" "a", false},
        {"2-byte with bad continuation", "\xc3\x28", false},
    };
    for (const auto& c : cases) EXPECT_EQ(valid_utf8(c.bytes), c.valid) << c.name;
}

TEST(TextLogEscape, Table) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"plain", "plain"},
        {"a\nsession deadbeef end result=ok", "a\\x0asession deadbeef end result=ok"},
        {"cr\r", "cr\\x0d"},
        {"tab\t", "tab\\x09"},
        {std::string("nul\0x", 5), "nul\\x00x"},
        {"del\x7f", "del\\x7f"},
        {"esc\x1b[31m", "esc\\x1b[31m"},
        {"quote\"back\\", "quote\\x22back\\x5c"},
        {"p\xc3\xa4ss", "p\xc3\xa4ss"},                // valid UTF-8 is kept
        {"\xff" "0@domain", "\\xff0@domain"},          // invalid bytes escaped
        {"cut \xe2\x82", "cut \\xe2\\x82"},
        {"\xed\xa0\x80", "\\xed\\xa0\\x80"},            // a surrogate is not text
    };
    for (const auto& [in, out] : cases) {
        EXPECT_EQ(log_escape(in), out);
        EXPECT_TRUE(valid_utf8(log_escape(in)));
        EXPECT_EQ(log_escape(in).find('\n'), std::string::npos);
    }
}

TEST(TextUtf8Safe, Table) {
    const std::string r = "\xef\xbf\xbd";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"ok", "ok"},
        {"p\xc3\xa4ss", "p\xc3\xa4ss"},
        {"\xff", r},
        {"a\xff" "b", "a" + r + "b"},
        {"\xc0\xaf", r + r},                      // overlong: each byte replaced
        {"\xf4\x90\x80\x80", r + r + r + r},      // > U+10FFFF
        {"end \xe2\x82", "end " + r + r},         // cut 3-byte character
        {"line\nfeed", "line\nfeed"},             // control characters are JSON's business
    };
    for (const auto& [in, out] : cases) {
        EXPECT_EQ(utf8_safe(in), out);
        EXPECT_TRUE(valid_utf8(utf8_safe(in)));
    }
}

TEST(TextTruncateUtf8, Table) {
    struct Case {
        const char* name;
        std::string in;
        std::size_t max;
        std::string out;
    };
    const std::vector<Case> cases = {
        {"shorter", "abc", 10, "abc"},
        {"exact", "abc", 3, "abc"},
        {"ascii cut", "abcdef", 4, "abcd"},
        {"zero", "abc", 0, ""},
        {"inside 2-byte", "ab\xc3\xa4", 3, "ab"},
        {"after 2-byte", "ab\xc3\xa4x", 4, "ab\xc3\xa4"},
        {"inside 3-byte (1 of 3)", "a\xe2\x82\xac", 2, "a"},
        {"inside 3-byte (2 of 3)", "a\xe2\x82\xac", 3, "a"},
        {"inside 4-byte (1 of 4)", "a\xf0\x9f\x98\x80", 2, "a"},
        {"inside 4-byte (2 of 4)", "a\xf0\x9f\x98\x80", 3, "a"},
        {"inside 4-byte (3 of 4)", "a\xf0\x9f\x98\x80", 4, "a"},
        {"after 4-byte", "a\xf0\x9f\x98\x80z", 5, "a\xf0\x9f\x98\x80"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(truncate_utf8(c.in, c.max), c.out) << c.name;
        EXPECT_LE(truncate_utf8(c.in, c.max).size(), c.max) << c.name;
        EXPECT_TRUE(valid_utf8(truncate_utf8(c.in, c.max))) << c.name;
    }
}
