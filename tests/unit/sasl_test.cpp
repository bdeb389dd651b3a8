// SASL helpers: the XOAUTH2 and OAUTHBEARER responses we send, PLAIN and LOGIN
// answers legacy clients send, the mechanism argument, Gmail-style JSON error
// challenges.
#include <gtest/gtest.h>

#include "sasl/sasl.hpp"
#include "util/base64.hpp"

using namespace xo;

namespace {
std::string enc(const std::string& s) { return util::base64_encode(s); }
std::string dec(std::string_view s) { return util::base64_decode(s).value_or("<not base64>"); }
}  // namespace

TEST(SaslInitialResponse, Xoauth2) {
    EXPECT_EQ(dec(sasl::xoauth2_initial_response("erp@contoso.com", "eyJ0")),
              std::string("user=erp@contoso.com\x01" "auth=Bearer eyJ0\x01\x01"));
    // The well-known example from Google's XOAUTH2 documentation.
    EXPECT_EQ(sasl::xoauth2_initial_response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
              "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
    std::string jwt(4000, 'j');   // Microsoft tokens are JWTs of a few KB
    std::string b64 = sasl::xoauth2_initial_response("m@x.y", jwt);
    EXPECT_LT(b64.size(), 12288u);
    EXPECT_EQ(dec(b64).size(), 5 + 5 + 13 + jwt.size() + 2);
}

TEST(SaslInitialResponse, OauthbearerEscapesTheAuthzid) {
    EXPECT_EQ(dec(sasl::oauthbearer_initial_response("a,b=c@d.e", "smtp.gmail.com", 587, "T")),
              std::string("n,a=a=2Cb=3Dc@d.e,\x01" "host=smtp.gmail.com\x01" "port=587\x01" "auth=Bearer T\x01\x01"));
    EXPECT_EQ(dec(sasl::oauthbearer_initial_response("user@example.com", "server.example.com", 143, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")),
              std::string("n,a=user@example.com,\x01" "host=server.example.com\x01" "port=143\x01"
                          "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"));   // RFC 7628 section 4.1
    EXPECT_EQ(dec(sasl::kOauthbearerErrorAnswer), "\x01");
    EXPECT_EQ(std::string(sasl::kXoauth2ErrorAnswer), "");
}

TEST(SaslPlain, Decoding) {
    struct Case { std::string raw; bool ok; std::string authcid, password; };
    const std::vector<Case> cases = {
        {std::string("\0erp\0pass word\"1", 16), true, "erp", "pass word\"1"},
        {std::string("erp\0erp\0pw", 10), true, "erp", "pw"},          // authzid == authcid
        {std::string("\0erp\0", 5), true, "erp", ""},                   // empty password: the login check refuses it
        {std::string("\0erp\0p\xc3\xa4ss", 10), true, "erp", "p\xc3\xa4ss"},
        {std::string("boss\0erp\0pw", 11), false, "", ""},             // acting as someone else
        {std::string("\0\0pw", 4), false, "", ""},                      // empty authcid
        {std::string("\0erp\0pw\0x", 9), false, "", ""},               // a third NUL
        {std::string("erp\0pw", 6), false, "", ""},                     // one NUL
        {"no nuls", false, "", ""},
        {"", false, "", ""},
    };
    for (const auto& c : cases) {
        auto got = sasl::decode_plain(enc(c.raw));
        ASSERT_EQ(got.has_value(), c.ok) << c.raw;
        if (!got) continue;
        EXPECT_EQ(got->authcid, c.authcid);
        EXPECT_EQ(got->password, c.password);
    }
    EXPECT_FALSE(sasl::decode_plain("!!!"));
    EXPECT_FALSE(sasl::decode_plain("="));
    EXPECT_FALSE(sasl::decode_plain("AGVycABwdw"));   // unpadded
    EXPECT_TRUE(sasl::decode_plain("AGVycABwdw=="));
}

TEST(SaslLogin, PromptsAndFields) {
    EXPECT_EQ(dec(sasl::kLoginUsernamePrompt), "Username:");
    EXPECT_EQ(dec(sasl::kLoginPasswordPrompt), "Password:");
    EXPECT_EQ(sasl::decode_login_field(enc("erp@contoso.com")).value(), "erp@contoso.com");
    EXPECT_EQ(sasl::decode_login_field(enc("pass word")).value(), "pass word");
    EXPECT_EQ(sasl::decode_login_field("=").value(), "");
    EXPECT_EQ(sasl::decode_login_field("").value(), "");
    EXPECT_FALSE(sasl::decode_login_field("*not base64*"));
    EXPECT_FALSE(sasl::decode_login_field(enc(std::string("a\0b", 3))));
    EXPECT_TRUE(sasl::is_cancel("*"));
    EXPECT_FALSE(sasl::is_cancel("* "));
}

TEST(SaslMechanism, Split) {
    struct Case { std::string arg, mech, initial; bool has; };
    for (const auto& c : std::vector<Case>{{"PLAIN", "PLAIN", "", false},
                                           {"plain AGVycABwdw==", "PLAIN", "AGVycABwdw==", true},
                                           {"login  dXNlcg== ", "LOGIN", "dXNlcg==", true},
                                           {"PLAIN =", "PLAIN", "=", true},
                                           {"xoauth2 ", "XOAUTH2", "", false},
                                           {"", "", "", false}}) {
        auto m = sasl::split_mechanism(c.arg);
        EXPECT_EQ(m.mechanism, c.mech) << c.arg;
        EXPECT_EQ(m.initial, c.initial) << c.arg;
        EXPECT_EQ(m.has_initial, c.has) << c.arg;
    }
}

TEST(SaslErrorChallenge, GmailAndOthers) {
    struct Case { std::string json; bool ok; std::string status, schemes, scope; bool retry; };
    const std::vector<Case> cases = {
        {R"({"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"})", true, "401", "bearer mac",
         "https://mail.google.com/", true},
        {R"({"status":400})", true, "400", "", "", true},
        {R"({"status":"400","schemes":"Bearer"})", true, "400", "Bearer", "", true},
        {R"({"status":"invalid_token","scope":"x"})", true, "invalid_token", "", "x", false},
        {R"({"status":"403"})", true, "403", "", "", false},
        {R"({"status":401.5})", false, "", "", "", false},
        {R"({"schemes":"bearer"})", false, "", "", "", false},
        {R"(["status","401"])", false, "", "", "", false},
        {"not json", false, "", "", "", false},
        {"", false, "", "", "", false},
    };
    for (const auto& c : cases) {
        auto e = sasl::parse_error_challenge(enc(c.json));
        ASSERT_EQ(e.has_value(), c.ok) << c.json;
        if (!e) continue;
        EXPECT_EQ(e->status, c.status);
        EXPECT_EQ(e->schemes, c.schemes);
        EXPECT_EQ(e->scope, c.scope);
        EXPECT_EQ(e->retry_with_fresh_token, c.retry) << c.json;
    }
    EXPECT_FALSE(sasl::parse_error_challenge("eyJzdGF0dXMiOiI0MDEi"));   // truncated base64
    EXPECT_FALSE(sasl::parse_error_challenge("!!"));
}
