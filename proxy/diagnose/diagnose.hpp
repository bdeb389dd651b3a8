// The diagnosis table: every failure the providers and mail servers are known
// to give (docs: ../shared/PROTOCOLS.md), one row each, with a plain
// explanation and the fix (portal page and setting, PowerShell or Admin
// console step). Pure lookups used alike by `test`, `status`, the log lines
// and /status; no match gives nullptr (or a generic hint from the *_advice calls).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace xo::diagnose {

enum class Source {
    token,   // the token endpoint: code = AADSTS code or OAuth error ("invalid_grant")
    reply,   // a mail server reply: code = SMTP code ("535", "" for IMAP/POP3), enhanced = "5.7.139"
    local,   // a condition found here: code = its name ("device_code_google", "certificate_expiring")
    api,     // Graph sendMail / Gmail API: code = HTTP status ("403"), enhanced = the API's error code
             // ("ErrorAccessDenied", "insufficientPermissions"; "" for any)
};

struct Row {
    Source source;
    std::string_view code;
    std::string_view enhanced;  // reply rows: the enhanced status code, "" for any
    std::string_view text;      // must occur in the description / reply (case-insensitive), "" for any
    std::string_view cause;     // what happened, in plain words
    std::string_view fix;       // what the admin changes, and where
};

const std::vector<Row>& table();

// code: "AADSTS7000215" (Microsoft) or ""; error: the OAuth error ("invalid_grant");
// description: the provider's text, to tell Google's invalid_grant cases apart.
const Row* match_token_error(std::string_view code, std::string_view error, std::string_view description);
// "535 5.7.139 Authentication unsuccessful, ..." (SMTP, code first), or an IMAP/POP3
// answer ("NO [AUTHENTICATIONFAILED] ...", "-ERR [AUTH] ...").
const Row* match_reply(std::string_view reply);
// An answer of Graph sendMail or the Gmail API: HTTP status, the API's error
// code (Graph error.code, Gmail errors[0].reason) and message.
const Row* match_api_error(unsigned status, std::string_view code, std::string_view message);
// A local condition by name (Source::local rows).
const Row* find_condition(std::string_view name);

// "cause; to fix: fix".
std::string advice(const Row& row);

// The calls the rest of the proxy uses: the matching row's advice, or a generic
// hint (token errors) / "" (replies) when no row matches.
std::string token_error_advice(std::string_view code, std::string_view error, std::string_view description);
std::string upstream_reply_advice(std::string_view reply);

}  // namespace xo::diagnose
