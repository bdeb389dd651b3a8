// Outside bytes in the token path: a per-mailbox provider refuses a mailbox
// that is not UTF-8 before it reaches a JWT (never replaced: that would be
// another identity), an identity provider's text is cut on a character
// boundary, and /status stays valid JSON whatever bytes a last error holds.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include <chrono>

#include "oauth/provider.hpp"
#include "oauth/token_cache.hpp"
#include "server/admin.hpp"
#include "server/services.hpp"

using namespace xo;
using namespace xo::oauth;
using namespace std::chrono_literals;

namespace {
config::TokenSettings fast_settings() {
    config::TokenSettings s;
    s.backoff = 1ms;
    s.max_attempts = 1;
    return s;
}

// Fails with the description it is given.
class FailingProvider : public TokenProvider {
public:
    explicit FailingProvider(std::string description) : description_(std::move(description)) {}
    awaitable<TokenResult> fetch(std::string) override {
        TokenResult r;
        r.error.error = "invalid_client";
        r.error.http_status = 401;
        r.error.description = description_;
        co_return r;
    }
    bool per_mailbox() const override { return true; }
    std::string describe() const override { return "failing"; }

private:
    std::string description_;
};

awaitable<void> get_once(std::shared_ptr<TokenCache> c, std::string conn, std::string mailbox, bool* done) {
    (void)co_await c->get(conn, mailbox);
    *done = true;
}
}  // namespace

namespace {
std::string rsa_pem() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_RSA_gen(2048), EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, std::size_t(n));
}
awaitable<void> fetch_into(std::shared_ptr<TokenProvider> p, std::string mailbox, TokenResult* out, bool* threw) {
    try {
        *out = co_await p->fetch(mailbox);
    } catch (const std::exception&) {
        *threw = true;
    }
}
}  // namespace

TEST(OauthProviders, ServiceAccountRefusesAMailboxThatIsNotUtf8) {
    config::Connection c;
    c.name = "g";
    c.provider = config::Provider::google;
    c.flow = config::Flow::service_account;
    c.service_account.client_email = "sa@project.iam.gserviceaccount.com";
    c.service_account.private_key_pem = rsa_pem();
    c.token_url = "http://127.0.0.1:9/token";   // never reached
    std::shared_ptr<TokenProvider> p = make_provider(c, fast_settings());
    asio::io_context io;
    TokenResult r;
    bool threw = false;
    asio::co_spawn(io, fetch_into(p, "\xff" "0@domain", &r, &threw), asio::detached);
    io.run_for(5s);
    EXPECT_FALSE(threw);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.error.description, "mailbox is not valid UTF-8");
}

TEST(OauthResponse, DescriptionIsCutOnACharacterBoundary) {
    // 399 ASCII bytes, then "é" (2 bytes): a cut at 400 bytes would split it.
    std::string desc = "AADSTS50000: " + std::string(399 - 13, 'x') + "\xc3\xa9" + " more";
    nlohmann::json body = {{"error", "invalid_request"}, {"error_description", desc}};
    HttpResult http{true, "", 400, body.dump(), "application/json", "", false};
    auto r = parse_token_response(http);
    EXPECT_LE(r.error.description.size(), 400u);
    EXPECT_EQ(r.error.description, desc.substr(0, 399));
    // and a description that is not a string does not throw
    HttpResult odd{true, "", 400, R"({"error":"invalid_request","error_description":5})", "", "", false};
    EXPECT_EQ(parse_token_response(odd).error.description, "");
}

TEST(AdminStatus, OddBytesInALastErrorStillGiveValidJson) {
    // invalid bytes, and a cut "€"
    auto p = std::make_shared<FailingProvider>(std::string("AADSTS1: ") + "\xff\xfe bad " + "\xe2\x82");
    auto s = std::make_shared<server::Services>();
    config::Connection conn;
    conn.name = "c";
    s->cfg.connections["c"] = conn;
    s->tokens = std::make_shared<TokenCache>(std::map<std::string, TokenCache::Source>{{"c", {p, 300s}}},
                                             fast_settings());
    asio::io_context io;
    bool done = false;
    asio::co_spawn(io, get_once(s->tokens, "c", "a@x", &done), asio::detached);
    io.run_for(5s);
    ASSERT_TRUE(done);
    std::string body;
    ASSERT_NO_THROW(body = server::render_status_json(*s));
    auto j = nlohmann::json::parse(body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << body;
    auto d = j["connections"]["c"]["tokens"][0]["last_error"]["description"].get<std::string>();
    EXPECT_EQ(d.rfind("AADSTS1: \xef\xbf\xbd\xef\xbf\xbd bad ", 0), 0u) << d;
}
