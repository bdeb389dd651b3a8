// Delivery through Graph sendMail and the Gmail API, the pure part (smtp/api)
// and the spool: envelope replies, un-stuffing at every split, the Bcc rule,
// requests, base64 in pieces, Retry-After, what each answer means; the spool
// in memory and on disk, its file gone from the start. Config: send_via keys.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "config/config.hpp"
#include "smtp/api.hpp"
#include "smtp/api_send.hpp"
#include "util/base64.hpp"

using namespace xo::smtp;
using namespace xo::smtp::api;

TEST(Api, EnvelopeRepliesLocally) {
    Envelope env;
    EXPECT_EQ(local_reply("MAIL FROM:<erp@contoso.test> SIZE=10", env, Kind::graph).code, 250);
    EXPECT_EQ(env.from, "erp@contoso.test");
    EXPECT_EQ(local_reply("DATA", env, Kind::graph).code, 554);   // no recipient yet
    EXPECT_EQ(local_reply("RCPT TO:<a@x.test>", env, Kind::graph).code, 250);
    EXPECT_EQ(local_reply("RCPT TO:<B@x.test> NOTIFY=NEVER", env, Kind::graph).code, 250);
    EXPECT_EQ(local_reply("RCPT TO:<nobody>", env, Kind::graph).code, 550);
    ASSERT_EQ(env.rcpts.size(), 2u);
    EXPECT_EQ(env.rcpts[1], "B@x.test");
    EXPECT_EQ(local_reply("DATA", env, Kind::graph).code, 354);
    EXPECT_EQ(local_reply("RSET", env, Kind::graph).code, 250);
    EXPECT_TRUE(env.rcpts.empty());
    EXPECT_EQ(local_reply("MAIL FROM:<>", env, Kind::gmail).code, 250);
}

// The scanner's output (stuffed, with ".\r\n") comes out as the message, whatever the split.
TEST(Api, UnstufferAtEverySplit) {
    const std::string wire = "Subject: x\r\n\r\n..leading\r\n...two\r\nmid.dle\r\n.\r\n";
    const std::string want = "Subject: x\r\n\r\n.leading\r\n..two\r\nmid.dle\r\n";
    for (std::size_t i = 0; i <= wire.size(); ++i)
        for (std::size_t j = i; j <= wire.size(); ++j) {
            Unstuffer u;
            std::string out;
            u.feed(std::string_view(wire).substr(0, i), out);
            u.feed(std::string_view(wire).substr(i, j - i), out);
            u.feed(std::string_view(wire).substr(j), out);
            ASSERT_EQ(out, want) << i << "," << j;
        }
}

TEST(Api, HeaderAddresses) {
    std::string head =
        "From: erp@contoso.test\r\nTo: \"Doe, Jane\" <Jane@X.test>, bob@x.test (Bob, B)\r\n"
        "Cc: team: c1@x.test, <c2@x.test>;,\r\n d@x.test\r\nSubject: To: not@x.test\r\n\r\nTo: body@x.test\r\n";
    auto a = header_addresses(head, {"to", "cc"});
    std::vector<std::string> want = {"jane@x.test", "bob@x.test", "c1@x.test", "c2@x.test", "d@x.test"};
    EXPECT_EQ(a, want);
}

TEST(Api, BccHoldsOnlyTheEnvelopeOnlyRecipients) {
    std::string head = "To: a@x.test\r\nCc: B <b@x.test>\r\n\r\nbody";
    EXPECT_EQ(bcc_header({"a@x.test", "B@X.test"}, head), "");
    EXPECT_EQ(bcc_header({"a@x.test", "hidden@x.test", "hidden@x.test", "h2@x.test"}, head),
              "Bcc: hidden@x.test,\r\n h2@x.test\r\n");
    EXPECT_EQ(extra_header_recipients({"a@x.test"}, head), std::vector<std::string>{"b@x.test"});
}

TEST(Api, Requests) {
    EXPECT_EQ(request_url(Kind::graph, "https://graph.microsoft.com/", "erp@contoso.test"),
              "https://graph.microsoft.com/v1.0/users/erp%40contoso.test/sendMail");
    EXPECT_EQ(request_url(Kind::gmail, "https://gmail.googleapis.com", "a@b.test"),
              "https://gmail.googleapis.com/upload/gmail/v1/users/a%40b.test/messages/send?uploadType=media");
    EXPECT_EQ(content_type(Kind::graph), "text/plain");
    EXPECT_EQ(content_type(Kind::gmail), "message/rfc822");
    for (std::uint64_t n : {0, 1, 2, 3, 4, 5, 6, 3145728})
        EXPECT_EQ(body_size(Kind::graph, n), xo::util::base64_encode(std::string(n, 'a')).size()) << n;
    EXPECT_EQ(body_size(Kind::gmail, 77), 77u);
    EXPECT_EQ(body_size(Kind::graph, kGraphMaxMessage), 4u << 20);   // Graph's 4 MB of base64
}

TEST(Api, Base64InPiecesEqualsWhole) {
    std::string data;
    for (int i = 0; i < 1000; ++i) data += char(i * 7);
    for (std::size_t step : {1, 2, 3, 5, 64, 1000}) {
        Base64Stream b;
        std::string out;
        for (std::size_t i = 0; i < data.size(); i += step) b.feed(std::string_view(data).substr(i, step), out);
        b.finish(out);
        EXPECT_EQ(out, xo::util::base64_encode(data)) << step;
    }
}

TEST(Api, RetryAfter) {
    EXPECT_EQ(parse_retry_after("7"), std::chrono::seconds(7));
    EXPECT_EQ(parse_retry_after(" 0 "), std::chrono::seconds(0));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), std::chrono::seconds(0));   // past
    EXPECT_FALSE(parse_retry_after(""));
    EXPECT_FALSE(parse_retry_after("soon"));
}

struct ResponseCase {
    Kind kind;
    unsigned status;
    std::string body, retry_after;
    bool refreshed;
    Outcome::Kind want;
    int code;             // final/sent: the reply's code
    std::string text;     // a part of the reply's text
};

TEST(Api, WhatEachAnswerMeans) {
    const std::vector<ResponseCase> cases = {
        {Kind::graph, 202, "", "", false, Outcome::Kind::sent, 250, "sent through Microsoft Graph sendMail"},
        {Kind::gmail, 200, R"({"id":"18c0ffee","labelIds":["SENT"]})", "", false, Outcome::Kind::sent, 250, "id=18c0ffee"},
        {Kind::graph, 200, "", "", false, Outcome::Kind::final, 451, "HTTP 200"},   // not Graph's success
        {Kind::graph, 429, R"({"error":{"code":"ApplicationThrottled"}})", "3", false, Outcome::Kind::retry, 0, ""},
        {Kind::graph, 503, "", "", false, Outcome::Kind::retry, 0, ""},
        {Kind::gmail, 504, "", "", false, Outcome::Kind::retry, 0, ""},
        {Kind::graph, 401, "", "", false, Outcome::Kind::refresh, 0, ""},
        {Kind::graph, 401, "", "", true, Outcome::Kind::final, 451, "refused twice"},
        {Kind::graph, 403, R"({"error":{"code":"ErrorAccessDenied","message":"Access is denied."}})", "", false,
         Outcome::Kind::final, 451, "Mail.Send"},
        {Kind::graph, 403, R"({"error":{"code":"ErrorSendAsDenied","message":"x"}})", "", false, Outcome::Kind::final,
         550, "5.7.60"},
        {Kind::gmail, 403,
         R"({"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"reason":"insufficientPermissions"}]}})",
         "", false, Outcome::Kind::final, 451, "Domain-wide delegation"},
        {Kind::gmail, 403,
         R"({"error":{"code":403,"message":"Gmail API has not been used in project 1 before or it is disabled.","errors":[{"reason":"accessNotConfigured"}]}})",
         "", false, Outcome::Kind::final, 451, "Gmail API > Enable"},
        {Kind::graph, 413, "", "", false, Outcome::Kind::final, 552, "5.3.4"},
        {Kind::graph, 400, R"({"error":{"code":"ErrorInvalidRecipients","message":"bad"}})", "", false,
         Outcome::Kind::final, 550, "5.1.3"},
        {Kind::graph, 400, R"({"error":{"code":"ErrorMimeContentInvalid","message":"bad\r\nnext"}})", "", false,
         Outcome::Kind::final, 554, "5.6.0"},
        {Kind::graph, 404, R"({"error":{"code":"ErrorInvalidUser","message":"x"}})", "", false, Outcome::Kind::final,
         451, "does not exist"},
    };
    for (const auto& c : cases) {
        Outcome o = map_response(c.kind, c.status, c.body, c.retry_after, c.refreshed);
        EXPECT_EQ(o.kind, c.want) << c.status << " " << c.body;
        if (c.want == Outcome::Kind::final || c.want == Outcome::Kind::sent) {
            EXPECT_EQ(o.reply.code, c.code) << c.status << " " << c.body;
            EXPECT_NE(o.reply.text().find(c.text), std::string::npos) << o.reply.text();
            for (char ch : o.reply.text()) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << o.reply.text();
        }
    }
    EXPECT_EQ(map_response(Kind::graph, 429, "", "3", false).wait, std::chrono::seconds(3));
}

TEST(Api, RepliesWhenNothingOrSomethingWasSent) {
    EXPECT_EQ(gave_up(Kind::graph, "HTTP 429").code, 451);
    EXPECT_EQ(not_sent(Kind::gmail, "connect refused").code, 451);
    Reply u = unknown_outcome(Kind::graph, "erp@contoso.test", "read response: timeout");
    EXPECT_EQ(u.code, 554);   // never 4xx: a retry would send it twice
    EXPECT_NE(u.text().find("Sent Items of erp@contoso.test"), std::string::npos);
    EXPECT_NE(too_big(Kind::graph).text().find("3145728 bytes"), std::string::npos);
    EXPECT_EQ(too_big(Kind::gmail).code, 552);
}

// Found by fuzz_smtp_api: a long error text made a reply line over RFC 5321's 512 octets.
TEST(Api, EveryReplyLineFitsIn512Octets) {
    const std::string long_why(2000, 'x');
    const std::string long_body = R"({"id":")" + std::string(2000, 'i') + R"("})";
    for (const Reply& r : {gave_up(Kind::graph, long_why), not_sent(Kind::gmail, long_why),
                           unknown_outcome(Kind::graph, "erp@contoso.test", long_why),
                           map_response(Kind::gmail, 200, long_body, "", false).reply,
                           map_response(Kind::graph, 403, long_body, "", false).reply}) {
        ASSERT_FALSE(r.lines.empty());
        for (const auto& l : r.lines) EXPECT_LE(l.size() + 4, 512u) << r.code;
    }
}

namespace {
std::size_t open_spool_files() {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
        if (e.path().filename().string().rfind("xoauth2-proxy-spool-", 0) == 0) ++n;
    return n;
}
}  // namespace

TEST(Api, SpoolInMemoryThenOnAnUnlinkedFile) {
    std::size_t before = open_spool_files();
    Spool s(100);
    std::string all;
    for (int i = 0; i < 50; ++i) {
        std::string piece(37, char('a' + i % 26));
        all += piece;
        ASSERT_TRUE(s.append(piece));
    }
    EXPECT_TRUE(s.on_disk());
    EXPECT_EQ(open_spool_files(), before);   // unlinked at once: nothing to clean up on any path
    EXPECT_EQ(s.size(), all.size());
    EXPECT_EQ(s.head(), all);
    std::string back;
    s.rewind();
    for (;;) {
        std::string piece;
        ASSERT_TRUE(s.read(piece, 64));
        if (piece.empty()) break;
        back += piece;
    }
    EXPECT_EQ(back, all);

    Spool small;
    ASSERT_TRUE(small.append("hello"));
    EXPECT_FALSE(small.on_disk());
    std::string out;
    ASSERT_TRUE(small.read(out));
    EXPECT_EQ(out, "hello");
}

TEST(Api, SendViaConfig) {
    const std::string yaml = R"(listeners:
  - {name: s, bind: "127.0.0.1:2525"}
connections:
  ms:
    provider: microsoft
    tenant: contoso.test
    client_id: app
    client_secret: literal-for-test
    send_via: graph
  auto:
    provider: microsoft
    tenant: contoso.test
    client_id: app
    client_secret: literal-for-test
    send_via: auto
    graph_url: https://graph.example/
  plain:
    provider: microsoft
    tenant: contoso.test
    client_id: app
    client_secret: literal-for-test
)";
    auto r = xo::config::load_config_string(yaml);
    ASSERT_TRUE(r.ok()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].text());
    const auto& ms = r.config.connections.at("ms");
    EXPECT_EQ(ms.send_via, xo::config::SendVia::graph);
    EXPECT_EQ(ms.graph_url, "https://graph.microsoft.com");
    EXPECT_EQ(ms.api_scope, "https://graph.microsoft.com/.default");
    EXPECT_EQ(ms.scope, "https://outlook.office365.com/.default");   // SMTP/IMAP keep theirs
    EXPECT_EQ(ms.api_token_source(), "ms#api");
    const auto& au = r.config.connections.at("auto");
    EXPECT_EQ(au.send_via, xo::config::SendVia::auto_);
    EXPECT_EQ(au.graph_url, "https://graph.example");
    EXPECT_EQ(r.config.connections.at("plain").send_via, xo::config::SendVia::smtp);
    EXPECT_FALSE(r.config.connections.at("plain").uses_api());
}

#include "config/schema.hpp"

TEST(Api, SendViaNamesMatchTheSchema) {
    auto v = xo::config::schema::kConnection["send_via"].choice_list();
    ASSERT_EQ(v.size(), 4u);
    for (std::size_t i = 0; i < v.size(); ++i)
        EXPECT_EQ(v[i], xo::config::to_string(static_cast<xo::config::SendVia>(i)));
}
