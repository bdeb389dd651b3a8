// The non-interactive flows: client credentials with a secret (Microsoft and
// generic), with a certificate assertion (Microsoft), and Google's service
// account JWT bearer grant with domain-wide delegation.
#include <chrono>
#include <stdexcept>

#include "net/tls.hpp"
#include "oauth/jwt.hpp"
#include <spdlog/spdlog.h>

#include "oauth/provider.hpp"
#include "oauth/redis_store.hpp"
#include "oauth/token_store.hpp"
#include "util/text.hpp"

namespace xo::oauth {
namespace {

using config::Connection;

// A per-mailbox flow's mailbox names an identity: bytes that are not UTF-8
// are refused, never replaced (a replaced name would be another identity).
std::optional<TokenResult> refuse_mailbox(const std::string& mailbox) {
    if (util::valid_utf8(mailbox)) return std::nullopt;
    TokenResult r;
    r.error.error = "invalid_request";
    r.error.description = "mailbox is not valid UTF-8";
    return r;
}

// sign_jwt() throws only when OpenSSL fails (or a claim is not UTF-8): a ProviderError instead.
std::optional<std::string> try_sign(const nlohmann::json& header, const nlohmann::json& claims, EVP_PKEY* key,
                                    JwtAlg alg, TokenResult& r) {
    try {
        return sign_jwt(header, claims, key, alg);
    } catch (const std::exception& e) {
        r.error.error = "internal_error";
        r.error.description = std::string("cannot sign the assertion: ") + util::utf8_safe(util::truncate_utf8(e.what(), 200));
        return std::nullopt;
    }
}

long long unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class HttpProvider : public TokenProvider {
public:
    HttpProvider(const Connection& c, const config::TokenSettings& s)
        : conn_(c), tls_(net::make_client_context(c.ca_file)), timeout_(s.http_timeout) {}

protected:
    awaitable<TokenResult> post(Form form) {
        HttpRequest req;
        req.url = conn_.token_url;
        req.body = encode_form(form);
        req.timeout = timeout_;
        HttpResult http = co_await http_request(std::move(req), tls_);
        co_return parse_token_response(http);
    }
    Connection conn_;
    std::shared_ptr<ssl::context> tls_;
    std::chrono::seconds timeout_;
};

// Client credentials with a shared secret (or none: a public generic client).
class ClientSecretProvider final : public HttpProvider {
public:
    using HttpProvider::HttpProvider;
    awaitable<TokenResult> fetch(std::string) override {
        Form form{{"grant_type", "client_credentials"}, {"client_id", conn_.client_id}};
        if (!conn_.client_secret.empty()) form.emplace_back("client_secret", conn_.client_secret.value);
        if (!conn_.scope.empty()) form.emplace_back("scope", conn_.scope);
        co_return co_await post(std::move(form));
    }
    bool per_mailbox() const override { return false; }
    std::string describe() const override {
        if (conn_.provider == config::Provider::microsoft)
            return "microsoft client_secret, tenant " + conn_.tenant + ", app " + conn_.client_id;
        return "generic client credentials, client " + conn_.client_id + ", " + conn_.token_url;
    }
};

// Client credentials with a signed client assertion (Microsoft certificate flow).
class CertificateProvider final : public HttpProvider {
public:
    CertificateProvider(const Connection& c, const config::TokenSettings& s)
        : HttpProvider(c, s), key_(load_private_key_file(c.private_key_file)) {
        Certificate cert = load_certificate_file(c.certificate_file);
        if (X509_check_private_key(cert.get(), key_.get()) != 1)
            throw std::runtime_error(c.private_key_file + " is not the private key of " + c.certificate_file);
        if (c.assertion == config::Assertion::rs256_x5t) {
            alg_ = JwtAlg::rs256;
            header_ = {{"typ", "JWT"}, {"x5t", cert_thumbprint_sha1(cert.get())}};
        } else {
            alg_ = JwtAlg::ps256;
            header_ = {{"typ", "JWT"}, {"x5t#S256", cert_thumbprint_sha256(cert.get())}};
        }
    }
    awaitable<TokenResult> fetch(std::string) override {
        long long now = unix_now();
        nlohmann::json claims = {{"aud", conn_.token_url}, {"iss", conn_.client_id},
                                 {"sub", conn_.client_id}, {"jti", random_uuid()},
                                 {"nbf", now},            {"iat", now},
                                 {"exp", now + 600}};
        TokenResult r;
        auto assertion = try_sign(header_, claims, key_.get(), alg_, r);
        if (!assertion) co_return r;
        Form form{{"grant_type", "client_credentials"},
                  {"client_id", conn_.client_id},
                  {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
                  {"client_assertion", *assertion},
                  {"scope", conn_.scope}};
        co_return co_await post(std::move(form));
    }
    bool per_mailbox() const override { return false; }
    std::string describe() const override {
        return std::string("microsoft certificate (") +
               (alg_ == JwtAlg::rs256 ? "RS256 x5t" : "PS256 x5t#S256") + "), tenant " + conn_.tenant +
               ", app " + conn_.client_id;
    }

private:
    PrivateKey key_;
    JwtAlg alg_ = JwtAlg::rs256;
    nlohmann::json header_;
};

// Google service account with domain-wide delegation: one token per mailbox.
class ServiceAccountProvider final : public HttpProvider {
public:
    ServiceAccountProvider(const Connection& c, const config::TokenSettings& s)
        : HttpProvider(c, s),
          key_(load_private_key_pem(c.service_account.private_key_pem, c.key_file + ": private_key")) {}
    awaitable<TokenResult> fetch(std::string mailbox) override {
        if (auto refused = refuse_mailbox(mailbox)) co_return *refused;
        long long now = unix_now();
        nlohmann::json header = {{"typ", "JWT"}, {"kid", conn_.service_account.private_key_id}};
        nlohmann::json claims = {{"iss", conn_.service_account.client_email},
                                 {"sub", mailbox},
                                 {"scope", conn_.scope},
                                 {"aud", conn_.token_url},
                                 {"iat", now},
                                 {"exp", now + 3600}};
        TokenResult r;
        auto assertion = try_sign(header, claims, key_.get(), JwtAlg::rs256, r);
        if (!assertion) co_return r;
        Form form{{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", *assertion}};
        co_return co_await post(std::move(form));
    }
    bool per_mailbox() const override { return true; }
    std::string describe() const override {
        return "google service account " + conn_.service_account.client_email;
    }

private:
    PrivateKey key_;
};

// Interactive flows after their first authorization: the refresh token from the
// store buys an access token, and the rotated refresh token is stored at once.
class RefreshTokenProvider final : public HttpProvider {
public:
    RefreshTokenProvider(const Connection& c, const config::TokenSettings& s, std::shared_ptr<TokenStore> store)
        : HttpProvider(c, s), store_(std::move(store)), shared_(std::dynamic_pointer_cast<RedisTokenStore>(store_)) {}
    awaitable<TokenResult> fetch(std::string mailbox) override {
        if (auto refused = refuse_mailbox(mailbox)) co_return *refused;
        if (shared_) {
            auto op = fetch_shared(mailbox);
            TokenResult shared = co_await std::move(op);
            co_return shared;
        }
        TokenResult r;
        std::optional<StoredGrant> grant;
        try {
            grant = store_->get(conn_.name, mailbox);
        } catch (const StoreError& e) {
            r.error.error = "token_store";
            r.error.description = e.what();
            co_return r;
        }
        if (!grant || grant->refresh_token.empty()) {
            r.error.error = "needs_authorization";
            r.error.description = "no refresh token for " + mailbox + ": run 'xoauth2-proxy authorize " + conn_.name +
                                  " --mailbox " + mailbox + (conn_.flow == config::Flow::device_code ? " --device'" : "'");
            co_return r;
        }
        Form form{{"grant_type", "refresh_token"}, {"client_id", conn_.client_id}, {"refresh_token", grant->refresh_token},
                  {"scope", conn_.scope}};
        if (!conn_.client_secret.empty()) form.emplace_back("client_secret", conn_.client_secret.value);
        r = co_await post(std::move(form));
        if (r.ok()) {
            if (!r.token->refresh_token.empty()) {   // rotation: keep the new one, drop the old
                grant->refresh_token = r.token->refresh_token;
                grant->updated = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count();
                try {
                    store_->put(conn_.name, mailbox, *grant);
                } catch (const StoreError& e) {
                    r.token.reset();
                    r.error.error = "token_store";
                    r.error.description = std::string("the rotated refresh token could not be saved: ") + e.what();
                    co_return r;
                }
            }
            r.token->refresh_token.clear();   // never cached beside the access token
        } else if (r.error.error == "invalid_grant") {
            r.error.description += " -- needs authorization: run 'xoauth2-proxy authorize " + conn_.name + " --mailbox " + mailbox + "'";
        }
        co_return r;
    }
    bool per_mailbox() const override { return true; }
    std::string describe() const override {
        return std::string(config::to_string(conn_.provider)) + " " + config::to_string(conn_.flow) + " (delegated), app " +
               conn_.client_id;
    }

private:
    static TokenResult store_failure(const std::string& why) {
        TokenResult r;
        r.error.error = "token_store";
        r.error.description = why;
        r.error.transient = true;
        return r;
    }
    TokenResult needs_authorization(const std::string& mailbox) const {
        TokenResult r;
        r.error.error = "needs_authorization";
        r.error.description = "no refresh token for " + mailbox + ": run 'xoauth2-proxy authorize " + conn_.name +
                              " --mailbox " + mailbox + (conn_.flow == config::Flow::device_code ? " --device'" : "'");
        return r;
    }

    // Replicas sharing Redis: a fresh access token there is used as it is; else
    // one replica takes the lock and refreshes, the others poll until the
    // rotated token appears (bounded by the lock's lifetime).
    awaitable<TokenResult> fetch_shared(std::string mailbox) {
        RedisTokenStore& rs = *shared_;
        const auto fresh_for = conn_.refresh_window;
        const auto deadline = std::chrono::steady_clock::now() + rs.lock_timeout() + std::chrono::seconds(5);
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (;;) {
            auto a_op = rs.get_access(conn_.name, mailbox, fresh_for);
            RedisTokenStore::Access a = co_await std::move(a_op);
            if (!a.error.empty()) co_return store_failure("token store " + rs.describe() + ": " + a.error);
            if (a.token) {
                TokenResult r;
                r.token = std::move(a.token);
                co_return r;
            }
            auto l_op = rs.try_lock(conn_.name, mailbox);
            RedisTokenStore::Lock l = co_await std::move(l_op);
            if (!l.error.empty()) co_return store_failure("token store " + rs.describe() + ": " + l.error);
            if (l.acquired) {
                auto op = refresh_locked(mailbox, l.owner);
                TokenResult r = co_await std::move(op);
                co_return r;
            }
            if (std::chrono::steady_clock::now() >= deadline)
                co_return store_failure("another replica's refresh of " + mailbox + " did not finish in time");
            timer.expires_after(std::chrono::milliseconds(100));
            error_code ec;
            co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
        }
    }

    awaitable<TokenResult> refresh_locked(std::string mailbox, std::string owner) {
        RedisTokenStore& rs = *shared_;
        auto a_op = rs.get_access(conn_.name, mailbox, conn_.refresh_window);   // refreshed just before we locked?
        RedisTokenStore::Access a = co_await std::move(a_op);
        TokenResult r;
        if (a.error.empty() && a.token) r.token = std::move(a.token);
        RedisTokenStore::Grant g;
        if (!r.ok()) {
            auto g_op = rs.get_grant(conn_.name, mailbox);
            g = co_await std::move(g_op);
            if (!g.error.empty()) r = store_failure("token store " + rs.describe() + ": " + g.error);
            else if (!g.grant || g.grant->refresh_token.empty()) r = needs_authorization(mailbox);
        }
        if (r.ok() || !g.grant || g.grant->refresh_token.empty()) {
            auto u_op = rs.unlock(conn_.name, mailbox, owner);
            co_await std::move(u_op);
            co_return r;
        }
        Form form{{"grant_type", "refresh_token"}, {"client_id", conn_.client_id}, {"refresh_token", g.grant->refresh_token},
                  {"scope", conn_.scope}};
        if (!conn_.client_secret.empty()) form.emplace_back("client_secret", conn_.client_secret.value);
        auto p_op = post(std::move(form));
        r = co_await std::move(p_op);
        if (!r.ok()) {
            if (r.error.error == "invalid_grant")
                r.error.description += " -- needs authorization: run 'xoauth2-proxy authorize " + conn_.name + " --mailbox " + mailbox + "'";
            auto u_op = rs.unlock(conn_.name, mailbox, owner);
            co_await std::move(u_op);
            co_return r;
        }
        std::optional<StoredGrant> rotated;
        if (!r.token->refresh_token.empty()) {
            rotated = *g.grant;
            rotated->refresh_token = r.token->refresh_token;
            rotated->updated = unix_now();
        }
        r.token->refresh_token.clear();   // never cached, never in the access entry
        auto c_op = rs.commit(conn_.name, mailbox, owner, g.version, std::move(rotated), r.token);
        RedisTokenStore::Commit c = co_await std::move(c_op);
        if (!c.error.empty()) {
            spdlog::error("token connection={} mailbox={}: the rotated refresh token could not be saved in {}: {}",
                          util::log_escape(conn_.name), util::log_escape(mailbox), rs.describe(), util::log_escape(c.error));
        } else if (c.result < 0) {
            spdlog::warn("token connection={} mailbox={}: another writer changed the grant during this refresh; "
                         "its write was kept (fencing)", util::log_escape(conn_.name), util::log_escape(mailbox));
        }
        co_return r;
    }

    std::shared_ptr<TokenStore> store_;
    std::shared_ptr<RedisTokenStore> shared_;
};

}  // namespace

std::unique_ptr<TokenProvider> make_provider(const Connection& c, const config::TokenSettings& s,
                                             std::shared_ptr<TokenStore> store) {
    switch (c.flow) {
        case config::Flow::client_secret: return std::make_unique<ClientSecretProvider>(c, s);
        case config::Flow::certificate: return std::make_unique<CertificateProvider>(c, s);
        case config::Flow::service_account: return std::make_unique<ServiceAccountProvider>(c, s);
        case config::Flow::authorization_code:
        case config::Flow::device_code:
            if (!store) throw std::runtime_error("connection " + c.name + ": the token store is not available");
            return std::make_unique<RefreshTokenProvider>(c, s, std::move(store));
    }
    throw std::runtime_error("connection " + c.name + ": unknown flow");
}

}  // namespace xo::oauth
