// IMAP parsing without sockets, fed as a byte stream (whole, split at every
// byte, byte by byte): commands with atoms, quoted strings and literals
// (synchronising and LITERAL+), raw AUTHENTICATE lines, errors with the tag
// and recovery; upstream responses with skipped literals; capabilities; quoting.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "imap/parser.hpp"
#include "sasl/sasl.hpp"
#include "parser_test_util.hpp"

using namespace xo::imap;

namespace {
using xo::test::for_each_split;
using xo::test::load_transcript;
using xo::test::Transcript;


// What a session sees, as text: "+" for a continuation, "C tag NAME [arg|arg]",
// "L line" for a raw line, "E tag error" (with "!" when fatal). A command named
// AUTHENTICATE switches the parser to raw-line mode for one line.
std::vector<std::string> drive(CommandParser& p, const std::vector<std::string_view>& parts) {
    std::vector<std::string> ev;
    for (auto part : parts) {
        for (;;) {
            auto e = p.feed(part);
            if (e == CommandParser::Event::need_more) break;
            if (e == CommandParser::Event::continuation) {
                ev.push_back("+");
            } else if (e == CommandParser::Event::line) {
                ev.push_back("L " + p.raw_line());
            } else if (e == CommandParser::Event::error) {
                ev.push_back("E " + p.tag() + " " + p.error() + (p.fatal() ? "!" : ""));
            } else {
                Command c = p.take();
                std::string s = "C " + c.tag + " " + c.name + " [";
                for (std::size_t i = 0; i < c.args.size(); ++i) s += (i ? "|" : "") + c.args[i];
                ev.push_back(s + "]");
                if (c.name == "AUTHENTICATE") p.next_line();   // the answer to our challenge comes next
            }
        }
        EXPECT_TRUE(part.empty());
    }
    return ev;
}

void expect_events(const std::string& wire, const std::vector<std::string>& want, std::size_t max_literal = 8192,
                   std::size_t max_args = 32, std::size_t max_line = 8192) {
    for_each_split(wire, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        CommandParser p(max_literal, max_args, max_line);
        EXPECT_EQ(drive(p, parts), want) << how << " of\n" << wire;
    });
}

}  // namespace

TEST(ImapCommand, AtomsQuotedStringsAndLiterals) {
    struct Case { std::string wire; std::vector<std::string> events; };
    const std::vector<Case> cases = {
        {"a1 CAPABILITY\r\n", {"C a1 CAPABILITY []"}},
        {"a1 noop\n", {"C a1 NOOP []"}},   // a bare LF is accepted
        {"A2 login erp secret\r\n", {"C A2 LOGIN [erp|secret]"}},
        {"a3 LOGIN \"erp\" \"pass word\\\"1\"\r\n", {"C a3 LOGIN [erp|pass word\"1]"}},
        {"a4 LOGIN {3}\r\nerp {11}\r\npass word\"1\r\n", {"+", "+", "C a4 LOGIN [erp|pass word\"1]"}},
        {"a5 LOGIN {3+}\r\nerp \"x\\\\y\"\r\n", {"C a5 LOGIN [erp|x\\y]"}},
        {"a6 AUTHENTICATE PLAIN AGVycABwdw==\r\n", {"C a6 AUTHENTICATE [PLAIN|AGVycABwdw==]"}},
        {"a7 ID (\"name\" \"client\" \"version\" NIL)\r\n", {"C a7 ID [(|name|client|version|NIL|)]"}},
        {"a8 LOGIN {0}\r\n {2}\r\n\r\n\r\n", {"+", "+", "C a8 LOGIN [|\r\n]"}},
        {"a9 LOGIN {4+}\r\n{}\r\n \"\"\r\n", {"C a9 LOGIN [{}\r\n|]"}},
        {"b1 ID ({4}\r\nname {3+}\r\nabc)\r\n", {"+", "C b1 ID [(|name|abc|)]"}},
        {"b2 LOGOUT\r\nb3 STARTTLS\r\nb4 NOOP\r\n", {"C b2 LOGOUT []", "C b3 STARTTLS []", "C b4 NOOP []"}},
        {"b5 AUTHENTICATE XOAUTH2\r\ndXNlcj0=\r\nb6 AUTHENTICATE plain\r\n*\r\nb7 NOOP\r\n",
         {"C b5 AUTHENTICATE [XOAUTH2]", "L dXNlcj0=", "C b6 AUTHENTICATE [plain]", "L *", "C b7 NOOP []"}},
        {"b8 AUTHENTICATE PLAIN\r\n\r\n", {"C b8 AUTHENTICATE [PLAIN]", "L "}},
    };
    for (const auto& c : cases) expect_events(c.wire, c.events);
}

TEST(ImapCommand, ErrorsKeepTheTagAndTheNextCommandParses) {
    struct Case { std::string wire; std::vector<std::string> events; };
    const std::vector<Case> cases = {
        {"a1 LOGIN \"unterminated\r\nz NOOP\r\n", {"E a1 unterminated quoted string", "C z NOOP []"}},
        {"a2 LOGIN {99999}\r\nz NOOP\r\n", {"E a2 literal too large (99999 octets)", "C z NOOP []"}},
        {"a3 LOGIN \"bad\\escape\"\r\n", {"E a3 bad escape in quoted string"}},
        {"\"quoted\" LOGIN x y\r\n", {"E  bad tag"}},
        {"a+b NOOP\r\n", {"E  bad tag"}},
        {"a4\r\n", {"E a4 missing command"}},
        {"\r\n", {"E  missing tag"}},
        {"a5 LOGIN x{3}\r\n", {"E a5 literal must follow a space"}},
        {"a6 {3}\r\n", {"E a6 literal before the command name"}},
        {std::string("a7 NOOP \0\r\n", 11), {"E a7 NUL in command"}},
        {"a8 LOGIN a b c d\r\n", {"E a8 too many arguments"}},
        {"a9 LOGIN a b c {1}\r\n", {"E a9 too many arguments"}},
        {"c1 LOGIN {99999+}\r\n", {"E c1 literal too large (99999 octets)!"}},   // its bytes follow: fatal
        {"c2 LOGIN a b c {1+}\r\nx\r\n", {"E c2 too many arguments!", "E x missing command"}},
        {"c3 (NOOP\r\n", {"E c3 bad command name"}},
        {"c4 LOGIN \x01\r\n", {"E c4 unexpected character"}},
    };
    for (const auto& c : cases) expect_events(c.wire, c.events, 16, 3);
}

TEST(ImapCommand, LongLinesAreDiscardedWithBoundedMemory) {
    // max_line 32: 32 octets fit, 33 do not; the tag of an overlong line is kept.
    std::string fits = "a1 LOGIN " + std::string(23, 'x');
    ASSERT_EQ(fits.size(), 32u);
    expect_events(fits + "\r\n" + fits + "y\r\nz NOOP\r\n",
                  {"C a1 LOGIN [" + std::string(23, 'x') + "]", "E a1 line too long", "C z NOOP []"}, 8192, 32, 32);
    expect_events(std::string(100, 'q') + "\r\nz NOOP\r\n", {"E  line too long", "C z NOOP []"}, 8192, 32, 32);
    // An overlong line announcing a LITERAL+ leaves bytes we cannot skip.
    expect_events("a2 LOGIN " + std::string(40, 'x') + " {5+}\r\n", {"E a2 line too long!"}, 8192, 32, 32);
    expect_events("a3 LOGIN " + std::string(40, 'x') + " {5}\r\nz NOOP\r\n", {"E a3 line too long", "C z NOOP []"}, 8192,
                  32, 32);
    // Raw lines have the same limit.
    expect_events("a4 AUTHENTICATE PLAIN\r\n" + std::string(40, 'A') + "\r\nz NOOP\r\n",
                  {"C a4 AUTHENTICATE [PLAIN]", "E  line too long", "C z NOOP []"}, 8192, 32, 32);

    CommandParser p(8192, 32, 1024);
    std::string junk(1 << 20, 'x');
    std::string_view in = junk;
    EXPECT_EQ(p.feed(in), CommandParser::Event::need_more);
    EXPECT_TRUE(in.empty());
    in = "\r\n";
    EXPECT_EQ(p.feed(in), CommandParser::Event::error);
}

TEST(ImapCommand, LineAtATimeInterface) {
    CommandParser p;
    EXPECT_EQ(p.feed_line("a1 LOGIN {3}"), CommandParser::Status::need_literal);
    EXPECT_EQ(p.literal_size(), 3u);
    EXPECT_TRUE(p.literal_synchronizing());
    EXPECT_EQ(p.feed_literal("erp"), CommandParser::Status::need_literal);
    EXPECT_EQ(p.feed_line(" {4+}"), CommandParser::Status::need_literal);
    EXPECT_FALSE(p.literal_synchronizing());
    p.feed_literal("pass");
    EXPECT_EQ(p.feed_line(""), CommandParser::Status::complete);
    Command c = p.take();
    EXPECT_EQ(c.args, (std::vector<std::string>{"erp", "pass"}));
    EXPECT_EQ(p.feed_line("a2 LOGIN {2}"), CommandParser::Status::need_literal);
    EXPECT_EQ(p.feed_literal("abc"), CommandParser::Status::error);
    p.reset();
    EXPECT_EQ(p.feed_line("a3 NOOP"), CommandParser::Status::complete);
    EXPECT_EQ(p.take().tag, "a3");
}

TEST(ImapResponse, LinesSplitAtEveryByteWithLiteralsSkipped) {
    const std::string wire =
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=XOAUTH2] ready\r\n"
        "* ID (\"name\" {7}\r\nDove\r\nt \"os\" {5+}\r\nLinux)\r\n"
        "x1 OK ID completed\r\n"
        "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"
        "+\r\n"
        "x2 NO [AUTHENTICATIONFAILED] Authentication failed.\n"
        "* BYE [UNAVAILABLE] shutting down\r\n"
        "x3 ok\r\n";
    for_each_split(wire, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        ResponseParser p;
        std::vector<ResponseLine> got;
        for (auto part : parts) {
            ResponseLine r;
            ResponseParser::Status st;
            while ((st = p.feed(part, r)) == ResponseParser::Status::response) got.push_back(r);
            ASSERT_EQ(st, ResponseParser::Status::need_more) << how << ": " << p.error();
        }
        ASSERT_EQ(got.size(), 8u) << how;
        EXPECT_EQ(got[0].kind, ResponseLine::Kind::untagged);
        EXPECT_EQ(got[0].status, "OK");
        EXPECT_EQ(got[0].code_name(), "CAPABILITY");
        EXPECT_EQ(got[0].text, "ready");
        EXPECT_EQ(got[1].status, "ID");
        EXPECT_EQ(got[1].literal_bytes, 12u);
        EXPECT_EQ(got[1].text, "(\"name\" {7} \"os\" {5+})");
        EXPECT_EQ(got[2].kind, ResponseLine::Kind::tagged);
        EXPECT_EQ(got[2].tag, "x1");
        EXPECT_EQ(got[2].literal_bytes, 0u);
        EXPECT_EQ(got[3].kind, ResponseLine::Kind::continuation);
        EXPECT_EQ(got[3].text, "eyJzdGF0dXMiOiI0MDEifQ==");
        EXPECT_EQ(got[4].kind, ResponseLine::Kind::continuation);
        EXPECT_EQ(got[4].text, "");
        EXPECT_EQ(got[5].status, "NO");
        EXPECT_EQ(got[5].code, "AUTHENTICATIONFAILED");
        EXPECT_EQ(got[5].code_name(), "AUTHENTICATIONFAILED");
        EXPECT_EQ(got[5].text, "Authentication failed.");
        EXPECT_EQ(got[6].status, "BYE");
        EXPECT_EQ(got[6].code_name(), "UNAVAILABLE");
        EXPECT_EQ(got[7].status, "OK");
        EXPECT_EQ(got[7].text, "");
    });
}

TEST(ImapResponse, Errors) {
    for (std::string bad : {"\r\n", "garbage\r\n", "* \r\n", " OK x\r\n"}) {
        ResponseParser p;
        ResponseLine r;
        std::string_view in = bad;
        EXPECT_EQ(p.feed(in, r), ResponseParser::Status::error) << bad;
        std::string_view more = "* OK\r\n";
        EXPECT_EQ(p.feed(more, r), ResponseParser::Status::error);   // sticky
        p.reset();
        more = "* OK\r\n";
        EXPECT_EQ(p.feed(more, r), ResponseParser::Status::response);
    }
    ResponseParser p(100);
    ResponseLine r;
    std::string huge = "* OK " + std::string(200, 'x');
    std::string_view in = huge;
    EXPECT_EQ(p.feed(in, r), ResponseParser::Status::error);
    EXPECT_EQ(parse_response_line("").kind, ResponseLine::Kind::invalid);
    EXPECT_EQ(parse_response_line("a1").kind, ResponseLine::Kind::invalid);
    EXPECT_EQ(trailing_literal("* ID (\"name\" {5}").value(), 5u);
    EXPECT_EQ(trailing_literal("* 1 FETCH (BODY[] {123+}").value(), 123u);
    EXPECT_FALSE(trailing_literal("* OK {x}"));
    EXPECT_FALSE(trailing_literal("* OK {}"));
    EXPECT_FALSE(trailing_literal("* OK {12345678901}"));
}

TEST(ImapCapabilities, FromUntaggedAndResponseCode) {
    auto a = Capabilities::from_response(parse_response_line("* CAPABILITY IMAP4rev1 sasl-ir AUTH=XOAUTH2 auth=oauthbearer"));
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->has("SASL-IR"));
    EXPECT_TRUE(a->has("imap4rev1"));
    EXPECT_TRUE(a->has_auth("xoauth2"));
    EXPECT_TRUE(a->has_auth("OAUTHBEARER"));
    EXPECT_FALSE(a->has_auth("PLAIN"));
    EXPECT_EQ(a->auth_mechanisms(), (std::set<std::string>{"XOAUTH2", "OAUTHBEARER"}));
    auto b = Capabilities::from_response(parse_response_line("x1 OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Pre-login"));
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->has("STARTTLS"));
    EXPECT_TRUE(b->has("LOGINDISABLED"));
    EXPECT_TRUE(b->auth_mechanisms().empty());
    EXPECT_FALSE(Capabilities::from_response(parse_response_line("* OK [ALERT] hello")));
    EXPECT_FALSE(Capabilities::from_response(parse_response_line("+ CAPABILITY x")));
    EXPECT_EQ(parse_capabilities("CAPABILITY IMAP4rev1  ID"), (std::set<std::string>{"IMAP4REV1", "ID"}));
    EXPECT_EQ(Capabilities::parse("").items.size(), 0u);
}

TEST(ImapQuote, QuotedOrLiteral) {
    EXPECT_EQ(quote("erp"), "\"erp\"");
    EXPECT_EQ(quote(""), "\"\"");
    EXPECT_EQ(quote("pass \"word\""), "\"pass \\\"word\\\"\"");
    EXPECT_EQ(quote("a\\b"), "\"a\\\\b\"");
    EXPECT_EQ(quote("a\r\nb"), "{4}\r\na\r\nb");
    EXPECT_EQ(quote("p\xc3\xa4ss", true), "{5+}\r\np\xc3\xa4ss");
    // What quote() writes, the command parser reads back.
    for (std::string s : {"x", "pass \"word\"", "a\\b", "a\r\nb", "", "{3}"}) {
        std::string wire = "t LOGIN " + quote(s, true) + " " + quote(s) + "\r\n";
        CommandParser p;
        std::vector<std::string> ev = drive(p, {wire});
        ASSERT_FALSE(ev.empty());
        std::string want = "C t LOGIN [" + s + "|" + s + "]";
        EXPECT_EQ(ev.back(), want) << wire;
    }
}

TEST(ImapTranscript, Gmail) {
    Transcript t = load_transcript("imap_gmail.txt");
    std::vector<ResponseLine> lines;
    for_each_split(t.server, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        ResponseParser p;
        std::vector<ResponseLine> got;
        for (auto part : parts) {
            ResponseLine r;
            ResponseParser::Status st;
            while ((st = p.feed(part, r)) == ResponseParser::Status::response) got.push_back(r);
            ASSERT_EQ(st, ResponseParser::Status::need_more) << how << ": " << p.error();
        }
        EXPECT_EQ(got.size(), 9u) << how;
        lines = got;
    });
    ASSERT_EQ(lines.size(), 9u);
    auto caps = Capabilities::from_response(lines[1]);
    ASSERT_TRUE(caps);
    EXPECT_TRUE(caps->has("SASL-IR"));
    EXPECT_TRUE(caps->has_auth("XOAUTH2"));
    EXPECT_TRUE(caps->has_auth("OAUTHBEARER"));
    EXPECT_FALSE(caps->has("LITERAL+"));
    EXPECT_EQ(lines[2].tag, "a1");
    EXPECT_EQ(lines[5].kind, ResponseLine::Kind::continuation);
    auto challenge = xo::sasl::parse_error_challenge(lines[5].text);
    ASSERT_TRUE(challenge);
    EXPECT_EQ(challenge->status, "400");
    EXPECT_TRUE(challenge->retry_with_fresh_token);
    EXPECT_EQ(lines[6].status, "NO");
    EXPECT_EQ(lines[6].code_name(), "AUTHENTICATIONFAILED");
    EXPECT_EQ(lines[7].status, "BYE");

    // The client's side through the command parser: after AUTHENTICATE the
    // session reads the answer to its challenge as a raw line.
    const std::string ir = t.client_lines[2].substr(std::string("a3 AUTHENTICATE XOAUTH2 ").size());
    for_each_split(t.client, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        CommandParser p;
        EXPECT_EQ(drive(p, parts), (std::vector<std::string>{"C a1 CAPABILITY []",
                                                             "C a2 ID [(|name|xoauth2-proxy|version|0.1.0|)]",
                                                             "C a3 AUTHENTICATE [XOAUTH2|" + ir + "]", "L ",
                                                             "C a4 LOGOUT []"}))
            << how;
    });
}
