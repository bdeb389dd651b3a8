// What an identity provider's or mail server's error means and what the admin
// should change, in one sentence each. Pure lookup tables; unknown codes give
// a generic hint rather than nothing.
#pragma once
#include <string>
#include <string_view>

namespace xo::diagnose {

// code: "AADSTS7000215", or an OAuth error such as "invalid_grant" (Google).
// description: the provider's text, used to tell Google's invalid_grant cases apart.
std::string token_error_advice(std::string_view code, std::string_view error,
                               std::string_view description);

// An upstream SMTP/IMAP/POP3 reply ("535 5.7.139 ...") to advice, or "".
std::string upstream_reply_advice(std::string_view reply);

}  // namespace xo::diagnose
