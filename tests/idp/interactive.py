"""Interactive flows of the test identity provider: authorization code with
PKCE (Microsoft v2.0 and Google installed apps), device code (RFC 8628, as
Microsoft answers it), and refresh tokens with rotation. Test hooks (control
API): approve / decline / expire a device code, force slow_down, expire or
revoke refresh tokens, break PKCE, put the Google app's consent screen in
"Testing" status (google_consent_screen: "testing": 7-day refresh tokens).
Imported by idp.py; no secrets are logged."""
import base64
import hashlib
import secrets
import time
import urllib.parse

DELEGATED_MS = "SMTP.Send IMAP.AccessAsUser.All POP.AccessAsUser.All"


class Interactive:
    def __init__(self, state):
        self.st = state
        self.codes, self.devices, self.refresh = {}, {}, {}
        self.hooks = {}
        # Strict rotation: a refresh token works once. Spent ones are remembered so
        # a second use is counted (replicas racing on one token) and refused.
        self.spent = set()
        self.refresh_grants = 0     # refresh_token grants answered with a token
        self.refresh_reused = 0     # refused second uses of a spent refresh token

    # ---- which clients are public/interactive apps
    def app(self, client_id):
        for tid, t in self.st.reg["tenants"].items():
            a = t["apps"].get(client_id)
            if a and a.get("interactive"):
                return a, tid
        g = self.st.reg.get("google_clients", {}).get(client_id)
        return (g, "google") if g else (None, None)

    def control(self, req):
        for k in ("sign_in_as", "pkce_mismatch", "refresh_fail", "device_slow_down", "authorize_deny",
                  "google_consent_screen"):
            if k in req:
                self.hooks[k] = req[k]
        if "device" in req:   # {"user_code": ..., "action": approve|decline|expire, "mailbox": ...}
            d = req["device"]
            for dev in self.devices.values():
                if dev["user_code"] == d["user_code"]:
                    if d["action"] == "approve":
                        dev["status"], dev["user"] = "approved", d.get("mailbox") or dev["user"]
                    elif d["action"] == "decline":
                        dev["status"] = "declined"
                    elif d["action"] == "expire":
                        dev["expires"] = 0
        if req.get("expire_refresh_tokens"):
            for r in self.refresh.values():
                r["expires"] = 0

    def pending_devices(self):
        return [{"user_code": d["user_code"], "status": d["status"]} for d in self.devices.values()]

    # ---- GET /{tenant}/oauth2/v2.0/authorize  and  GET /google/authorize
    def authorize(self, handler, query, provider):
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        client = q.get("client_id", "")
        app, _ = self.app(client)
        redirect = q.get("redirect_uri", "")
        if not app or redirect not in app.get("redirect_uris", []) and not self.loopback_ok(redirect, app):
            return handler.reply(400, b"<html>AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.</html>", "text/html")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return self.redirect(handler, redirect, {"error": "invalid_request", "error_description": "PKCE S256 and response_type=code are required", "state": q.get("state", "")})
        if provider == "google" and (q.get("access_type") != "offline" or q.get("prompt") != "consent"):
            # Google issues no refresh token without these: the proxy must send them.
            return self.redirect(handler, redirect, {"error": "invalid_request", "error_description": "test IdP: access_type=offline and prompt=consent are required", "state": q.get("state", "")})
        user = q.get("login_hint") or self.hooks.get("sign_in_as") or app["users"][0]
        if self.hooks.pop("authorize_deny", None):
            return self.redirect(handler, redirect, {"error": "access_denied", "error_description": "AADSTS65004: User declined to consent to access the app.", "state": q.get("state", "")})
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"client": client, "redirect_uri": redirect, "challenge": q["code_challenge"],
                            "scope": q.get("scope", ""), "user": user, "expires": self.st.now() + 600}
        self.st.log("authorize %s client=%s user=%s -> code issued" % (provider, client, user))
        self.redirect(handler, redirect, {"code": code, "state": q.get("state", "")})

    @staticmethod
    def loopback_ok(redirect, app):
        # Loopback redirects ignore the port (Microsoft and Google installed apps).
        u = urllib.parse.urlparse(redirect)
        return app.get("loopback") and u.scheme == "http" and u.hostname == "127.0.0.1"

    @staticmethod
    def redirect(handler, to, params):
        sep = "&" if "?" in to else "?"
        handler.send_response(302)
        handler.send_header("Location", to + sep + urllib.parse.urlencode(params))
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    # ---- POST /{tenant}/oauth2/v2.0/devicecode
    def devicecode(self, handler, form):
        client = form.get("client_id", "")
        app, _ = self.app(client)
        if not app:
            return handler.reply(*self.st.ms_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory." % client))
        dc, uc = secrets.token_urlsafe(32), "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        interval = 1
        self.devices[dc] = {"client": client, "user_code": uc, "scope": form.get("scope", ""), "status": "pending",
                            "user": app["users"][0], "expires": self.st.now() + 900, "interval": interval}
        verification = self.st.base_url + "/devicelogin"
        self.st.log("devicecode client=%s user_code=%s issued" % (client, uc))
        handler.reply(200, {"user_code": uc, "device_code": dc, "verification_uri": verification, "expires_in": 900,
                            "interval": interval,
                            "message": "To sign in, use a web browser to open the page %s and enter the code %s to authenticate." % (verification, uc)})

    # ---- token endpoint grants; return (status, body) or None when not ours
    def token(self, form, provider):
        gt = form.get("grant_type", "")
        client = form.get("client_id", "")
        app, _ = self.app(client)
        if gt not in ("authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"):
            return None
        if provider == "google":   # the Microsoft endpoint counted it already
            self.st.count(client or "(none)")
        if not app:
            return self.err(provider, 400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory." % client)
        if app.get("secret") and form.get("client_secret") != app["secret"]:
            return self.err(provider, 401, "invalid_client", 7000215, "Invalid client secret provided.")
        if gt == "authorization_code":
            c = self.codes.pop(form.get("code", ""), None)
            if not c or c["client"] != client or c["expires"] < self.st.now():
                return self.err(provider, 400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
            if form.get("redirect_uri") != c["redirect_uri"]:
                return self.err(provider, 400, "invalid_grant", 50011, "The redirect URI specified in the request does not match the redirect URI used to obtain the authorization code.")
            verifier = form.get("code_verifier", "")
            want = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if want != c["challenge"] or self.hooks.pop("pkce_mismatch", None):
                return self.err(provider, 400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
            return self.issue(provider, client, c["user"], c["scope"])
        if gt == "refresh_token":
            r = self.refresh.get(form.get("refresh_token", ""))
            fail = self.hooks.get("refresh_fail")
            if fail == "no_consent":
                return self.err(provider, 400, "invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s'." % client)
            if not r and form.get("refresh_token", "") in self.spent:
                self.refresh_reused += 1
                return self.err(provider, 400, "invalid_grant", 70000, "The provided grant has already been used (refresh token rotated).")
            if not r or r["client"] != client:
                return self.err(provider, 400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if provider == "google":
                # Google says the same for every dead refresh token; an app whose OAuth consent
                # screen is in "Testing" status gets refresh tokens that die after 7 days.
                testing = self.hooks.get("google_consent_screen") == "testing"
                if r["expires"] < self.st.now() or fail == "expired" or (
                        testing and self.st.now() - r["issued"] > 7 * 86400):
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            if r["expires"] < self.st.now() or fail == "expired":
                return self.err(provider, 400, "invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00." % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["issued"])))
            del self.refresh[form["refresh_token"]]   # rotation: each refresh token works once
            self.spent.add(form["refresh_token"])
            self.refresh_grants += 1
            return self.issue(provider, client, r["user"], r["scope"])
        # device code polling
        d = self.devices.get(form.get("device_code", ""))
        if not d or d["client"] != client:
            return 400, {"error": "bad_verification_code", "error_description": "AADSTS70019: Verification code expired or invalid.", "error_codes": [70019]}
        if d["expires"] < self.st.now():
            return 400, {"error": "expired_token", "error_description": "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired.", "error_codes": [70020]}
        if self.hooks.get("device_slow_down", 0) > 0:
            self.hooks["device_slow_down"] -= 1
            return 400, {"error": "slow_down", "error_description": "slow down: poll less often", "error_codes": [70016]}
        if d["status"] == "pending":
            return 400, {"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.", "error_codes": [70016]}
        if d["status"] == "declined":
            return 400, {"error": "authorization_declined", "error_description": "AADSTS70000: The user declined the authorization request.", "error_codes": [70000]}
        del self.devices[form["device_code"]]
        return self.issue(provider, client, d["user"], d["scope"])

    def err(self, provider, status, error, code, text):
        if provider == "google":
            return status, {"error": error, "error_description": text.split(". ")[0]}
        return self.st.ms_error(status, error, code, text)

    def issue(self, provider, client, user, scope):
        if provider == "google":
            claims = {"aud": client, "azp": client, "sub": user, "email": user, "scope": "https://mail.google.com/"}
        else:
            claims = {"aud": "https://outlook.office.com", "appid": client, "upn": user, "unique_name": user,
                      "email": user, "scp": DELEGATED_MS}
        tok, life = self.st.issue(claims)
        rt = "0.AX" + secrets.token_urlsafe(48)
        self.st.record(rt)
        self.refresh[rt] = {"client": client, "user": user, "scope": scope, "issued": self.st.now(),
                            "expires": self.st.now() + 90 * 86400}
        self.st.log("%s delegated token for client=%s user=%s (refresh token rotated)" % (provider, client, user))
        body = {"token_type": "Bearer", "scope": scope, "expires_in": life, "access_token": tok, "refresh_token": rt}
        if provider != "google":
            body["ext_expires_in"] = life
        return 200, body
