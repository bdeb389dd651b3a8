// SMTP parsing without sockets: commands, paths, replies split at every byte,
// EHLO capabilities, the DATA scanner against a reference implementation fed
// at every split point, and the SASL helpers.
#include <gtest/gtest.h>

#include "smtp/parser.hpp"
#include "smtp/sasl.hpp"
#include "util/base64.hpp"

using namespace xo::smtp;

TEST(SmtpParser, Commands) {
    struct Case { const char* line; Verb verb; const char* arg; };
    for (const auto& c : std::vector<Case>{{"EHLO client.example", Verb::Ehlo, "client.example"},
                                           {"ehlo x", Verb::Ehlo, "x"},
                                           {"MAIL FROM:<a@b.c> SIZE=10", Verb::Mail, "FROM:<a@b.c> SIZE=10"},
                                           {"rcpt to:<x@y.z>  ", Verb::Rcpt, "to:<x@y.z>"},
                                           {"DATA", Verb::Data, ""},
                                           {"AUTH PLAIN AGEAYg==", Verb::Auth, "PLAIN AGEAYg=="},
                                           {"STARTTLS", Verb::Starttls, ""},
                                           {"XYZZY", Verb::Unknown, ""},
                                           {std::string("NOOP\0x", 6).c_str(), Verb::Noop, ""}}) {
        auto p = parse_command(c.line);
        EXPECT_EQ(p.verb, c.verb) << c.line;
        EXPECT_EQ(p.arg, c.arg) << c.line;
    }
    EXPECT_EQ(parse_command(std::string_view("NOOP\0x", 6)).verb, Verb::Unknown);   // NUL refused
}

TEST(SmtpParser, Paths) {
    auto m = parse_mail_from("FROM:<erp@contoso.com> SIZE=1000 BODY=8BITMIME smtputf8");
    ASSERT_TRUE(m.ok()) << m.error;
    EXPECT_EQ(m.path.address, "erp@contoso.com");
    ASSERT_EQ(m.path.params.size(), 3u);
    EXPECT_EQ(m.path.params[0], (std::pair<std::string, std::string>{"SIZE", "1000"}));
    EXPECT_EQ(m.path.params[2].first, "SMTPUTF8");
    EXPECT_TRUE(parse_mail_from("FROM: <a@b.c>").ok());            // old clients put a space
    EXPECT_TRUE(parse_mail_from("FROM:<>").ok());                   // null sender
    EXPECT_EQ(parse_mail_from("FROM:<>").path.address, "");
    EXPECT_EQ(parse_mail_from("FROM:<\"a b\"@c.d>").path.address, "\"a b\"@c.d");
    EXPECT_EQ(parse_mail_from("FROM:<@relay.example:a@b.c>").path.address, "a@b.c");
    EXPECT_FALSE(parse_rcpt_to("TO:<>").ok());
    EXPECT_FALSE(parse_mail_from("FROM:a@b.c").ok());
    EXPECT_FALSE(parse_mail_from("TO:<a@b.c>").ok());
    EXPECT_FALSE(parse_mail_from("FROM:<a@b.c").ok());
    EXPECT_FALSE(parse_mail_from("FROM:<noat>").ok());
    EXPECT_FALSE(parse_mail_from("FROM:<" + std::string(260, 'a') + "@b.c>").ok());
    EXPECT_EQ(parse_rcpt_to("TO:<a@b.c").error.substr(0, 9), "501 5.5.4");
}

TEST(SmtpParser, RepliesSplitAtEveryByte) {
    const std::string wire = "250-mail.example greets you\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
                             "250-AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n250 STARTTLS\r\n"
                             "535 5.7.3 Authentication unsuccessful\r\n334 \r\n";
    for (std::size_t split = 0; split <= wire.size(); ++split) {
        ReplyParser p;
        std::vector<Reply> got;
        for (std::string_view part : {std::string_view(wire).substr(0, split), std::string_view(wire).substr(split)}) {
            Reply r;
            while (p.feed(part, r) == ReplyParser::Status::reply) got.push_back(r);
        }
        ASSERT_EQ(got.size(), 3u) << "split " << split;
        EXPECT_EQ(got[0].code, 250);
        EXPECT_EQ(got[0].lines.size(), 5u);
        EXPECT_EQ(got[1].enhanced(), "5.7.3");
        EXPECT_EQ(got[1].text(), "5.7.3 Authentication unsuccessful");
        EXPECT_EQ(got[2].code, 334);
        EXPECT_EQ(got[2].lines[0], "");
        EXPECT_EQ(got[0].wire(), wire.substr(0, wire.find("535")));
    }
    auto caps = Capabilities::from_ehlo([&] {
        ReplyParser p;
        Reply r;
        std::string_view in = wire;
        p.feed(in, r);
        return r;
    }());
    EXPECT_TRUE(caps.starttls);
    EXPECT_TRUE(caps.pipelining);
    EXPECT_EQ(caps.size.value(), 35882577u);
    EXPECT_TRUE(caps.has_auth("xoauth2"));
    EXPECT_TRUE(caps.has_auth("OAUTHBEARER"));
    EXPECT_FALSE(caps.has_auth("CRAM-MD5"));
}

TEST(SmtpParser, ReplyErrors) {
    for (std::string bad : {"25 short\r\n", "abc text\r\n", "250-a\r\n251 b\r\n", "250x\r\n"}) {
        ReplyParser p;
        Reply r;
        std::string_view in = bad;
        ReplyParser::Status st;
        while ((st = p.feed(in, r)) == ReplyParser::Status::reply) {}
        EXPECT_EQ(st, ReplyParser::Status::error) << bad;
    }
    ReplyParser p;
    Reply r;
    std::string huge(9000, 'x');
    std::string_view in = huge;
    EXPECT_EQ(p.feed(in, r), ReplyParser::Status::error);
}

namespace {
// The straightforward reference: split into lines (CRLF or LF), stop at ".",
// re-emit each line with CRLF, keep the stuffing.
std::pair<std::string, std::size_t> reference(const std::string& in) {
    std::string out;
    std::size_t pos = 0;
    while (pos < in.size()) {
        auto nl = in.find('\n', pos);
        if (nl == std::string::npos) break;
        std::string line = in.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pos = nl + 1;
        out += line + "\r\n";
        if (line == ".") return {out, pos};
    }
    return {out, std::string::npos};
}
}  // namespace

TEST(SmtpDataScanner, MatchesReferenceAtEverySplit) {
    const std::vector<std::string> corpus = {
        ".\r\nMAIL FROM:<next@x.y>\r\n",
        "Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        "..stuffed\r\n.leading\r\n...\r\n.\r\n",
        "bare\nlf\nlines\n.\nRSET\r\n",
        "mixed\r\nline\nends\r\n.\r\n",
        "no dot here\r\n.x\r\n. \r\n.\r\n",
    };
    for (const auto& msg : corpus) {
        auto [want, end] = reference(msg);
        ASSERT_NE(end, std::string::npos);
        for (std::size_t a = 0; a <= msg.size(); ++a) {
            for (std::size_t b = a; b <= msg.size(); ++b) {
                DataScanner s;
                std::string out;
                std::size_t consumed = 0;
                bool done = false;
                for (auto part : {std::string_view(msg).substr(0, a), std::string_view(msg).substr(a, b - a),
                                  std::string_view(msg).substr(b)}) {
                    if (done) break;
                    auto r = s.feed(part, out);
                    consumed += r.consumed;
                    done = r.done;
                }
                ASSERT_TRUE(done) << msg << " split " << a << "," << b;
                EXPECT_EQ(out, want) << msg << " split " << a << "," << b;
                EXPECT_EQ(consumed, end) << msg << " split " << a << "," << b;
            }
        }
    }
}

TEST(SmtpDataScanner, LargeMessageInChunksKeepsTheOutputBufferSmall) {
    std::string line = std::string(76, 'x') + "\r\n";
    DataScanner s;
    std::string out;
    std::size_t total = 0, max_out = 0;
    std::string chunk;
    while (chunk.size() < 65536) chunk += line;
    for (int i = 0; i < 480; ++i) {   // ~30 MB
        out.clear();
        auto r = s.feed(chunk, out);
        EXPECT_EQ(r.consumed, chunk.size());
        total += out.size();
        max_out = std::max(max_out, out.size());
    }
    out.clear();
    EXPECT_TRUE(s.feed(".\r\n", out).done);
    EXPECT_EQ(total, chunk.size() * 480);
    EXPECT_LE(max_out, chunk.size() + 3);
    EXPECT_EQ(s.message_bytes(), chunk.size() * 480);
}

TEST(Sasl, Xoauth2AndOauthbearer) {
    auto raw = xo::util::base64_decode(xo::sasl::xoauth2_initial_response("erp@contoso.com", "eyJ0"));
    EXPECT_EQ(*raw, std::string("user=erp@contoso.com\x01" "auth=Bearer eyJ0\x01\x01"));
    raw = xo::util::base64_decode(xo::sasl::oauthbearer_initial_response("a,b=c@d.e", "smtp.gmail.com", 587, "T"));
    EXPECT_EQ(*raw, std::string("n,a=a=2Cb=3Dc@d.e,\x01" "host=smtp.gmail.com\x01" "port=587\x01" "auth=Bearer T\x01\x01"));
}

TEST(Sasl, PlainDecoding) {
    auto enc = [](const std::string& s) { return xo::util::base64_encode(s); };
    auto c = xo::sasl::decode_plain(enc(std::string("\0erp\0pass word\"1", 16)));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->authcid, "erp");
    EXPECT_EQ(c->password, "pass word\"1");
    EXPECT_TRUE(xo::sasl::decode_plain(enc(std::string("erp\0erp\0pw", 10))));
    EXPECT_FALSE(xo::sasl::decode_plain(enc(std::string("boss\0erp\0pw", 11))));   // acting as someone else
    EXPECT_FALSE(xo::sasl::decode_plain(enc(std::string("\0\0pw", 4))));
    EXPECT_FALSE(xo::sasl::decode_plain(enc("no nuls")));
    EXPECT_FALSE(xo::sasl::decode_plain("!!!"));
}

TEST(Sasl, GmailStyleErrorChallenge) {
    auto e = xo::sasl::parse_error_challenge(
        xo::util::base64_encode(R"({"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"})"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, "401");
    EXPECT_TRUE(e->retry_with_fresh_token);
    e = xo::sasl::parse_error_challenge(xo::util::base64_encode(R"({"status":400})"));
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->retry_with_fresh_token);
    e = xo::sasl::parse_error_challenge(xo::util::base64_encode(R"({"status":"invalid_token"})"));
    ASSERT_TRUE(e);
    EXPECT_FALSE(e->retry_with_fresh_token);
    EXPECT_FALSE(xo::sasl::parse_error_challenge(""));
    EXPECT_FALSE(xo::sasl::parse_error_challenge(xo::util::base64_encode("not json")));
}
