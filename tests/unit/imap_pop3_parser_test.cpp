// IMAP and POP3 parsing without sockets: commands with atoms, quoted strings
// and literals (synchronising and LITERAL+), errors with the tag, response
// lines, capabilities; POP3 commands, status lines and CAPA.
#include <gtest/gtest.h>

#include "imap/parser.hpp"
#include "pop3/parser.hpp"

using namespace xo;

namespace {
// Feeds a client's bytes the way the session does: line by line, literals by size.
imap::CommandParser::Status feed_bytes(imap::CommandParser& p, const std::string& bytes, std::size_t& pos,
                                       std::vector<bool>* sync_literals = nullptr) {
    for (;;) {
        auto nl = bytes.find("\r\n", pos);
        if (nl == std::string::npos) return imap::CommandParser::Status::error;
        auto st = p.feed_line(std::string_view(bytes).substr(pos, nl - pos));
        pos = nl + 2;
        if (st != imap::CommandParser::Status::need_literal) return st;
        if (sync_literals) sync_literals->push_back(p.literal_synchronizing());
        std::size_t n = p.literal_size();
        p.feed_literal(std::string_view(bytes).substr(pos, n));
        pos += n;
    }
}
}  // namespace

TEST(ImapParser, AtomsQuotedAndLiterals) {
    struct Case { std::string wire; std::string tag, name; std::vector<std::string> args; std::vector<bool> sync; };
    const std::vector<Case> cases = {
        {"a1 CAPABILITY\r\n", "a1", "CAPABILITY", {}, {}},
        {"A2 login erp secret\r\n", "A2", "LOGIN", {"erp", "secret"}, {}},
        {"a3 LOGIN \"erp\" \"pass word\\\"1\"\r\n", "a3", "LOGIN", {"erp", "pass word\"1"}, {}},
        {"a4 LOGIN {3}\r\nerp {11}\r\npass word\"1\r\n", "a4", "LOGIN", {"erp", "pass word\"1"}, {true, true}},
        {"a5 LOGIN {3+}\r\nerp \"x\\\\y\"\r\n", "a5", "LOGIN", {"erp", "x\\y"}, {false}},
        {"a6 AUTHENTICATE PLAIN AGVycABwdw==\r\n", "a6", "AUTHENTICATE", {"PLAIN", "AGVycABwdw=="}, {}},
        {"a7 ID (\"name\" \"client\")\r\n", "a7", "ID", {"(", "name", "client", ")"}, {}},
        {"a8 LOGIN {0}\r\n {2}\r\n\r\n\r\n", "a8", "LOGIN", {"", "\r\n"}, {true, true}},
    };
    for (const auto& c : cases) {
        imap::CommandParser p;
        std::size_t pos = 0;
        std::vector<bool> sync;
        ASSERT_EQ(feed_bytes(p, c.wire, pos, &sync), imap::CommandParser::Status::complete) << c.wire << ": " << p.error();
        EXPECT_EQ(pos, c.wire.size());
        auto cmd = p.take();
        EXPECT_EQ(cmd.tag, c.tag);
        EXPECT_EQ(cmd.name, c.name);
        EXPECT_EQ(cmd.args, c.args) << c.wire;
        EXPECT_EQ(sync, c.sync) << c.wire;
    }
}

TEST(ImapParser, ErrorsKeepTheTag) {
    for (const auto& [wire, tag] : std::vector<std::pair<std::string, std::string>>{
             {"a1 LOGIN \"unterminated\r\n", "a1"},
             {"a2 LOGIN {99999999}\r\n", "a2"},
             {"a3 LOGIN \"bad\\escape\"\r\n", "a3"},
             {"\"quoted\" LOGIN x y\r\n", ""},
             {"a4\r\n", "a4"},
             {std::string("a5 NOOP \0\r\n", 11), ""}}) {
        imap::CommandParser p;
        std::size_t pos = 0;
        EXPECT_EQ(feed_bytes(p, wire, pos), imap::CommandParser::Status::error) << wire;
        EXPECT_FALSE(p.error().empty());
        if (!tag.empty()) {
            EXPECT_EQ(p.tag(), tag) << wire;
        }
    }
    imap::CommandParser small(16, 3);
    std::size_t pos = 0;
    std::string many = "a1 X a b c d\r\n";
    EXPECT_EQ(feed_bytes(small, many, pos), imap::CommandParser::Status::error);
    EXPECT_EQ(small.error(), "too many arguments");
}

TEST(ImapParser, ResponsesAndCapabilities) {
    auto r = imap::parse_response_line("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready");
    EXPECT_EQ(r.kind, imap::ResponseLine::Kind::untagged);
    EXPECT_EQ(r.status, "OK");
    EXPECT_EQ(r.code, "CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2");
    auto caps = imap::parse_capabilities(r.code);
    EXPECT_TRUE(caps.count("SASL-IR"));
    EXPECT_TRUE(caps.count("AUTH=XOAUTH2"));
    EXPECT_FALSE(caps.count("CAPABILITY"));
    r = imap::parse_response_line("x2 NO [AUTHENTICATIONFAILED] Authentication failed.");
    EXPECT_EQ(r.kind, imap::ResponseLine::Kind::tagged);
    EXPECT_EQ(r.tag, "x2");
    EXPECT_EQ(r.code, "AUTHENTICATIONFAILED");
    EXPECT_EQ(r.text, "Authentication failed.");
    r = imap::parse_response_line("+ eyJzdGF0dXMiOiI0MDEifQ==");
    EXPECT_EQ(r.kind, imap::ResponseLine::Kind::continuation);
    EXPECT_EQ(r.text, "eyJzdGF0dXMiOiI0MDEifQ==");
    EXPECT_EQ(imap::parse_response_line("").kind, imap::ResponseLine::Kind::invalid);
    EXPECT_EQ(imap::trailing_literal("* ID (\"name\" {5}").value(), 5u);
    EXPECT_EQ(imap::trailing_literal("* 1 FETCH (BODY[] {123+}").value(), 123u);
    EXPECT_FALSE(imap::trailing_literal("* OK {x}"));
    EXPECT_EQ(imap::quote("pass \"word\""), "\"pass \\\"word\\\"\"");
    EXPECT_EQ(imap::quote("a\r\nb"), "{4}\r\na\r\nb");
}

TEST(Pop3Parser, CommandsStatusAndCapa) {
    auto c = pop3::parse_command("pass pass word\"1");
    EXPECT_EQ(c.verb, "PASS");
    EXPECT_EQ(c.arg, "pass word\"1");   // the whole rest of the line
    EXPECT_EQ(pop3::parse_command("CAPA").arg, "");
    auto s = pop3::parse_status("-ERR [SYS/TEMP] try later");
    EXPECT_EQ(s.kind, pop3::Status::Kind::err);
    EXPECT_EQ(s.code, "SYS/TEMP");
    EXPECT_EQ(s.text, "try later");
    EXPECT_EQ(pop3::parse_status("+OK Logged in.").kind, pop3::Status::Kind::ok);
    EXPECT_EQ(pop3::parse_status("+ eyJ9").kind, pop3::Status::Kind::continuation);
    EXPECT_EQ(pop3::parse_status("+ eyJ9").text, "eyJ9");
    EXPECT_EQ(pop3::parse_status("HELLO").kind, pop3::Status::Kind::invalid);
    std::set<std::string> caps;
    pop3::add_capa_line(caps, "SASL XOAUTH2 plain");
    pop3::add_capa_line(caps, "stls");
    EXPECT_TRUE(caps.count("SASL:XOAUTH2"));
    EXPECT_TRUE(caps.count("SASL:PLAIN"));
    EXPECT_TRUE(caps.count("STLS"));
}
