// SASL pieces shared by the SMTP, IMAP and POP3 sessions: the XOAUTH2 and
// OAUTHBEARER initial responses we send upstream, the PLAIN and LOGIN
// responses legacy clients send us, and the JSON error challenge that Gmail
// (and Dovecot) send when a bearer token is refused. Pure functions: malformed
// input gives std::nullopt, never an exception.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xo::sasl {

// base64("user=" U "\x01auth=Bearer " T "\x01\x01")
std::string xoauth2_initial_response(std::string_view user, std::string_view token);
// base64("n,a=" U ",\x01host=" H "\x01port=" P "\x01auth=Bearer " T "\x01\x01"), RFC 7628;
// ',' and '=' in U are sent as =2C and =3D.
std::string oauthbearer_initial_response(std::string_view user, std::string_view host, uint16_t port,
                                         std::string_view token);

// What a client answers to an error challenge: XOAUTH2 an empty line,
// OAUTHBEARER base64("\x01") (RFC 7628 section 3.2.3).
inline constexpr const char* kXoauth2ErrorAnswer = "";
inline constexpr const char* kOauthbearerErrorAnswer = "AQ==";

// "PLAIN AGVycABwdw==" -> {"PLAIN", "AGVycABwdw=="}: mechanism uppercased, initial
// response verbatim ("" when absent; "=" stands for an empty one, RFC 4954).
struct MechanismArg {
    std::string mechanism;
    std::string initial;
    bool has_initial = false;
};
MechanismArg split_mechanism(std::string_view arg);

// A client's answer "*" cancels the exchange (SMTP, IMAP and POP3 alike).
inline bool is_cancel(std::string_view line) { return line == "*"; }

struct PlainCredentials {
    std::string authzid, authcid, password;
};
// Decodes an AUTH PLAIN response; nullopt when it is not base64 of
// [authzid] NUL authcid NUL passwd, authcid is empty, or authzid names someone
// else (an authzid equal to authcid is accepted). "=" decodes as empty: nullopt.
std::optional<PlainCredentials> decode_plain(std::string_view base64);

// One AUTH LOGIN answer (the user name or the password), base64; "=" is empty.
std::optional<std::string> decode_login_field(std::string_view base64);

struct ErrorChallenge {
    std::string status, schemes, scope;
    bool retry_with_fresh_token = false;   // status 400 or 401
};
// Decodes `334 <base64 JSON>` / `+ <base64 JSON>` text; nullopt when it is not
// base64 of a JSON object with a "status" (string or integer).
std::optional<ErrorChallenge> parse_error_challenge(std::string_view base64);

inline constexpr const char* kLoginUsernamePrompt = "VXNlcm5hbWU6";   // "Username:"
inline constexpr const char* kLoginPasswordPrompt = "UGFzc3dvcmQ6";   // "Password:"

}  // namespace xo::sasl
