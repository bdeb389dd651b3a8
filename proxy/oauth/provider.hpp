// The token provider interface: one implementation per non-interactive OAuth2
// flow (client secret, certificate assertion, Google service account, generic
// client credentials). fetch() makes exactly one request at the token endpoint
// and never throws: failures come back as a ProviderError that keeps the
// provider's own error, description and AADSTS code for the admin.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "asio.hpp"
#include "config/config.hpp"
#include "oauth/http_client.hpp"

namespace xo::oauth {

struct Token {
    std::string access_token;
    std::string scope;                                   // as granted, when the provider says
    std::chrono::steady_clock::time_point expires_at;    // for refresh decisions
    std::chrono::system_clock::time_point expires_wall;  // for display
    std::chrono::system_clock::time_point obtained;
    std::string refresh_token;                           // interactive flows: the rotated one, to be stored
};

struct ProviderError {
    unsigned http_status = 0;  // 0: no HTTP answer at all
    std::string error;         // OAuth "error" (invalid_client, ...) or "network"/"bad_response"
    std::string description;   // first line of error_description, or the network error
    std::string code;          // "AADSTS7000215" when the provider gave one
    bool transient = false;    // worth retrying: network trouble, 5xx, 429
    // "AADSTS7000215 invalid_client (HTTP 401): Invalid client secret provided..."
    std::string summary() const;
};

struct TokenResult {
    std::optional<Token> token;
    ProviderError error;
    bool ok() const { return token.has_value(); }
};

class TokenProvider {
public:
    virtual ~TokenProvider() = default;
    // One request at the token endpoint. `mailbox` is the impersonated user for
    // per-mailbox flows and ignored by app-only ones.
    virtual awaitable<TokenResult> fetch(std::string mailbox) = 0;
    virtual bool per_mailbox() const = 0;
    // "microsoft client_secret, tenant T, app A": for logs and status.
    virtual std::string describe() const = 0;
};

class TokenStore;

// Builds the provider for a connection's flow; throws std::runtime_error when a
// key or certificate cannot be loaded, or an interactive flow has no store.
std::unique_ptr<TokenProvider> make_provider(const config::Connection& conn,
                                             const config::TokenSettings& settings,
                                             std::shared_ptr<TokenStore> store = nullptr);

// Turns a token endpoint's HTTP answer into a token or a ProviderError.
TokenResult parse_token_response(const HttpResult& http);

}  // namespace xo::oauth
