// Drives a protocol machine from a transcript, with no sockets. A transcript
// (tests/unit/data/machines/NAME.txt) holds, in order:
//   C: a line the client sends            S: a line the client must receive
//   F: a line forwarded to the upstream   A: another action ("login erp", "start_tls", ...)
//   U: the upstream's reply to the next forwarded command (else a default one)
//   L: the outcome of the next login (ok, bad, busy, unavailable; default ok)
//   P: the refusal of the next upstream preparation (SMTP MAIL; default: ready)
//   @ option (before the first C:)          # comment
// The driver feeds the C: lines, carries out the actions with fakes, and the
// test compares everything the machine produced (S:, F:, A: lines) with the
// transcript's. Set XO_TRANSCRIPT_DUMP=1 to print what was produced.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "server/outcome.hpp"

namespace xo::test {

struct MachineTranscript {
    std::string name;
    std::set<std::string> options;
    struct Step {
        char kind;   // 'C', 'S', 'F', 'A', 'U', 'L'
        std::string text;
    };
    std::vector<Step> steps;
};

inline MachineTranscript load_machine_transcript(const std::string& name) {
    std::ifstream f(std::string(XO_SOURCE_DIR) + "/tests/unit/data/machines/" + name);
    EXPECT_TRUE(f) << name;
    MachineTranscript t;
    t.name = name;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line.rfind("@ ", 0) == 0) {
            t.options.insert(line.substr(2));
            continue;
        }
        if (line.size() < 2 || line[1] != ':') {
            ADD_FAILURE() << name << ": bad line " << line;
            continue;
        }
        t.steps.push_back({line[0], line.size() > 3 ? line.substr(3) : ""});
    }
    return t;
}

inline server::LoginOutcome login_outcome(const std::string& s) {
    if (s == "bad") return server::LoginOutcome::bad_credentials;
    if (s == "busy") return server::LoginOutcome::busy;
    if (s == "unavailable") return server::LoginOutcome::upstream_unavailable;
    return server::LoginOutcome::ok;
}

// Splits reply text ("a\r\nb\r\n") into lines.
inline void add_lines(std::vector<std::string>& out, char kind, const std::string& text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto e = text.find("\r\n", pos);
        if (e == std::string::npos) e = text.size();
        out.push_back(std::string(1, kind) + ": " + text.substr(pos, e - pos));
        pos = e + 2;
    }
}

// Compares what was produced with the transcript's S:/F:/A: lines.
// `trace` holds the C: lines fed too, where they were fed.
inline void expect_output(const MachineTranscript& t, const std::vector<std::string>& trace) {
    std::vector<std::string> want, got;
    for (const auto& s : t.steps)
        if (s.kind == 'S' || s.kind == 'F' || s.kind == 'A') want.push_back(std::string(1, s.kind) + ": " + s.text);
    for (const auto& g : trace)
        if (g.rfind("C: ", 0) != 0) got.push_back(g);
    if (std::getenv("XO_TRANSCRIPT_DUMP"))
        for (const auto& g : trace) std::cout << t.name << " | " << g << "\n";
    std::size_t n = std::max(want.size(), got.size());
    for (std::size_t i = 0; i < n; ++i) {
        std::string w = i < want.size() ? want[i] : "(nothing)";
        std::string g = i < got.size() ? got[i] : "(nothing)";
        if (w != g) {
            ADD_FAILURE() << t.name << " line " << i << ": want [" << w << "] got [" << g << "]";
            return;
        }
    }
}

}  // namespace xo::test
