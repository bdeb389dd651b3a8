// The diagnosis table: one case per row, each as the provider or server says it,
// and a check that no row is left without its case.
#include <gtest/gtest.h>

#include <cctype>
#include <ostream>
#include <set>

#include "diagnose/diagnose.hpp"

using namespace xo::diagnose;

namespace {

struct Case {
    Source source;
    std::string code, error, text;   // token: code/error/description; reply: text; local: code
    std::string expect_cause;        // a part of the row's cause
    std::string expect_fix;          // a part of the row's fix
};

const Row* lookup(const Case& c) {
    switch (c.source) {
        case Source::token: return match_token_error(c.code, c.error, c.text);
        case Source::reply: return match_reply(c.text);
        case Source::local: return find_condition(c.code);
        case Source::api: return match_api_error(unsigned(std::stoi(c.code)), c.error, c.text);
    }
    return nullptr;
}

const std::vector<Case> kCases = {
    // Graph sendMail and the Gmail API: status, error code, message as they answer
    {Source::api, "403", "ErrorAccessDenied", "Access is denied. Check credentials and try again.", "Mail.Send", "Grant admin consent"},
    {Source::api, "403", "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.", "From address", "Add-RecipientPermission"},
    {Source::api, "404", "ErrorInvalidUser", "The requested user 'x@contoso.test' is invalid.", "does not exist", "Licenses"},
    {Source::api, "400", "ErrorInvalidRecipients", "At least one recipient is not valid.", "recipient", "recipient addresses"},
    {Source::api, "413", "", "Request Entity Too Large", "size limit", "send_via: smtp"},
    {Source::api, "403", "accessNotConfigured", "Gmail API has not been used in project 1234 before or it is disabled.", "not enabled", "Gmail API > Enable"},
    {Source::api, "403", "insufficientPermissions", "Request had insufficient authentication scopes.", "scope", "Domain-wide delegation"},
    {Source::api, "400", "failedPrecondition", "Precondition check failed.", "Gmail is not enabled", "turn Gmail on"},
    {Source::api, "400", "ErrorMimeContentInvalid", "The MIME content is invalid.", "malformed", "MIME structure"},
    // Microsoft token endpoint
    {Source::token, "AADSTS7000215", "invalid_client", "AADSTS7000215: Invalid client secret provided.", "secret's ID", "Certificates & secrets"},
    {Source::token, "AADSTS7000222", "invalid_client", "AADSTS7000222: The provided client secret keys for app are expired.", "expired", "secret_expires"},
    {Source::token, "AADSTS700016", "unauthorized_client", "AADSTS700016: Application with identifier 'x' was not found", "no application", "client_id"},
    {Source::token, "AADSTS65001", "invalid_grant", "AADSTS65001: The user or administrator has not consented", "consent", "Grant admin consent"},
    {Source::token, "AADSTS700027", "invalid_client", "AADSTS700027: Client assertion contains an invalid signature.", "signature", "Upload certificate"},
    {Source::token, "AADSTS700024", "invalid_client", "AADSTS700024: Client assertion is not within its valid time range.", "clock skew", "set-ntp"},
    {Source::token, "AADSTS700021", "invalid_client", "AADSTS700021: Client assertion application identifier doesn't match", "another application", "client_id"},
    {Source::token, "AADSTS700023", "invalid_client", "AADSTS700023: Client assertion audience claim does not match", "audience", "authority"},
    {Source::token, "AADSTS7000218", "invalid_client", "AADSTS7000218: The request body must contain client_assertion or client_secret", "neither", "client_secret"},
    {Source::token, "AADSTS90002", "invalid_request", "AADSTS90002: Tenant 'x' not found.", "tenant", "Directory (tenant) ID"},
    {Source::token, "AADSTS9001023", "invalid_request", "AADSTS9001023: The grant type is not supported over the /common", "one tenant", "tenant id"},
    {Source::token, "AADSTS70011", "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.", "scope", ".default"},
    {Source::token, "AADSTS700082", "invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.", "90 days", "authorize"},
    {Source::token, "AADSTS70008", "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired", "expired", "authorize"},
    {Source::token, "AADSTS50173", "invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked", "revoked", "authorize"},
    {Source::token, "AADSTS53003", "access_denied", "AADSTS53003: Access has been blocked by Conditional Access policies.", "Conditional Access", "exclude"},
    {Source::token, "AADSTS530035", "access_denied", "AADSTS530035: Access has been blocked by security defaults.", "security defaults", "app-only"},
    {Source::token, "AADSTS50196", "invalid_request", "AADSTS50196: The server terminated an operation because it encountered a loop", "loop", "cached"},
    {Source::token, "AADSTS501481", "invalid_grant", "AADSTS501481: The Code_Verifier does not match", "code_verifier", "authorize"},
    {Source::token, "AADSTS65004", "access_denied", "AADSTS65004: User declined to consent", "declined", "accept"},
    // Device code polling
    {Source::token, "", "authorization_declined", "", "declined", "--device"},
    {Source::token, "", "expired_token", "", "device code expired", "--device"},
    {Source::token, "", "bad_verification_code", "", "not recognised", "--device"},
    // Google and generic OAuth errors
    {Source::token, "", "invalid_grant", "refresh token needs authorization again", "no longer works", "authorize"},
    {Source::token, "", "invalid_grant", "Invalid JWT Signature.", "signature", "Add key > JSON"},
    {Source::token, "", "invalid_grant", "Invalid email or User ID", "impersonated mailbox", "Workspace"},
    {Source::token, "", "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.", "clock skew", "set-ntp"},
    {Source::token, "", "invalid_grant", "Invalid grant: account not found", "service account", "Service accounts"},
    {Source::token, "", "invalid_grant", "Token has been expired or revoked.", "'Testing' status", "OAuth consent screen"},
    // As the token cache passes it on for a stored refresh token: the provider's reason still decides.
    {Source::token, "", "invalid_grant", "Token has been expired or revoked. -- needs authorization: run 'xoauth2-proxy authorize gmail-user --mailbox alice@fabrikam.test'", "'Testing' status", "Publish app"},
    {Source::token, "", "invalid_grant", "something else", "refused", "check the key"},
    {Source::token, "", "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method", "domain-wide delegation", "Manage Domain Wide Delegation"},
    {Source::token, "", "invalid_client", "Client authentication failed", "client credentials", "client_id"},
    {Source::token, "", "invalid_scope", "bad scope", "scope", "mail.google.com"},
    {Source::token, "", "needs_authorization", "", "not been authorized", "authorize"},
    {Source::token, "", "token_store", "bad key", "token store", "0600"},
    {Source::token, "", "token_store", "token store redis://127.0.0.1:6379/0: redis://127.0.0.1:6379/0 unavailable: connect: Connection refused", "Redis token store", "redis-server"},
    {Source::token, "", "token_store", "another replica's refresh of bob@contoso.test did not finish in time", "refresh lock", "redis_lock_timeout"},
    {Source::token, "", "network", "connect: refused", "could not be reached", "DNS"},
    {Source::token, "", "server_error", "", "temporary", "retry"},
    {Source::token, "", "http_error", "", "temporary", "retry"},
    // SMTP replies
    {Source::reply, "", "", "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "3 SMTP connections", "concurrency"},
    {Source::reply, "", "", "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", "recipient rate limit", "24 hours"},
    {Source::reply, "", "", "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException", "full", "Sent Items"},
    {Source::reply, "", "", "550 5.7.60 SMTP; Client does not have permissions to send as this sender", "SendAs", "Add-RecipientPermission"},
    {Source::reply, "", "", "554 5.2.252 SendAsDenied; erp@contoso.test not allowed to send as ceo@contoso.test", "SendAsDenied", "Add-RecipientPermission"},
    {Source::reply, "", "", "430 4.2.0 STOREDRV; mailbox logon failure", "mailbox logon failure", "New-ServicePrincipal"},
    {Source::reply, "", "", "550 5.7.30 Basic authentication is not supported for Client Submission", "basic authentication", "XOAUTH2"},
    {Source::reply, "", "", "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.", "security defaults", "Manage security defaults"},
    {Source::reply, "", "", "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.", "Conditional Access", "Sign-in logs"},
    {Source::reply, "", "", "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", "SMTP AUTH is disabled", "Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false"},
    {Source::reply, "", "", "501 5.5.127 Authentication unsuccessful. Token will expire soon", "10 minutes", "refresh_window"},
    {Source::reply, "", "", "550 5.5.105 External recipients are not allowed", "internal recipients", "smtp.office365.com"},
    {Source::reply, "", "", "550 5.4.5 Daily user sending limit exceeded.", "daily sending limit", "24 hours"},
    {Source::reply, "", "", "535 5.7.3 Authentication unsuccessful", "30 minutes", "Add-MailboxPermission"},
    {Source::reply, "", "", "535 5.7.8 Error: authentication failed: (reason unavailable)", "refused the token", "domain-wide delegation"},
    {Source::reply, "", "", "454 4.7.0 Temporary authentication failure", "temporary", "retry"},
    {Source::reply, "", "", "530 5.7.57 Client not authenticated to send mail", "authentication before MAIL", "bug"},
    // IMAP and POP3
    {Source::reply, "", "", "UNAVAILABLE Temporary authentication failure. [host:time]", "temporary", "retry"},
    {Source::reply, "", "", "[SYS/TEMP] Temporary authentication failure.", "temporary", "retry"},
    {Source::reply, "", "", "AUTHENTICATIONFAILED Authentication failed.", "refused the token", "End User Access"},
    {Source::reply, "", "", " AUTHENTICATE failed.", "up to 30 minutes", "-ImapEnabled"},
    {Source::reply, "", "", "[AUTH] Authentication failed.", "refused the token", "POP.AccessAsApp"},
    // Local conditions
    {Source::local, "device_code_google", "", "", "TVs and limited input devices", "authorization_code"},
    {Source::local, "clock_skew", "", "", "clock", "set-ntp"},
    {Source::local, "certificate_expiring", "", "", "certificate expires", "Upload certificate"},
    {Source::local, "secret_expiring", "", "", "secret expires", "New client secret"},
    {Source::local, "refresh_token_idle", "", "", "90 days", "authorize again"},
    {Source::local, "connect", "", "", "could not be reached", "firewall"},
    {Source::local, "tls", "", "", "certificate", "ca_file"},
    {Source::local, "no_starttls", "", "", "STARTTLS", "tls:"},
    {Source::local, "no_mechanism", "", "", "XOAUTH2", "Set-CASMailbox"},
};

// gtest prints a case by its input, not as bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << (c.code.empty() ? c.error : c.code) << " \"" << c.text << "\""; }

class DiagnoseRow : public testing::TestWithParam<Case> {};

}  // namespace

TEST_P(DiagnoseRow, MatchesWithCauseAndFix) {
    const Case& c = GetParam();
    const Row* r = lookup(c);
    ASSERT_NE(r, nullptr) << c.code << c.error << " " << c.text;
    EXPECT_NE(std::string(r->cause).find(c.expect_cause), std::string::npos) << r->cause;
    EXPECT_NE(std::string(r->fix).find(c.expect_fix), std::string::npos) << r->fix;
}

INSTANTIATE_TEST_SUITE_P(Table, DiagnoseRow, testing::ValuesIn(kCases), [](const testing::TestParamInfo<Case>& info) {
    std::string name = std::to_string(info.index) + "_" + (info.param.code.empty() ? info.param.error : info.param.code);
    if (name.back() == '_') name += info.param.text.substr(0, 9);
    for (auto& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    return name;
});

// Every row has a case above that lands on it.
TEST(Diagnose, EveryRowHasItsCase) {
    std::set<const Row*> hit;
    for (const auto& c : kCases)
        if (const Row* r = lookup(c)) hit.insert(r);
    for (const auto& r : table())
        EXPECT_TRUE(hit.count(&r)) << "no test case for row " << r.code << " " << r.enhanced << " " << r.text;
    EXPECT_EQ(hit.size(), table().size());
}

// Every row can be found and says something: a code (or, for IMAP/POP3 answers, a text to
// match), a cause and a fix; a token or local row's code is unique unless a text tells the
// variants apart.
TEST(Diagnose, EveryRowIsComplete) {
    std::set<std::string> seen;
    for (const auto& r : table()) {
        std::string id = std::string(r.code) + "|" + std::string(r.enhanced) + "|" + std::string(r.text);
        EXPECT_TRUE(!r.code.empty() || (r.source == Source::reply && !r.text.empty())) << id;
        EXPECT_GE(r.cause.size(), 10u) << id;
        EXPECT_GE(r.fix.size(), 10u) << id;
        EXPECT_TRUE(seen.insert(id).second) << "row twice: " << id;
        if (r.source == Source::reply && !r.code.empty()) {
            EXPECT_EQ(r.code.size(), 3u) << id;
            EXPECT_TRUE(r.enhanced.empty() || r.enhanced[0] == r.code[0]) << "class of " << id;
        }
    }
}

TEST(Diagnose, UnknownGivesGenericOrNothing) {
    EXPECT_EQ(token_error_advice("", "weird_error", ""), "see the provider's description");
    EXPECT_EQ(upstream_reply_advice("250 2.0.0 Ok"), "");
    EXPECT_EQ(upstream_reply_advice("535 5.7.999 unknown"), "");
}

TEST(Diagnose, AdviceJoinsCauseAndFix) {
    std::string a = token_error_advice("AADSTS7000215", "invalid_client", "");
    EXPECT_EQ(a.rfind("the client secret is wrong: often the secret's ID was pasted", 0), 0u);
    EXPECT_NE(a.find("; to fix: Azure portal"), std::string::npos);
    // The code decides for Microsoft even when the OAuth error would match another row.
    EXPECT_NE(token_error_advice("AADSTS65001", "invalid_grant", "").find("consent"), std::string::npos);
    // An enhanced code in the text without a reply code (IMAP/POP3 texts, older callers).
    EXPECT_NE(upstream_reply_advice("Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox")
                  .find("SMTP AUTH is disabled"),
              std::string::npos);
    EXPECT_NE(upstream_reply_advice("SendAsDenied").find("SendAs"), std::string::npos);
}
