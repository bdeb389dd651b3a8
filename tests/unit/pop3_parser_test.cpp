// POP3 parsing without sockets: command lines with their limits, status
// lines, responses fed as a byte stream (whole, split at every byte, byte by
// byte) with a dot-unstuffed CAPA list, capabilities.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "pop3/parser.hpp"
#include "sasl/sasl.hpp"
#include "parser_test_util.hpp"

namespace {
using xo::test::for_each_split;
using xo::test::load_transcript;
using xo::test::Transcript;

}  // namespace

using namespace xo::pop3;

TEST(Pop3Command, VerbsAndArguments) {
    struct Case { std::string line; std::string verb, arg; bool error; };
    const std::vector<Case> cases = {
        {"CAPA", "CAPA", "", false},
        {"capa", "CAPA", "", false},
        {"user erp@contoso.com", "USER", "erp@contoso.com", false},
        {"PASS pass word\"1 ", "PASS", "pass word\"1 ", false},   // the whole rest, spaces included
        {"PASS ", "PASS", "", false},
        {"AUTH PLAIN AGVycABwdw==", "AUTH", "PLAIN AGVycABwdw==", false},
        {"auth", "AUTH", "", false},
        {"STLS", "STLS", "", false},
        {"Quit", "QUIT", "", false},
        {"NOOP", "NOOP", "", false},
        {"", "", "", false},
        {"PASS " + std::string(248, 'p'), "PASS", std::string(248, 'p'), false},   // 253 octets
        {"PASS " + std::string(249, 'p'), "", "", true},
        {"AUTH XOAUTH2 " + std::string(12000, 'A'), "AUTH", "XOAUTH2 " + std::string(12000, 'A'), false},
        {"AUTH XOAUTH2 " + std::string(12280, 'A'), "", "", true},
        {"AUTHX " + std::string(300, 'A'), "", "", true},
        {std::string("PASS a\0b", 8), "", "", true},
        {"PASS a\rb", "", "", true},
    };
    for (const auto& c : cases) {
        auto p = parse_command(c.line);
        EXPECT_EQ(p.verb, c.verb) << c.line.substr(0, 40);
        EXPECT_EQ(p.arg, c.arg) << c.line.substr(0, 40);
        EXPECT_EQ(!p.error.empty(), c.error) << c.line.substr(0, 40);
        if (c.error) {
            EXPECT_EQ(p.error.substr(0, 5), "-ERR ");
        }
    }
    EXPECT_EQ(parse_command("PASS " + std::string(1000, 'p'), 2048).arg.size(), 1000u);   // a roomier limit
}

TEST(Pop3Status, Lines) {
    struct Case { std::string line; Status::Kind kind; std::string code, text; };
    const std::vector<Case> cases = {
        {"+OK Logged in.", Status::Kind::ok, "", "Logged in."},
        {"+OK", Status::Kind::ok, "", ""},
        {"-ERR [SYS/TEMP] try later", Status::Kind::err, "SYS/TEMP", "try later"},
        {"-ERR [AUTH] Authentication failed.", Status::Kind::err, "AUTH", "Authentication failed."},
        {"-ERR", Status::Kind::err, "", ""},
        {"-ERR [IN-USE]", Status::Kind::err, "IN-USE", ""},
        {"+ eyJ9", Status::Kind::continuation, "", "eyJ9"},
        {"+ ", Status::Kind::continuation, "", ""},
        {"+", Status::Kind::continuation, "", ""},
        {"+OKAY", Status::Kind::invalid, "", ""},
        {"-ERROR x", Status::Kind::invalid, "", ""},
        {"+x", Status::Kind::invalid, "", ""},
        {"HELLO", Status::Kind::invalid, "", ""},
        {"", Status::Kind::invalid, "", ""},
    };
    for (const auto& c : cases) {
        auto s = parse_status(c.line);
        EXPECT_EQ(s.kind, c.kind) << c.line;
        EXPECT_EQ(s.code, c.code) << c.line;
        EXPECT_EQ(s.text, c.text) << c.line;
    }
}

TEST(Pop3Response, DialogueSplitAtEveryByte) {
    // Greeting, CAPA (multi-line, one stuffed line), AUTH continuation and
    // failure, a refused CAPA (no body follows a -ERR), STLS.
    const std::string wire = "+OK Dovecot ready.\r\n"
                             "+OK\r\nCAPA\r\nTOP\r\nSASL PLAIN XOAUTH2 oauthbearer\r\n..dotted\r\nSTLS\n.\r\n"
                             "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"
                             "-ERR [AUTH] Authentication failed.\r\n"
                             "-ERR unknown command\r\n"
                             "+OK Begin TLS negotiation now.\r\n";
    auto run = [&](const std::vector<std::string_view>& parts, const std::string& how) {
        ResponseParser p;
        std::vector<Response> got;
        int multiline_for[] = {1, 4};   // the responses that answer a CAPA
        auto arm = [&] {
            for (int i : multiline_for)
                if (int(got.size()) == i) p.expect_multiline();
        };
        arm();
        for (auto part : parts) {
            Response r;
            ResponseParser::Result st;
            while ((st = p.feed(part, r)) == ResponseParser::Result::response) {
                got.push_back(r);
                arm();
            }
            ASSERT_EQ(st, ResponseParser::Result::need_more) << how << ": " << p.error();
        }
        ASSERT_EQ(got.size(), 6u) << how;
        EXPECT_EQ(got[0].status.text, "Dovecot ready.");
        EXPECT_EQ(got[1].status.kind, Status::Kind::ok);
        EXPECT_EQ(got[1].lines, (std::vector<std::string>{"CAPA", "TOP", "SASL PLAIN XOAUTH2 oauthbearer", ".dotted", "STLS"}));
        EXPECT_EQ(got[2].status.kind, Status::Kind::continuation);
        EXPECT_EQ(got[2].status.text, "eyJzdGF0dXMiOiI0MDEifQ==");
        EXPECT_EQ(got[3].status.code, "AUTH");
        EXPECT_EQ(got[4].status.kind, Status::Kind::err);
        EXPECT_TRUE(got[4].lines.empty());
        EXPECT_EQ(got[5].status.kind, Status::Kind::ok);
        EXPECT_TRUE(got[5].lines.empty());
        auto caps = Capabilities::from_lines(got[1].lines);
        EXPECT_TRUE(caps.has("stls"));
        EXPECT_TRUE(caps.has("SASL"));
        EXPECT_TRUE(caps.has_sasl("xoauth2"));
        EXPECT_TRUE(caps.has_sasl("OAUTHBEARER"));
        EXPECT_FALSE(caps.has_sasl("LOGIN"));
        EXPECT_FALSE(caps.has("USER"));
    };
    std::string_view w = wire;
    run({w}, "whole");
    for (std::size_t s = 0; s <= w.size(); ++s) run({w.substr(0, s), w.substr(s)}, "split " + std::to_string(s));
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < w.size(); ++i) bytes.push_back(w.substr(i, 1));
    run(bytes, "byte by byte");
}

TEST(Pop3Response, Errors) {
    for (std::string bad : {"HELLO\r\n", "\r\n", "+OKAY\r\n"}) {
        ResponseParser p;
        Response r;
        std::string_view in = bad;
        EXPECT_EQ(p.feed(in, r), ResponseParser::Result::error) << bad;
        std::string_view more = "+OK\r\n";
        EXPECT_EQ(p.feed(more, r), ResponseParser::Result::error);   // sticky
        p.reset();
        more = "+OK\r\n";
        EXPECT_EQ(p.feed(more, r), ResponseParser::Result::response);
    }
    {
        ResponseParser p(16);
        Response r;
        std::string_view in = "+OK 0123456789ab\r\n";   // 16 octets fit
        EXPECT_EQ(p.feed(in, r), ResponseParser::Result::response);
        in = "+OK 0123456789abc\r\n";
        EXPECT_EQ(p.feed(in, r), ResponseParser::Result::error);
    }
    {
        ResponseParser p(8192, 3);
        p.expect_multiline();
        Response r;
        std::string_view in = "+OK\r\na\r\nb\r\nc\r\n.\r\n";
        EXPECT_EQ(p.feed(in, r), ResponseParser::Result::response);
        EXPECT_EQ(r.lines.size(), 3u);
        p.expect_multiline();
        in = "+OK\r\na\r\nb\r\nc\r\nd\r\n.\r\n";
        EXPECT_EQ(p.feed(in, r), ResponseParser::Result::error);
    }
}

TEST(Pop3Capabilities, LinesAndSet) {
    std::set<std::string> caps;
    add_capa_line(caps, "SASL XOAUTH2 plain");
    add_capa_line(caps, "stls");
    add_capa_line(caps, "");
    EXPECT_EQ(caps, (std::set<std::string>{"SASL", "SASL:XOAUTH2", "SASL:PLAIN", "STLS"}));
    auto c = Capabilities::from_lines({"USER", "SASL  PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                                       "IMPLEMENTATION Dovecot"});
    EXPECT_EQ(c.items, (std::set<std::string>{"USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION"}));
    EXPECT_EQ(c.sasl, (std::set<std::string>{"PLAIN"}));
    EXPECT_FALSE(c.has("STLS"));
}

TEST(Pop3Transcript, Dovecot) {
    Transcript t = load_transcript("pop3_dovecot.txt");
    // One response to the greeting and one to each client line; CAPA answers are multi-line.
    std::vector<bool> multiline = {false};
    for (const auto& c : t.client_lines) multiline.push_back(c == "CAPA");
    std::string_view w = t.server;
    std::vector<std::vector<std::string_view>> splits = {{w}};
    for (std::size_t s = 0; s <= w.size(); ++s) splits.push_back({w.substr(0, s), w.substr(s)});
    for (const auto& parts : splits) {
        ResponseParser p;
        std::vector<Response> got;
        p.expect_multiline(multiline[0]);
        for (auto part : parts) {
            Response r;
            ResponseParser::Result st;
            while ((st = p.feed(part, r)) == ResponseParser::Result::response) {
                got.push_back(r);
                if (got.size() < multiline.size()) p.expect_multiline(multiline[got.size()]);
            }
            ASSERT_EQ(st, ResponseParser::Result::need_more) << p.error();
        }
        ASSERT_EQ(got.size(), multiline.size());
        auto before = Capabilities::from_lines(got[1].lines);
        auto after = Capabilities::from_lines(got[3].lines);
        EXPECT_TRUE(before.has("STLS"));
        EXPECT_FALSE(before.has_sasl("XOAUTH2"));
        EXPECT_FALSE(after.has("STLS"));
        EXPECT_TRUE(after.has_sasl("XOAUTH2"));
        EXPECT_TRUE(after.has("AUTH-RESP-CODE"));
        EXPECT_EQ(got[4].status.kind, Status::Kind::continuation);
        auto challenge = xo::sasl::parse_error_challenge(got[4].status.text);
        ASSERT_TRUE(challenge);
        EXPECT_TRUE(challenge->retry_with_fresh_token);
        EXPECT_EQ(got[5].status.kind, Status::Kind::err);
        EXPECT_EQ(got[5].status.code, "AUTH");
        EXPECT_EQ(got[6].status.text, "Logging out.");
    }
    for (const auto& line : t.client_lines) {
        auto c = parse_command(line);
        EXPECT_TRUE(c.error.empty()) << line.substr(0, 20);
    }
    EXPECT_EQ(parse_command(t.client_lines[3]).verb, "AUTH");
}
