// SASL pieces shared by the SMTP, IMAP and POP3 sessions: the XOAUTH2 and
// OAUTHBEARER initial responses we send upstream, the PLAIN and LOGIN
// responses legacy clients send us, and the JSON error challenge that Gmail
// (and Dovecot) send when a bearer token is refused. Pure functions.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xo::sasl {

// base64("user=" U "\x01auth=Bearer " T "\x01\x01")
std::string xoauth2_initial_response(std::string_view user, std::string_view token);
// base64("n,a=" U ",\x01host=" H "\x01port=" P "\x01auth=Bearer " T "\x01\x01"), RFC 7628
std::string oauthbearer_initial_response(std::string_view user, std::string_view host, uint16_t port,
                                         std::string_view token);

struct PlainCredentials {
    std::string authzid, authcid, password;
};
// Decodes an AUTH PLAIN response; nullopt when it is not base64 of
// [authzid] NUL authcid NUL passwd, authcid is empty, or authzid names someone else.
std::optional<PlainCredentials> decode_plain(std::string_view base64);

struct ErrorChallenge {
    std::string status, schemes, scope;
    bool retry_with_fresh_token = false;   // status 400 or 401
};
// Decodes `334 <base64 JSON>` / `+ <base64 JSON>` text; nullopt when it is not one.
std::optional<ErrorChallenge> parse_error_challenge(std::string_view base64);

inline constexpr const char* kLoginUsernamePrompt = "VXNlcm5hbWU6";   // "Username:"
inline constexpr const char* kLoginPasswordPrompt = "UGFzc3dvcmQ6";   // "Password:"

}  // namespace xo::sasl
