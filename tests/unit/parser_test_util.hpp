// Helpers shared by the parser tests: feeding a wire whole, split at every
// point and byte by byte, and reading C:/S: transcripts from
// tests/unit/data/transcripts.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace xo::test {

// Calls f with the wire cut into pieces: whole, at every split point, byte by byte.
inline void for_each_split(const std::string& wire,
                           const std::function<void(const std::vector<std::string_view>&, const std::string&)>& f) {
    std::string_view w = wire;
    f({w}, "whole");
    for (std::size_t s = 0; s <= w.size(); ++s) f({w.substr(0, s), w.substr(s)}, "split " + std::to_string(s));
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < w.size(); ++i) bytes.push_back(w.substr(i, 1));
    f(bytes, "byte by byte");
}

// The server's and the client's bytes of a transcript (CRLF added), and the client's lines.
struct Transcript {
    std::string server, client;
    std::vector<std::string> client_lines;
};
inline Transcript load_transcript(const std::string& name) {
    std::ifstream f(std::string(XO_SOURCE_DIR) + "/tests/unit/data/transcripts/" + name);
    EXPECT_TRUE(f) << name;
    Transcript t;
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("S: ", 0) == 0) t.server += line.substr(3) + "\r\n";
        if (line.rfind("C: ", 0) == 0) {
            t.client += line.substr(3) + "\r\n";
            t.client_lines.push_back(line.substr(3));
        }
    }
    return t;
}

}  // namespace xo::test
