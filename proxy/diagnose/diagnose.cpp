#include "diagnose/diagnose.hpp"

#include <array>
#include <utility>

namespace xo::diagnose {
namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 18> kAadsts{{
    {"AADSTS7000215", "the client secret is wrong: often the secret's ID was pasted instead of its Value; "
                      "in Azure > App registrations > Certificates & secrets create a new secret and copy its Value"},
    {"AADSTS7000222", "the client secret has expired: create a new one under App registrations > "
                      "Certificates & secrets and update the secret file"},
    {"AADSTS700016", "no application with this client_id exists in the tenant: check client_id and tenant, "
                     "or have a tenant admin consent to the app"},
    {"AADSTS65001", "no consent: a tenant admin must grant admin consent for the API permissions "
                    "(SMTP.SendAsApp, IMAP.AccessAsApp, POP.AccessAsApp) under API permissions"},
    {"AADSTS700027", "the client assertion's signature does not match a registered certificate: upload "
                     "this certificate (public part) under Certificates & secrets, or point 'certificate' "
                     "and 'private_key' at the registered pair"},
    {"AADSTS700024", "the client assertion is outside its valid time range: check this machine's clock (NTP)"},
    {"AADSTS700023", "the client assertion's audience is wrong: check 'authority' and 'tenant'"},
    {"AADSTS90002", "the tenant was not found: check 'tenant' (a tenant id or a verified domain)"},
    {"AADSTS9001023", "client credentials need a tenant id or domain, not common/consumers/organizations"},
    {"AADSTS70011", "the scope is invalid: app-only access needs https://outlook.office365.com/.default"},
    {"AADSTS700082", "the refresh token has expired: run 'xoauth2-proxy authorize' for this connection again"},
    {"AADSTS70008", "the refresh token or code has expired: run 'xoauth2-proxy authorize' again"},
    {"AADSTS50173", "the grant was revoked (password change or admin action): authorize again"},
    {"AADSTS53003", "blocked by Conditional Access: exclude this app or sign-in from the policy"},
    {"AADSTS530035", "blocked by security defaults: use an app registration with app-only permissions"},
    {"AADSTS50196", "Azure AD detected a request loop: tokens must be cached; report this as a bug"},
    {"AADSTS501481", "the PKCE code_verifier did not match: start the authorization again"},
    {"AADSTS65004", "the user declined consent: sign in again and accept the permissions"},
}};

bool contains(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

}  // namespace

std::string token_error_advice(std::string_view code, std::string_view error,
                               std::string_view description) {
    for (const auto& [c, advice] : kAadsts)
        if (c == code) return std::string(advice);
    if (error == "needs_authorization")
        return "this mailbox has not been authorized yet: run the command named above, then sign in";
    if (error == "token_store") return "the token store cannot be used: see the message; the file was left as it is";
    if (error == "invalid_grant" && description.find("needs authorization") != std::string_view::npos)
        return "the refresh token no longer works: authorize again with 'xoauth2-proxy authorize'";
    if (error == "invalid_grant") {
        if (contains(description, "Invalid JWT Signature"))
            return "Google rejected the assertion's signature: the key file's private key does not belong "
                   "to the service account, or the key was deleted; download a new JSON key";
        if (contains(description, "Invalid email or User ID"))
            return "Google does not know the impersonated mailbox: check the mailbox address and that it "
                   "belongs to the Workspace domain";
        if (contains(description, "iat and exp") || contains(description, "short-lived"))
            return "Google rejected the assertion's times: check this machine's clock (NTP)";
        return "the grant was refused: check the key, the mailbox and the provider's description";
    }
    if (error == "unauthorized_client")
        return "the client is not allowed this grant: for a Google service account, enable domain-wide "
               "delegation in the Admin console (Security > API controls) for its client ID with scope "
               "https://mail.google.com/";
    if (error == "invalid_client") return "the client credentials were refused: check client_id and the secret";
    if (error == "invalid_scope") return "the scope was refused: check 'scope'";
    if (error == "network") return "the token endpoint could not be reached: check DNS, firewall, proxy and ca_file";
    if (error == "server_error" || error == "http_error")
        return "the identity provider failed; this is usually temporary";
    return "see the provider's description";
}

std::string upstream_reply_advice(std::string_view reply) {
    if (contains(reply, "5.7.139") || contains(reply, "SmtpClientAuthentication"))
        return "SMTP AUTH is disabled for the tenant or mailbox: enable 'Authenticated SMTP' "
               "(Set-CASMailbox -SmtpClientAuthenticationDisabled $false)";
    if (contains(reply, "SendAsDenied") || contains(reply, "5.2.252"))
        return "the mailbox may not send as this address: grant SendAs (Add-RecipientPermission) or "
               "align the From address with the mailbox";
    if (contains(reply, "5.7.30"))
        return "basic authentication was refused: this upstream needs XOAUTH2";
    if (contains(reply, "5.5.127") || contains(reply, "expire soon"))
        return "the token was near expiry: raise refresh_window (at least 600 s for smtp-hve)";
    if (contains(reply, "5.7.3") || contains(reply, "5.7.8") || contains(reply, "AUTHENTICATIONFAILED"))
        return "the server refused the token for this mailbox: check that the app was granted access to "
               "the mailbox (Exchange: New-ServicePrincipal and Add-MailboxPermission; Google: "
               "domain-wide delegation)";
    return "";
}

}  // namespace xo::diagnose
