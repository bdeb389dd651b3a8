"""The identity providers' error answers, as the real services send them:
Microsoft's AADSTS texts and JSON shape, Google's token endpoint errors.
Used by idp.py; tests may import it to compare texts."""
import datetime
import time
import uuid

CERT_DOCS = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials."

# Microsoft's texts (the part after "AADSTSnnnn: "), by code.
MS_TEXT = {
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
             "not the client secret ID, for a secret added to app '{app}'.",
    7000222: "The provided client secret keys for app '{app}' are expired. Visit the Azure portal to create new keys for "
             "your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: "
             "https://aka.ms/certCreds.",
    700016: "Application with identifier '{app}' was not found in the directory '{tenant}'. This can happen if the "
            "application has not been installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant.",
    65001: "The user or administrator has not consented to use the application with ID '{app}' named "
           "'xoauth2-proxy test'. Send an interactive authorization request for this user and resource.",
    90002: "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
           "correct cloud. Check with your subscription administrator, this may happen if there are no active "
           "subscriptions for the tenant.",
    9001023: "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations "
             "or tenant-specific endpoint.",
    70011: "The provided request must include a 'scope' input parameter. The provided value for the input parameter "
           "'scope' is not valid. The scope {scope} is not valid.",
    900144: "The request body must contain the following parameter: '{param}'.",
    7000218: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    70003: "The app requested an unsupported grant type '{grant}'.",
    50027: "JWT token is invalid or malformed.",
    700021: "Client assertion application identifier doesn't match 'client_id' parameter. " + CERT_DOCS,
    700023: "Client assertion audience claim does not match Realm issuer. " + CERT_DOCS,
    700024: "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf}, "
            "expiry time of assertion {exp}. " + CERT_DOCS,
    700027: "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: "
            "'{thumb}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys "
            "for app Id '{app}'.]",
    700082: "The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive "
            "for 90.00:00:00.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
           "authorization request for this user and resource.",
    50173: "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have "
           "changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before "
           "which tokens are not valid) for this user is '{valid_from}'.",
    53003: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    530035: "Access has been blocked by security defaults. This is due to the request using legacy auth or being "
            "deemed unsafe by security defaults policies. For more information, please visit "
            "https://aka.ms/securitydefaults",
    50196: "The server terminated an operation because it encountered a client request loop. Please contact your app "
           "vendor.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    65004: "User declined to consent to access the app.",
    70019: "Verification code expired or invalid.",
    # Microsoft documents no code for a replayed assertion (same jti twice); this test IdP answers with the
    # generic authentication-failed code AADSTS50012 and says why.
    50012: "Authentication failed: the client assertion with jti '{jti}' was already used (replay).",
}
# The status and OAuth error Microsoft sends with each code (for the control API's
# {"fail": "aadsts", "code": N}); the texts are MS_TEXT's.
MS_ERROR = {
    7000215: (401, "invalid_client"), 7000222: (401, "invalid_client"), 700016: (400, "unauthorized_client"),
    65001: (400, "invalid_grant"), 90002: (400, "invalid_request"), 9001023: (400, "invalid_request"),
    70011: (400, "invalid_scope"), 7000218: (401, "invalid_client"), 700021: (401, "invalid_client"),
    700023: (401, "invalid_client"), 700024: (401, "invalid_client"), 700027: (401, "invalid_client"),
    700082: (400, "invalid_grant"), 70008: (400, "invalid_grant"), 50173: (400, "invalid_grant"),
    53003: (400, "invalid_grant"), 530035: (400, "invalid_grant"), 50196: (400, "invalid_request"),
    501481: (400, "invalid_grant"), 65004: (400, "access_denied"), 70019: (400, "bad_verification_code"),
}
# Example values for the placeholders of an injected code's text.
MS_FILL = {"tenant": "contoso.test", "scope": "https://outlook.office.com/.default", "param": "scope",
           "grant": "password", "reason": "The key was not found.", "thumb": "0000000000000000000000000000000000000000",
           "jti": "00000000-0000-0000-0000-000000000000"}
GOOGLE_TEXT = {
    "signature": "Invalid JWT Signature.",
    "times": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
             "Check your iat and exp values in the JWT claim.",
    "sub": "Invalid email or User ID",
    "account": "Invalid grant: account not found",
    "revoked": "Token has been expired or revoked.",
    "scope": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any "
             "of the scopes requested.",
}


def utc(ts, frac=False):
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.0000000Z") if frac else d.strftime("%Y-%m-%d %H:%M:%SZ")


def ms_error(status, error, code, text=None, **fmt):
    """(status, body) in the shape of login.microsoftonline.com's errors."""
    now = utc(time.time())
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    text = text if text is not None else MS_TEXT[code].format(**fmt)
    desc = "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (code, text, trace, corr, now)
    return status, {"error": error, "error_description": desc, "error_codes": [code], "timestamp": now,
                    "trace_id": trace, "correlation_id": corr,
                    "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}


def ms_injected(code, app):
    """(status, body) for a code from MS_ERROR, its placeholders filled with example values."""
    status, error = MS_ERROR[code]
    now = time.time()
    fill = dict(MS_FILL, app=app, issued=utc(now - 91 * 86400, True), valid_from=utc(now - 3600, True),
                now=utc(now, True), nbf=utc(now - 7200, True), exp=utc(now - 6600, True))
    return ms_error(status, error, code, **fill)


# The status and OAuth error Google sends with each GOOGLE_TEXT key.
G_ERROR = {"signature": (400, "invalid_grant"), "times": (400, "invalid_grant"), "sub": (400, "invalid_grant"),
           "account": (400, "invalid_grant"), "revoked": (400, "invalid_grant"), "scope": (401, "unauthorized_client")}


def g_error(status, error, key):
    return status, {"error": error, "error_description": GOOGLE_TEXT[key]}
