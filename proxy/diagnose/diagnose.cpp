#include "diagnose/diagnose.hpp"

#include <cctype>

namespace xo::diagnose {
namespace {

using S = Source;

// Order matters within a code: the first row whose text matches wins, so the
// specific variants come before the general one.
const std::vector<Row> kTable = {
    // ---- Microsoft identity platform (token endpoint)
    {S::token, "AADSTS7000215", "", "",
     "the client secret is wrong: often the secret's ID was pasted instead of its Value",
     "Azure portal > App registrations > the app > Certificates & secrets > New client secret; copy the Value "
     "column (not the Secret ID) into the file named by client_secret"},
    {S::token, "AADSTS7000222", "", "",
     "the client secret has expired",
     "Azure portal > App registrations > the app > Certificates & secrets > New client secret; put its Value in "
     "the secret file and set secret_expires: to its expiry date"},
    {S::token, "AADSTS700016", "", "",
     "no application with this client_id exists in the tenant",
     "check client_id (Application (client) ID on the app's Overview page) and tenant (Directory (tenant) ID); "
     "for an app from another tenant, have this tenant's admin consent to it"},
    {S::token, "AADSTS65001", "", "",
     "no admin consent: the app's API permissions were never granted for the tenant",
     "Azure portal > App registrations > the app > API permissions > Add a permission > APIs my organization uses > "
     "Office 365 Exchange Online > Application permissions SMTP.SendAsApp / IMAP.AccessAsApp / POP.AccessAsApp, "
     "then 'Grant admin consent for <tenant>'"},
    {S::token, "AADSTS700027", "", "",
     "the client assertion's signature does not match a certificate registered for the app",
     "Azure portal > App registrations > the app > Certificates & secrets > Certificates > Upload certificate "
     "(the public .crt/.pem named by 'certificate'), or point 'certificate' and 'private_key' at the registered pair"},
    {S::token, "AADSTS700024", "", "",
     "clock skew: the client assertion is outside its valid time range, this machine's clock is probably wrong",
     "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd) and check the time zone; the assertion is "
     "valid for minutes only"},
    {S::token, "AADSTS700021", "", "",
     "the client assertion names another application than client_id",
     "check client_id: it must be the Application (client) ID the certificate is registered for"},
    {S::token, "AADSTS700023", "", "",
     "the client assertion's audience is wrong",
     "check 'authority' and 'tenant': the audience is the token endpoint URL"},
    {S::token, "AADSTS7000218", "", "",
     "the request carried neither a client secret nor a client assertion",
     "set client_secret (flow client_secret) or certificate and private_key (flow certificate); for public "
     "clients enable Authentication > Allow public client flows"},
    {S::token, "AADSTS90002", "", "",
     "the tenant was not found",
     "set tenant to the Directory (tenant) ID from Microsoft Entra admin center > Overview, or a verified domain"},
    {S::token, "AADSTS9001023", "", "",
     "client credentials need one tenant, not common/consumers/organizations",
     "set tenant to the tenant id or a verified domain"},
    {S::token, "AADSTS70011", "", "",
     "the scope was refused",
     "app-only access needs scope https://outlook.office365.com/.default (remove a custom 'scope:')"},
    {S::token, "AADSTS700082", "", "",
     "the refresh token expired: it was not used for 90 days",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M' and sign in again"},
    {S::token, "AADSTS70008", "", "",
     "the refresh token or authorization code has expired",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M' again"},
    {S::token, "AADSTS50173", "", "",
     "the grant was revoked (password change, sign-out of all sessions, or an admin action)",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M' again"},
    {S::token, "AADSTS53003", "", "",
     "blocked by Conditional Access",
     "Microsoft Entra admin center > Protection > Conditional Access: exclude this app (or this server's IP "
     "as a named location) from the policy"},
    {S::token, "AADSTS530035", "", "",
     "blocked by security defaults",
     "use app-only access (flow client_secret or certificate), or Microsoft Entra admin center > Overview > "
     "Properties > Manage security defaults"},
    {S::token, "AADSTS50196", "", "",
     "Microsoft detected a request loop: the same token was asked for too often",
     "tokens must be cached: report this as a bug with the log lines around it"},
    {S::token, "AADSTS501481", "", "",
     "the PKCE code_verifier did not match the authorization request",
     "start 'xoauth2-proxy authorize' again and finish it in one go"},
    {S::token, "AADSTS65004", "", "",
     "the user declined consent",
     "sign in again and accept the permissions"},
    // ---- Device code polling (RFC 8628)
    {S::token, "authorization_declined", "", "",
     "the user declined the sign-in on the device code page",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M --device' again and approve"},
    {S::token, "expired_token", "", "",
     "the device code expired before anyone signed in (about 15 minutes)",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M --device' again and sign in sooner"},
    {S::token, "bad_verification_code", "", "",
     "the device code was not recognised",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M --device' again"},
    // ---- Google and the OAuth errors of every provider
    {S::token, "invalid_grant", "", "Invalid JWT Signature",
     "Google rejected the assertion's signature: the key file's private key does not belong to the service "
     "account, or the key was deleted",
     "Google Cloud console > IAM & Admin > Service accounts > the account > Keys > Add key > JSON; point "
     "key_file at the new file"},
    {S::token, "invalid_grant", "", "Invalid email or User ID",
     "Google does not know the impersonated mailbox",
     "check the mailbox address (users:/senders:) and that it is a user of the Workspace domain"},
    {S::token, "invalid_grant", "", "iat and exp",
     "clock skew: Google rejected the assertion's times, this machine's clock is probably wrong",
     "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd)"},
    {S::token, "invalid_grant", "", "account not found",
     "Google does not know the service account (deleted, or the key file belongs to another project)",
     "Google Cloud console > IAM & Admin > Service accounts: check the account exists; download a new JSON key"},
    {S::token, "invalid_grant", "", "expired or revoked",
     "Google refused the refresh token: apps whose OAuth consent screen is in 'Testing' status get refresh "
     "tokens that die after 7 days (or the user revoked access, or changed the password)",
     "Google Cloud console > APIs & Services > OAuth consent screen: set User type Internal (Workspace) or "
     "Publish app (In production); then run 'xoauth2-proxy authorize CONNECTION --mailbox M' again"},
    // The token cache appends "-- needs authorization: run ..." to every refused refresh
    // token, so this row comes after the provider texts that say why (Google's 7 days).
    {S::token, "invalid_grant", "", "needs authorization",
     "the refresh token no longer works",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M' again"},
    {S::token, "invalid_grant", "", "",
     "the grant was refused",
     "check the key, the mailbox and the provider's description above"},
    {S::token, "unauthorized_client", "", "",
     "Google: the service account is not allowed to impersonate users for this scope (domain-wide delegation "
     "missing, or for another client ID or scope)",
     "Google Admin console > Security > Access and data control > API controls > Manage Domain Wide Delegation > "
     "Add new: the service account's Client ID (a number) with scope https://mail.google.com/ ; can take minutes "
     "to work"},
    {S::token, "invalid_client", "", "",
     "the client credentials were refused",
     "check client_id and the secret"},
    {S::token, "invalid_scope", "", "",
     "the scope was refused",
     "check 'scope' (Google: https://mail.google.com/)"},
    {S::token, "needs_authorization", "", "",
     "this mailbox has not been authorized yet",
     "run 'xoauth2-proxy authorize CONNECTION --mailbox M' and sign in"},
    {S::token, "token_store", "", "redis",
     "the shared Redis token store cannot be reached or refused the command; sessions with a cached token go on",
     "check redis-server, tokens.store, tokens.redis_password and the network; the proxy reconnects by itself "
     "with backoff (see /status token_store)"},
    {S::token, "token_store", "", "another replica",
     "another replica holds the refresh lock of this mailbox and did not finish in time",
     "check the other replicas' logs and their access to the identity provider; the lock expires by itself "
     "(tokens.redis_lock_timeout)"},
    {S::token, "token_store", "", "",
     "the token store cannot be used (the file was left as it is)",
     "see the message: fix the store's permissions (0600) or its key (XOAUTH2_PROXY_STORE_KEY)"},
    {S::token, "network", "", "",
     "the token endpoint could not be reached",
     "check DNS, the firewall, an outbound HTTP proxy and ca_file"},
    {S::token, "server_error", "", "",
     "the identity provider failed; this is usually temporary",
     "wait and retry; check the provider's service health page"},
    {S::token, "http_error", "", "",
     "the identity provider failed; this is usually temporary",
     "wait and retry; check the provider's service health page"},

    // ---- SMTP replies (Exchange Online, Gmail, and the Postfix/Dovecot test world)
    {S::reply, "432", "4.3.2", "",
     "concurrency: Exchange allows 3 SMTP connections per mailbox and this would be one more (sender thread "
     "limit exceeded); a temporary refusal",
     "nothing to change for single messages (they are retried); lower the client's parallel deliveries "
     "(Postfix: default_destination_concurrency_limit) or spread senders over more mailboxes"},
    {S::reply, "554", "5.2.0", "",
     "the mailbox hit Exchange's recipient rate limit (10,000 recipients a day: RecipientRateLimitExceeded / "
     "SubmissionQuotaExceeded)",
     "wait 24 hours; send bulk mail through several mailboxes, or the High Volume Email service"},
    {S::reply, "554", "5.2.2", "",
     "the mailbox is full (often its Sent Items)",
     "empty Sent Items or raise the quota (Exchange admin center > Recipients > Mailboxes)"},
    {S::reply, "550", "5.7.60", "",
     "SendAs denied: the mailbox may not send as this From address",
     "Exchange Online PowerShell: Add-RecipientPermission -Identity <From address> -Trustee <mailbox> "
     "-AccessRights SendAs (takes up to 30 minutes), or send with the mailbox's own address"},
    {S::reply, "554", "5.2.252", "",
     "SendAs denied (SendAsDenied): the mailbox may not send as this From address",
     "Exchange Online PowerShell: Add-RecipientPermission -Identity <From address> -Trustee <mailbox> "
     "-AccessRights SendAs, or align the From address with the mailbox"},
    {S::reply, "430", "4.2.0", "",
     "mailbox logon failure: the app-only grant reaches no usable mailbox (service principal or mailbox "
     "permission missing)",
     "Exchange Online PowerShell: New-ServicePrincipal -AppId <app id> -ObjectId <enterprise app object id>; "
     "Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess"},
    {S::reply, "550", "5.7.30", "",
     "basic authentication (a password) was refused: Exchange no longer takes it for client submission",
     "use XOAUTH2: point the client at this proxy instead of at Exchange"},
    {S::reply, "535", "5.7.139", "security defaults",
     "the sign-in was blocked by the tenant's security defaults",
     "use app-only access (flow client_secret or certificate), or Microsoft Entra admin center > Overview > "
     "Properties > Manage security defaults"},
    {S::reply, "535", "5.7.139", "did not meet the criteria",
     "the sign-in was blocked by a Conditional Access policy (or another sign-in policy of the tenant)",
     "Microsoft Entra admin center > Monitoring & health > Sign-in logs > Service principal sign-ins: the failure "
     "names the policy; Protection > Conditional Access: exclude this app (or this server's IP as a named location)"},
    {S::reply, "535", "5.7.139", "",
     "SMTP AUTH is disabled for the tenant or the mailbox (needed even with OAuth)",
     "Exchange Online PowerShell: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false "
     "(tenant: Set-TransportConfig -SmtpClientAuthenticationDisabled $false), or Microsoft 365 admin center > "
     "Users > the user > Mail > Manage email apps > Authenticated SMTP"},
    {S::reply, "501", "5.5.127", "",
     "the token was near its expiry (smtp-hve refuses tokens within 10 minutes of it)",
     "set refresh_window: 11m on the connection"},
    {S::reply, "550", "5.5.105", "",
     "the High Volume Email endpoint takes internal recipients only",
     "send external mail through smtp.office365.com"},
    {S::reply, "550", "5.4.5", "",
     "Google's daily sending limit was reached (about 2,000 messages a day per user)",
     "wait 24 hours, or spread the mail over more users"},
    {S::reply, "535", "5.7.3", "",
     "Exchange refused the token for this mailbox: the app has no access to it (or a new permission is not "
     "active yet: Microsoft notes up to 30 minutes)",
     "Exchange Online PowerShell: New-ServicePrincipal -AppId <app id> -ObjectId <enterprise app object id>; "
     "Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess; then "
     "wait up to 30 minutes before testing again"},
    {S::reply, "535", "5.7.8", "",
     "the server refused the token for this mailbox",
     "Microsoft: grant the app the mailbox (New-ServicePrincipal, Add-MailboxPermission); Google: check "
     "domain-wide delegation for scope https://mail.google.com/ and that the mailbox is the impersonated user"},
    {S::reply, "454", "4.7.0", "",
     "the server could not check the token just now (temporary authentication failure)",
     "retry; if it persists, check the provider's service health"},
    {S::reply, "530", "5.7.57", "",
     "the server wants authentication before MAIL FROM",
     "the proxy authenticates before MAIL: report this as a bug with the log lines"},
    // IMAP and POP3 answers (code "")
    {S::reply, "", "", "UNAVAILABLE",
     "the server could not check the token just now (temporary authentication failure)",
     "retry; if it persists, check the provider's service health"},
    {S::reply, "", "", "SYS/TEMP",
     "the server could not check the token just now (temporary authentication failure)",
     "retry; if it persists, check the provider's service health"},
    {S::reply, "", "", "AUTHENTICATIONFAILED",
     "the server refused the token for this mailbox",
     "Microsoft: New-ServicePrincipal and Add-MailboxPermission -AccessRights FullAccess for the app, and "
     "IMAP.AccessAsApp / POP.AccessAsApp consented (Set-CASMailbox -ImapEnabled/-PopEnabled $true); Google: "
     "domain-wide delegation for https://mail.google.com/ and IMAP/POP enabled in Admin console > Apps > "
     "Google Workspace > Gmail > End User Access"},
    {S::reply, "", "", "AUTHENTICATE failed",
     "Exchange refused the token for this mailbox (or a new permission is not active yet: up to 30 minutes)",
     "Exchange Online PowerShell: Add-MailboxPermission -Identity <mailbox> -User <service principal id> "
     "-AccessRights FullAccess; Set-CASMailbox -Identity <mailbox> -ImapEnabled $true -PopEnabled $true"},
    {S::reply, "", "", "[AUTH]",
     "the server refused the token for this mailbox",
     "Microsoft: Add-MailboxPermission for the app and POP.AccessAsApp consented; Google: domain-wide "
     "delegation and POP enabled for the user"},

    // ---- Microsoft Graph sendMail and the Gmail API (send_via)
    {S::api, "403", "ErrorAccessDenied", "",
     "Graph refused to send for this mailbox: the app lacks the application permission Mail.Send with admin "
     "consent, or an application access policy leaves this mailbox out",
     "Azure portal > App registrations > the app > API permissions > Add a permission > Microsoft Graph > "
     "Application permissions > Mail.Send, then 'Grant admin consent'; with an application access policy, add the "
     "mailbox to its group (check: Test-ApplicationAccessPolicy -Identity MAILBOX -AppId APP)"},
    {S::api, "403", "ErrorSendAsDenied", "",
     "the mailbox may not send with this From address",
     "send with the mailbox's own address, or grant Send As: Add-RecipientPermission -Identity FROM -Trustee MAILBOX "
     "-AccessRights SendAs"},
    {S::api, "404", "", "",
     "the mailbox does not exist in the tenant (or has no Exchange Online licence)",
     "check the mailbox: of the user or sender mapping; Microsoft 365 admin center > Users > the user > Licenses "
     "and apps"},
    {S::api, "400", "ErrorInvalidRecipients", "",
     "the API refused a recipient address",
     "check the recipient addresses of the message"},
    {S::api, "413", "", "",
     "the message is over the API's size limit (Graph: 4 MB of base64, about 3 MB of message; Gmail: 35 MB)",
     "send smaller messages, or use send_via: smtp for large ones (35 MB at Exchange Online)"},
    {S::api, "403", "", "has not been used in project",
     "the Gmail API is not enabled in the service account's Google Cloud project",
     "Google Cloud console > APIs & Services > Library > Gmail API > Enable (for the project of the key_file)"},
    {S::api, "403", "", "insufficient",
     "the token lacks the Gmail scope for sending",
     "Google Admin console > Security > Access and data control > API controls > Domain-wide delegation: "
     "the service account's client ID needs https://mail.google.com/ (or gmail.send)"},
    {S::api, "400", "failedPrecondition", "",
     "Gmail is not enabled for this user, or the user does not exist in the domain",
     "Google Admin console > Apps > Google Workspace > Gmail: turn Gmail on for the user's organisational unit; "
     "check the mailbox: setting"},
    {S::api, "400", "", "",
     "the API refused the message as malformed",
     "check the message's headers (From, To, Date) and MIME structure; report it with the log line if the client "
     "is a common one"},

    // ---- Conditions found here
    {S::local, "device_code_google", "", "",
     "Google does not allow the device code flow for the Gmail scope https://mail.google.com/ (it refuses that "
     "scope for 'TVs and limited input devices')",
     "use flow: authorization_code for a Google user (or service_account for Workspace)"},
    {S::local, "clock_skew", "", "",
     "this machine's clock differs from the provider's",
     "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd)"},
    {S::local, "certificate_expiring", "", "",
     "the app's certificate expires soon; after that no token can be had",
     "make a new certificate (openssl req -x509 ...), Azure portal > App registrations > the app > "
     "Certificates & secrets > Certificates > Upload certificate, then point 'certificate' and 'private_key' at it"},
    {S::local, "secret_expiring", "", "",
     "the client secret expires soon (secret_expires:); after that Microsoft answers AADSTS7000222",
     "Azure portal > App registrations > the app > Certificates & secrets > New client secret; put its Value in "
     "the secret file and update secret_expires:"},
    {S::local, "refresh_token_idle", "", "",
     "the stored refresh token dies after 90 days without use (Google: six months)",
     "use the connection (or run 'xoauth2-proxy test CONNECTION --mailbox M') to rotate it, or authorize again"},
    {S::local, "connect", "", "",
     "the mail server could not be reached",
     "check the host and port of the connection's smtp:/imap:/pop3:, DNS, and that the firewall allows outbound "
     "587/993/995"},
    {S::local, "tls", "", "",
     "the TLS handshake failed or the server's certificate was not accepted",
     "check the host name (it must match the certificate) and ca_file; an intercepting firewall needs its CA in "
     "ca_file"},
    {S::local, "no_starttls", "", "",
     "the server does not offer STARTTLS, and the proxy never authenticates in clear",
     "check the tls: setting of the connection's upstream (587/143/110 STARTTLS, 465/993/995 implicit)"},
    {S::local, "no_mechanism", "", "",
     "the server does not offer XOAUTH2 (or OAUTHBEARER) here",
     "Exchange: SMTP AUTH / IMAP / POP disabled for the mailbox (Set-CASMailbox); else check sasl: and the host"},
};

char lower(char c) { return char(std::tolower(static_cast<unsigned char>(c))); }

bool icontains(std::string_view hay, std::string_view needle) {
    if (needle.empty()) return true;
    if (needle.size() > hay.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        std::size_t j = 0;
        while (j < needle.size() && lower(hay[i + j]) == lower(needle[j])) ++j;
        if (j == needle.size()) return true;
    }
    return false;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// "5.7.139" at the start of s, or "".
std::string_view enhanced_code(std::string_view s) {
    std::size_t i = 0;
    if (s.size() < 5 || !digit(s[0]) || s[1] != '.') return {};
    i = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t start = i;
        while (i < s.size() && digit(s[i])) ++i;
        if (i == start || i - start > 3) return {};
        if (part == 0) {
            if (i >= s.size() || s[i] != '.') return {};
            ++i;
        }
    }
    if (i < s.size() && s[i] != ' ' && s[i] != '-' && s[i] != ',') return {};
    return s.substr(0, i);
}

}  // namespace

const std::vector<Row>& table() { return kTable; }

const Row* match_token_error(std::string_view code, std::string_view error, std::string_view description) {
    if (!code.empty())
        for (const auto& r : kTable)
            if (r.source == S::token && r.code == code) return &r;
    for (const auto& r : kTable)
        if (r.source == S::token && r.code == error && icontains(description, r.text)) return &r;
    return nullptr;
}

const Row* match_reply(std::string_view reply) {
    while (!reply.empty() && reply.front() == ' ') reply.remove_prefix(1);
    std::string_view code, enhanced;
    if (reply.size() >= 3 && digit(reply[0]) && digit(reply[1]) && digit(reply[2]) &&
        (reply.size() == 3 || reply[3] == ' ' || reply[3] == '-')) {
        code = reply.substr(0, 3);
        std::string_view rest = reply.substr(std::min<std::size_t>(4, reply.size()));
        enhanced = enhanced_code(rest);
    }
    for (const auto& r : kTable) {
        if (r.source != S::reply) continue;
        if (!r.code.empty()) {
            if (r.code != code) continue;
            // Without an enhanced code in the reply the text must still say it.
            if (!r.enhanced.empty() && (enhanced.empty() ? !icontains(reply, r.enhanced) : r.enhanced != enhanced))
                continue;
        } else if (!code.empty() && r.text.empty()) {
            continue;
        }
        if (icontains(reply, r.text)) return &r;
    }
    // SendAsDenied / SmtpClientAuthentication without the usual code.
    if (icontains(reply, "SendAsDenied")) return match_reply("554 5.2.252");
    if (icontains(reply, "SmtpClientAuthentication")) return match_reply("535 5.7.139");
    return nullptr;
}

const Row* match_api_error(unsigned status, std::string_view code, std::string_view message) {
    std::string st = std::to_string(status);
    for (const auto& r : kTable) {
        if (r.source != S::api || r.code != st) continue;
        if (!r.enhanced.empty() && !icontains(code, r.enhanced)) continue;
        if (!icontains(message, r.text) && !icontains(code, r.text)) continue;
        return &r;
    }
    return nullptr;
}

const Row* find_condition(std::string_view name) {
    for (const auto& r : kTable)
        if (r.source == S::local && r.code == name) return &r;
    return nullptr;
}

std::string advice(const Row& row) { return std::string(row.cause) + "; to fix: " + std::string(row.fix); }

std::string token_error_advice(std::string_view code, std::string_view error, std::string_view description) {
    if (const Row* r = match_token_error(code, error, description)) return advice(*r);
    return "see the provider's description";
}

std::string upstream_reply_advice(std::string_view reply) {
    if (const Row* r = match_reply(reply)) return advice(*r);
    return "";
}

}  // namespace xo::diagnose
