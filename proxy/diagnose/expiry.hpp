// Credentials that expire: a certificate's notAfter (read from the file), a
// client secret's `secret_expires:` date, and a stored refresh token's idle
// limit from its last rotation (Microsoft 90 days, Google six months). credential_expiries() lists them for
// every connection; due() says whether to warn (30 days ahead or later).
// Never throws: an unreadable certificate or store is reported in `problem`.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace xo::diagnose {

constexpr long long kWarnAheadSeconds = 30LL * 86400;
constexpr long long kRefreshIdleSeconds = 90LL * 86400;         // Microsoft
constexpr long long kGoogleRefreshIdleSeconds = 180LL * 86400;  // Google: six months unused

struct CredentialExpiry {
    std::string connection;
    std::string kind;       // "certificate" | "secret" | "refresh_token"
    std::string mailbox;    // refresh_token only
    std::string what;       // "certificate /etc/x.crt", "client secret", "refresh token of alice@..."
    long long expires_at = 0;   // unix time; 0 when unknown (see problem)
    std::string problem;    // why it could not be read
};

std::vector<CredentialExpiry> credential_expiries(const config::Config& cfg);

inline bool due(const CredentialExpiry& e, long long now) {
    return e.expires_at != 0 && e.expires_at - now <= kWarnAheadSeconds;
}

// "certificate /etc/x.crt of connection c expires 2027-01-31 (in 12 days)" or "... expired 3 days ago".
std::string describe(const CredentialExpiry& e, long long now);
// The diagnosis table's cause and fix for this kind ("...; to fix: ...").
std::string expiry_advice(const CredentialExpiry& e);

long long unix_now();

}  // namespace xo::diagnose
