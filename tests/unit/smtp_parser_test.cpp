// SMTP parsing without sockets: commands, paths, the line splitter, replies
// split at every byte, EHLO capabilities, and the DATA scanner against a
// reference implementation fed at every split point. SASL is in sasl_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "smtp/parser.hpp"
#include "sasl/sasl.hpp"
#include "parser_test_util.hpp"

using namespace xo::smtp;

namespace {
using xo::test::for_each_split;
using xo::test::load_transcript;
using xo::test::Transcript;


}  // namespace

TEST(SmtpCommand, VerbsAndArguments) {
    struct Case { std::string line; Verb verb; std::string arg; bool error; };
    const std::vector<Case> cases = {
        {"EHLO client.example", Verb::Ehlo, "client.example", false},
        {"ehlo x", Verb::Ehlo, "x", false},
        {"HeLo x", Verb::Helo, "x", false},
        {"MAIL FROM:<a@b.c> SIZE=10", Verb::Mail, "FROM:<a@b.c> SIZE=10", false},
        {"rcpt to:<x@y.z>  ", Verb::Rcpt, "to:<x@y.z>", false},
        {"DATA", Verb::Data, "", false},
        {"data ", Verb::Data, "", false},
        {"RSET", Verb::Rset, "", false},
        {"NOOP anything", Verb::Noop, "anything", false},
        {"QUIT", Verb::Quit, "", false},
        {"VRFY postmaster", Verb::Vrfy, "postmaster", false},
        {"help", Verb::Help, "", false},
        {"AUTH PLAIN AGEAYg==", Verb::Auth, "PLAIN AGEAYg==", false},
        {"starttls", Verb::Starttls, "", false},
        {"BDAT 100 LAST", Verb::Bdat, "100 LAST", false},
        {"XYZZY", Verb::Unknown, "", false},
        {"", Verb::Unknown, "", false},
        {"MAILFROM:<a@b>", Verb::Unknown, "", false},
        {std::string("NOOP\0x", 6), Verb::Unknown, "", true},
        {"NOOP a\rb", Verb::Unknown, "a\rb", true},
        {"RSET\r", Verb::Unknown, "", true},
    };
    for (const auto& c : cases) {
        auto p = parse_command(c.line);
        EXPECT_EQ(p.verb, c.verb) << c.line;
        EXPECT_EQ(p.arg, c.arg) << c.line;
        EXPECT_EQ(!p.error.empty(), c.error) << c.line;
        if (c.error) {
            EXPECT_EQ(p.error.substr(0, 9), "500 5.5.2");
        }
    }
}

TEST(SmtpPath, Accepted) {
    using Params = std::vector<std::pair<std::string, std::string>>;
    struct Case { std::string arg; bool mail; std::string address; Params params; };
    const std::vector<Case> cases = {
        {"FROM:<erp@contoso.com>", true, "erp@contoso.com", {}},
        {"from:<erp@contoso.com>", true, "erp@contoso.com", {}},
        {"FROM: <a@b.c>", true, "a@b.c", {}},                       // old clients put a space
        {"FROM:  <a@b.c> ", true, "a@b.c", {}},
        {"FROM:<>", true, "", {}},                                  // null sender
        {"FROM:<> AUTH=<>", true, "", {{"AUTH", "<>"}}},
        {"FROM:<erp@contoso.com> SIZE=1000 body=8bitmime smtputf8", true, "erp@contoso.com",
         {{"SIZE", "1000"}, {"BODY", "8bitmime"}, {"SMTPUTF8", ""}}},
        {"FROM:<a@b.c> BODY=7BIT", true, "a@b.c", {{"BODY", "7BIT"}}},
        {"FROM:<a@b.c>  RET=HDRS ENVID=QQ314159", true, "a@b.c", {{"RET", "HDRS"}, {"ENVID", "QQ314159"}}},
        {"FROM:<\"a b\"@c.d>", true, "\"a b\"@c.d", {}},
        {"FROM:<\"a>b\\\"c\"@c.d>", true, "\"a>b\\\"c\"@c.d", {}},
        {"FROM:<@relay.example,@r2.example:a@b.c>", true, "a@b.c", {}},
        {"FROM:<first.last+tag@sub.example.co.uk>", true, "first.last+tag@sub.example.co.uk", {}},
        {"FROM:<a@[192.0.2.1]>", true, "a@[192.0.2.1]", {}},
        {"FROM:<a@[IPv6:2001:db8::1]>", true, "a@[IPv6:2001:db8::1]", {}},
        {"FROM:<j\xc3\xb6rg@b\xc3\xbc.example> SMTPUTF8", true, "j\xc3\xb6rg@b\xc3\xbc.example", {{"SMTPUTF8", ""}}},
        {"TO:<x@y.z>", false, "x@y.z", {}},
        {"to: <x@y.z> NOTIFY=SUCCESS,FAILURE", false, "x@y.z", {{"NOTIFY", "SUCCESS,FAILURE"}}},
        {"TO:<Postmaster>", false, "Postmaster", {}},
        {"TO:<" + std::string(250, 'a') + "@b.c>", false, std::string(250, 'a') + "@b.c", {}},   // 254 octets
    };
    for (const auto& c : cases) {
        auto r = c.mail ? parse_mail_from(c.arg) : parse_rcpt_to(c.arg);
        ASSERT_TRUE(r.ok()) << c.arg << ": " << r.error;
        EXPECT_EQ(r.path.address, c.address) << c.arg;
        EXPECT_EQ(r.path.params, c.params) << c.arg;
    }
    auto r = parse_mail_from("FROM:<a@b.c> SIZE=42");
    ASSERT_TRUE(r.path.param("size"));
    EXPECT_EQ(*r.path.param("SIZE"), "42");
    EXPECT_EQ(r.path.param("BODY"), nullptr);
}

TEST(SmtpPath, Refused) {
    struct Case { std::string arg; bool mail; std::string reply; };
    const std::vector<Case> cases = {
        {"FROM:a@b.c", true, "501 5.5.4 Syntax: MAIL FROM:<address>"},
        {"TO:<a@b.c>", true, "501 5.5.4 Syntax: MAIL FROM:<address>"},
        {"FROM <a@b.c>", true, "501 5.5.4"},
        {"", true, "501 5.5.4"},
        {"FROM:", true, "501 5.5.4"},
        {"FROM:<a@b.c", true, "501 5.5.4"},
        {"FROM:<a@b.c>SIZE=1", true, "501 5.5.4"},
        {"FROM:<\"a@b.c>", true, "501 5.5.4"},                 // unterminated quote hides the '>'
        {"FROM:<noat>", true, "501 5.1.7"},
        {"FROM:<@b.c>", true, "501 5.1.7"},
        {"FROM:<a@>", true, "501 5.1.7"},
        {"FROM:<a b@c.d>", true, "501 5.1.7"},
        {"FROM:<a@b c.d>", true, "501 5.1.7"},
        {"FROM:<a@.b.c>", true, "501 5.1.7"},
        {"FROM:<a@b..c>", true, "501 5.1.7"},
        {"FROM:<a@[1.2.3.4>", true, "501 5.1.7"},
        {"FROM:<a(b)@c.d>", true, "501 5.1.7"},
        {"FROM:<\"a\"b@c.d>", true, "501 5.1.7"},
        {"FROM:<@relay.example>", true, "501 5.1.7"},
        {"FROM:<@relay.example:>", true, "501 5.1.7"},
        {"FROM:<a\tb@c.d>", true, "501 5.1.7"},
        {"FROM:<" + std::string(250, 'a') + "@bc.d>", true, "501 5.1.7"},   // 255 octets
        {"FROM:<a@b.c> SIZE=", true, "501 5.5.4"},
        {"FROM:<a@b.c> SIZE=12k", true, "501 5.5.4 Syntax: SIZE"},
        {"FROM:<a@b.c> SIZE=123456789012345678901", true, "501 5.5.4"},
        {"FROM:<a@b.c> BODY=9BIT", true, "501 5.5.4 Unsupported BODY"},
        {"FROM:<a@b.c> SMTPUTF8=yes", true, "501 5.5.4"},
        {"FROM:<a@b.c> SIZE=1 size=2", true, "501 5.5.4 Duplicate parameter SIZE"},
        {"FROM:<a@b.c> =x", true, "501 5.5.4 Bad parameter"},
        {"FROM:<a@b.c> -X=1", true, "501 5.5.4 Bad parameter"},
        {"FROM:<a@b.c> X_Y=1", true, "501 5.5.4 Bad parameter"},
        {"TO:<>", false, "501 5.1.3"},
        {"TO:<a@b.c", false, "501 5.5.4 Syntax: RCPT TO:<address>"},
        {"FROM:<a@b.c>", false, "501 5.5.4"},
        {"TO:<postmaster@>", false, "501 5.1.3"},
        {"TO:<" + std::string(260, 'a') + "@b.c>", false, "501 5.1.3"},
    };
    for (const auto& c : cases) {
        auto r = c.mail ? parse_mail_from(c.arg) : parse_rcpt_to(c.arg);
        EXPECT_FALSE(r.ok()) << c.arg;
        EXPECT_EQ(r.error.substr(0, c.reply.size()), c.reply) << c.arg << " -> " << r.error;
    }
}

TEST(SmtpLineBuffer, SplitsCrlfAndBareLfAtEveryByte) {
    const std::string wire = "EHLO a\r\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n\r\nDATA\r\n";
    const std::vector<std::string> want = {"EHLO a", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "", "DATA"};
    for_each_split(wire, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        LineBuffer b(64);
        std::vector<std::string> got;
        std::string line;
        for (auto part : parts) {
            LineBuffer::Status st;
            while ((st = b.feed(part, line)) != LineBuffer::Status::need_more) {
                ASSERT_EQ(st, LineBuffer::Status::line) << how;
                got.push_back(line);
            }
            EXPECT_TRUE(part.empty());
        }
        EXPECT_EQ(got, want) << how;
        EXPECT_EQ(b.buffered(), 0u);
    });
}

TEST(SmtpLineBuffer, TooLongIsDiscardedThroughItsEnd) {
    for (std::size_t chunk : {1, 7, 100, 100000}) {
        LineBuffer b(10);
        // Exactly 10 fits (with CRLF or LF), 11 does not; the next line is intact.
        std::string wire = "0123456789\r\n0123456789\n0123456789A\r\n" + std::string(50000, 'x') + "\r\nQUIT\r\n";
        std::vector<std::string> got;
        std::size_t max_buffered = 0;
        std::string line;
        for (std::size_t pos = 0; pos < wire.size(); pos += chunk) {
            std::string_view part = std::string_view(wire).substr(pos, chunk);
            for (;;) {
                auto st = b.feed(part, line);
                max_buffered = std::max(max_buffered, b.buffered());
                if (st == LineBuffer::Status::need_more) break;
                got.push_back(st == LineBuffer::Status::line ? line : "<too long>");
            }
        }
        EXPECT_EQ(got, (std::vector<std::string>{"0123456789", "0123456789", "<too long>", "<too long>", "QUIT"}))
            << "chunk " << chunk;
        EXPECT_LE(max_buffered, 11u);
    }
    LineBuffer b;
    EXPECT_EQ(b.max_line(), kMaxCommandLine);
    b.set_max_line(kMaxAuthLine);
    std::string auth(12000, 'A');
    auth += "\r\n";
    std::string_view in = auth;
    std::string line;
    EXPECT_EQ(b.feed(in, line), LineBuffer::Status::line);
    EXPECT_EQ(line.size(), 12000u);
}

TEST(SmtpReply, PipelinedRepliesSplitAtEveryByte) {
    const std::string wire = "250-mail.example greets you\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
                             "250-AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n250 STARTTLS\r\n"
                             "535 5.7.3 Authentication unsuccessful\r\n334 \r\n250\r\n"
                             "220 bare lf\n354 End data with <CR><LF>.<CR><LF>\r\n";
    for_each_split(wire, [&](const std::vector<std::string_view>& parts, const std::string& how) {
        ReplyParser p;
        std::vector<Reply> got;
        for (auto part : parts) {
            Reply r;
            ReplyParser::Status st;
            while ((st = p.feed(part, r)) == ReplyParser::Status::reply) got.push_back(r);
            ASSERT_EQ(st, ReplyParser::Status::need_more) << how << ": " << p.error();
        }
        EXPECT_FALSE(p.partial());
        ASSERT_EQ(got.size(), 6u) << how;
        EXPECT_EQ(got[0].code, 250);
        EXPECT_EQ(got[0].lines.size(), 5u);
        EXPECT_EQ(got[0].wire(), wire.substr(0, wire.find("535")));
        EXPECT_EQ(got[1].enhanced(), "5.7.3");
        EXPECT_EQ(got[1].text(), "5.7.3 Authentication unsuccessful");
        EXPECT_EQ(got[2].code, 334);
        EXPECT_EQ(got[2].lines, std::vector<std::string>{""});
        EXPECT_EQ(got[3].code, 250);
        EXPECT_EQ(got[3].lines, std::vector<std::string>{""});
        EXPECT_EQ(got[4].text(), "bare lf");
        EXPECT_EQ(got[5].code, 354);
    });
}

TEST(SmtpReply, EnhancedCodesAndWire) {
    struct Case { std::string first; std::string enhanced; };
    for (const auto& c : std::vector<Case>{{"2.1.0 Ok", "2.1.0"},
                                           {"5.7.139 Authentication unsuccessful", "5.7.139"},
                                           {"4.7.0", "4.7.0"},
                                           {"5.5.127 Token will expire soon", "5.5.127"},
                                           {"smtp.gmail.com at your service", ""},
                                           {"3.1.0 class 3 is not one", ""},
                                           {"5.1234.1 too many digits", ""},
                                           {"5.1.1x", ""},
                                           {"5..1 x", ""},
                                           {"", ""}}) {
        Reply r{550, {c.first}};
        EXPECT_EQ(r.enhanced(), c.enhanced) << c.first;
    }
    EXPECT_EQ((Reply{250, {}}).wire(), "250\r\n");
    EXPECT_EQ((Reply{250, {"a", "b"}}).text(), "a b");
    EXPECT_EQ((Reply{221, {"2.0.0 Bye"}}).wire(), "221 2.0.0 Bye\r\n");
}

TEST(SmtpReply, Errors) {
    for (std::string bad : {"25 short\r\n", "abc text\r\n", "250-a\r\n251 b\r\n", "250x\r\n", "\r\n", "2500 x\r\n",
                            "-250 x\r\n", "020 x\r\n", "650 x\r\n", "150 x\r\n"}) {
        ReplyParser p;
        Reply r;
        std::string_view in = bad;
        ReplyParser::Status st;
        while ((st = p.feed(in, r)) == ReplyParser::Status::reply) {}
        EXPECT_EQ(st, ReplyParser::Status::error) << bad;
        EXPECT_FALSE(p.error().empty());
        std::string_view more = "250 ok\r\n";
        EXPECT_EQ(p.feed(more, r), ReplyParser::Status::error);   // sticky
    }
    {   // 8192 octets of line fit, 8193 do not, even before the end of line arrives
        ReplyParser p;
        Reply r;
        std::string ok = "250 " + std::string(8188, 'x') + "\r\n";
        std::string_view in = ok;
        EXPECT_EQ(p.feed(in, r), ReplyParser::Status::reply);
        std::string huge(9000, 'x');
        in = huge;
        EXPECT_EQ(p.feed(in, r), ReplyParser::Status::error);
        p.reset();
        in = "250 ok\r\n";
        EXPECT_EQ(p.feed(in, r), ReplyParser::Status::reply);
    }
    for (std::size_t n : {1000u, 1001u}) {
        std::string wire;
        for (std::size_t i = 1; i < n; ++i) wire += "250-line\r\n";
        wire += "250 last\r\n";
        ReplyParser p;
        Reply r;
        std::string_view in = wire;
        EXPECT_EQ(p.feed(in, r), n == 1000 ? ReplyParser::Status::reply : ReplyParser::Status::error) << n;
    }
}

TEST(SmtpCapabilities, FromEhlo) {
    Reply ehlo{250, {"smtp.office365.com Hello [192.0.2.1]", "SIZE 157286400", "PIPELINING", "DSN",
                     "ENHANCEDSTATUSCODES", "AUTH LOGIN XOAUTH2", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"}};
    auto c = Capabilities::from_ehlo(ehlo);
    EXPECT_FALSE(c.starttls);
    EXPECT_TRUE(c.pipelining && c.enhancedstatuscodes && c.eightbitmime && c.chunking && c.smtputf8);
    EXPECT_EQ(c.size.value(), 157286400u);
    EXPECT_EQ(c.auth, (std::set<std::string>{"LOGIN", "XOAUTH2"}));
    EXPECT_TRUE(c.has_auth("xoauth2"));
    EXPECT_FALSE(c.has_auth("OAUTHBEARER"));

    // Old style "AUTH=" lines next to the new one; SIZE without a number; the
    // greeting line is not a capability.
    auto old = Capabilities::from_ehlo(Reply{250, {"STARTTLS greets", "auth=LOGIN PLAIN", "AUTH  CRAM-MD5 xoauth2",
                                                   "size", "starttls"}});
    EXPECT_TRUE(old.starttls);
    EXPECT_EQ(old.auth, (std::set<std::string>{"LOGIN", "PLAIN", "CRAM-MD5", "XOAUTH2"}));
    EXPECT_EQ(old.size.value(), 0u);
    EXPECT_FALSE(old.pipelining);
    EXPECT_FALSE(Capabilities::from_ehlo(Reply{250, {"STARTTLS"}}).starttls);
    EXPECT_FALSE(Capabilities::from_ehlo(Reply{250, {"x"}}).size);
}

namespace {
// The straightforward reference: split into lines at CRLF, bare LF and bare
// CR; only a "." line between two CRLFs ends the message. Every line is
// re-emitted with CRLF, the stuffing kept, a lone "." that does not end the
// message stuffed to ".."; count unstuffed bytes and bare line ends.
struct Ref {
    std::string out;
    std::size_t end = std::string::npos, bytes = 0, bare = 0;
};
Ref reference(const std::string& in) {
    Ref r;
    std::size_t pos = 0;
    bool after_crlf = true;
    while (pos < in.size()) {
        std::size_t e = in.find_first_of("\r\n", pos);
        if (e == std::string::npos) break;
        std::string line = in.substr(pos, e - pos);
        bool crlf = in[e] == '\r' && e + 1 < in.size() && in[e + 1] == '\n';
        if (in[e] == '\r' && e + 1 == in.size()) break;   // CR at the end: undecided
        pos = e + (crlf ? 2 : 1);
        if (line == "." && after_crlf && crlf) {
            r.out += ".\r\n";
            r.end = pos;
            return r;
        }
        r.out += (line == "." ? std::string("..") : line) + "\r\n";
        r.bytes += (line == "." ? 1 : line.size() - (!line.empty() && line[0] == '.')) + 2;
        if (!crlf) ++r.bare;
        after_crlf = crlf;
    }
    return r;
}

const std::vector<std::string> kMessages = {
    ".\r\nMAIL FROM:<next@x.y>\r\n",
    "Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    "..stuffed\r\n.leading\r\n...\r\n..\r\n.\r\n",
    "bare\nlf\nlines\n.\nRSET\r\n.\r\n",
    "mixed\r\nline\nends\r\n.\r\n",
    "no dot here\r\n.x\r\n. \r\n.\r\n",
    "lone\rcr\r\r\n.\r\r\n.\rx\r\n\r.\r\n.\r\n",
    "a.\r\n.\r\n",
    "\r\n\n.\r\n\r\n.\r\n",
    // SMTP smuggling (CVE-2023-51764 and relatives): none of these ends the message early.
    "x\n.\r\nMAIL FROM:<ceo@x.y>\r\n.\r\n",
    "x\r\n.\nMAIL FROM:<ceo@x.y>\r\n.\r\n",
    "x\n.\nMAIL FROM:<ceo@x.y>\r\n.\r\n",
    "x\r.\r\nMAIL FROM:<ceo@x.y>\r\n.\r\n",
    "x\r\n.\rMAIL FROM:<ceo@x.y>\r\n.\r\n",
};
}  // namespace

TEST(SmtpDataScanner, SmugglingNeverEndsTheMessage) {
    // Defect 1 of issue 11: a bare LF or CR next to the dot ended DATA, and the
    // bytes after it ran as commands (a second message as another mailbox).
    for (std::string lead : {"x\n.\r\n", "x\r\n.\n", "x\n.\n", "x\r.\r\n", "x\r\n.\r", "x\r\n.\r\r\n"}) {
        DataScanner s;
        std::string out;
        std::string msg = lead + "MAIL FROM:<ceo@x.y>\r\n";
        auto r = s.feed(msg, out);
        EXPECT_FALSE(r.done) << lead;
        EXPECT_EQ(r.consumed, msg.size()) << lead;
        EXPECT_GE(s.bare_newlines(), 1u) << lead;
        EXPECT_EQ(out.find("\r\n.\r\n"), std::string::npos) << lead;   // no receiver sees an end either
    }
    DataScanner clean;
    std::string out;
    EXPECT_TRUE(clean.feed("a\r\n.\r\n", out).done);
    EXPECT_EQ(clean.bare_newlines(), 0u);
}

TEST(SmtpDataScanner, MatchesReferenceAtEverySplit) {
    for (const auto& msg : kMessages) {
        Ref want = reference(msg);
        ASSERT_NE(want.end, std::string::npos) << msg;
        auto run = [&](const std::vector<std::string_view>& parts, const std::string& how) {
            DataScanner s;
            std::string out;
            std::size_t consumed = 0;
            bool done = false;
            for (auto part : parts) {
                if (done) break;
                auto r = s.feed(part, out);
                consumed += r.consumed;
                done = r.done;
                if (!done) {
                    EXPECT_EQ(r.consumed, part.size()) << how;
                }
            }
            ASSERT_TRUE(done) << msg << " " << how;
            EXPECT_TRUE(s.done());
            EXPECT_EQ(out, want.out) << msg << " " << how;
            EXPECT_EQ(consumed, want.end) << msg << " " << how;
            EXPECT_EQ(s.message_bytes(), want.bytes) << msg << " " << how;
            EXPECT_EQ(s.bare_newlines(), want.bare) << msg << " " << how;
        };
        for_each_split(msg, run);
        for (std::size_t a = 0; a <= msg.size(); ++a)   // three pieces
            for (std::size_t b = a; b <= msg.size(); ++b)
                run({std::string_view(msg).substr(0, a), std::string_view(msg).substr(a, b - a),
                     std::string_view(msg).substr(b)},
                    "splits " + std::to_string(a) + "," + std::to_string(b));
    }
}

TEST(SmtpDataScanner, DoneConsumesNothingMore) {
    DataScanner s;
    std::string out;
    auto r = s.feed("x\r\n.\r\nQUIT\r\n", out);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.consumed, 6u);
    r = s.feed("QUIT\r\n", out);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.consumed, 0u);
    EXPECT_EQ(out, "x\r\n.\r\n");
}

TEST(SmtpDataScanner, LargeMessageInChunksKeepsTheOutputBufferSmall) {
    std::string line = std::string(76, 'x') + "\r\n";
    DataScanner s;
    std::string out;
    std::size_t total = 0, max_out = 0;
    std::string chunk;
    while (chunk.size() < 65536) chunk += line;
    chunk.resize(65536);   // lines straddle the chunks
    for (int i = 0; i < 480; ++i) {   // ~30 MB
        out.clear();
        auto r = s.feed(chunk, out);
        EXPECT_EQ(r.consumed, chunk.size());
        total += out.size();
        max_out = std::max(max_out, out.size());
    }
    out.clear();
    EXPECT_TRUE(s.feed("\r\n.\r\n", out).done);
    EXPECT_EQ(total, chunk.size() * 480);
    EXPECT_LE(max_out, chunk.size() + 3);
    EXPECT_LE(out.capacity(), 2 * chunk.size());   // the caller's buffer is reused, never grown with the message
    EXPECT_EQ(s.message_bytes(), chunk.size() * 480 + 2);
}

TEST(SmtpTranscript, GmailAndOffice365) {
    for (std::string name : {"smtp_gmail.txt", "smtp_office365.txt"}) {
        Transcript t = load_transcript(name);
        ASSERT_FALSE(t.server.empty());
        std::vector<Reply> replies;
        for_each_split(t.server, [&](const std::vector<std::string_view>& parts, const std::string& how) {
            ReplyParser p;
            std::vector<Reply> got;
            std::string rewired;
            for (auto part : parts) {
                Reply r;
                ReplyParser::Status st;
                while ((st = p.feed(part, r)) == ReplyParser::Status::reply) {
                    rewired += r.wire();
                    got.push_back(r);
                }
                ASSERT_EQ(st, ReplyParser::Status::need_more) << name << " " << how << ": " << p.error();
            }
            EXPECT_EQ(rewired, t.server) << name << " " << how;
            replies = got;
        });
        // One reply to the greeting and one to each client line.
        ASSERT_EQ(replies.size(), t.client_lines.size() + 1) << name;
        auto before_tls = Capabilities::from_ehlo(replies[1]);
        auto after_tls = Capabilities::from_ehlo(replies[3]);
        EXPECT_TRUE(before_tls.starttls && before_tls.auth.empty()) << name;
        EXPECT_TRUE(after_tls.has_auth("XOAUTH2") && !after_tls.starttls) << name;
        EXPECT_EQ(replies[4].code, 334);
        const Reply& last_auth = replies[replies.size() - 2];
        EXPECT_EQ(last_auth.code, 535);
        EXPECT_EQ(last_auth.enhanced(), name == "smtp_gmail.txt" ? "5.7.8" : "5.7.139");
        auto challenge = xo::sasl::parse_error_challenge(replies[4].lines.front());
        EXPECT_EQ(challenge.has_value(), name == "smtp_gmail.txt");
        if (challenge) {
            EXPECT_TRUE(challenge->retry_with_fresh_token);
        }

        // The client's lines, as a server would read them: commands, and the
        // AUTH answers that follow a 334 (base64 or empty).
        LineBuffer lines(kMaxAuthLine);
        std::string_view in = t.client;
        std::string line;
        std::size_t unknown = 0, n = 0;
        while (lines.feed(in, line) == LineBuffer::Status::line) {
            EXPECT_EQ(line, t.client_lines[n++]);
            unknown += parse_command(line).verb == Verb::Unknown;
        }
        EXPECT_EQ(n, t.client_lines.size());
        EXPECT_EQ(unknown, 1u) << name;
    }
}
