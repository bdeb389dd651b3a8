#!/usr/bin/python3
"""Test identity provider for xoauth2-proxy's tests: Microsoft identity platform
v2.0 token endpoints per tenant, Google's token endpoint for service accounts,
and a generic client-credentials endpoint, over HTTPS with the test CA; plus a
plain-HTTP control API on loopback for tests and for the mail server's token
check. It follows the providers' documented wire formats (PROTOCOLS.md) and can
be told to fail the ways they fail. Secrets and tokens are never logged.

usage: idp.py --https-port P --http-port Q --cert C --key K --registry R.json --base-url URL --log FILE
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interactive import Interactive  # noqa: E402
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MS_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
ROLES = ["SMTP.SendAsApp", "IMAP.AccessAsApp", "POP.AccessAsApp"]


class State:
    """Registry, failure modes, counters; shared by all request threads."""

    def __init__(self, registry, base_url, log, issued_file=None):
        self.issued_file = issued_file
        self.reg = registry
        self.base_url = base_url.rstrip("/")
        self.log_file = log
        self.lock = threading.RLock()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.reset()

    def reset(self):
        with getattr(self, "lock"):
            self.requests = {}
            self.failures = {}          # client -> {"fail": mode, "count": n|None, "delay": s}
            self.lifetime = 3599
            self.clock_skew = 0
            self.seen_jti = set()
            self.revoked = set()        # (client, mailbox)
            if not hasattr(self, "interactive"):
                self.interactive = Interactive(self)
            self.interactive.hooks = {}

    def now(self):
        return int(time.time()) + self.clock_skew

    @staticmethod
    def ms_error(status, error, code, text):
        return ms_error(status, error, code, text)

    def log(self, line):
        with self.lock:
            with open(self.log_file, "a") as f:
                f.write(time.strftime("%H:%M:%S ") + line + "\n")

    def count(self, client):
        with self.lock:
            self.requests[client] = self.requests.get(client, 0) + 1

    def injected(self, client):
        """The failure mode to apply to this request, if any (consumes a count)."""
        with self.lock:
            for key in (client, "*"):
                f = self.failures.get(key)
                if not f:
                    continue
                if f.get("count") is not None:
                    if f["count"] <= 0:
                        continue
                    f["count"] -= 1
                return dict(f)
        return None

    def issue(self, claims):
        now = self.now()
        base = {"iss": self.base_url + "/", "iat": now, "nbf": now, "exp": now + self.lifetime,
                "jti": uuid.uuid4().hex}
        base.update(claims)
        tok = jwt.encode(base, self.key, algorithm="RS256", headers={"kid": self.kid})
        self.record(tok)
        return tok, self.lifetime

    def record(self, secret):
        """Every token issued goes to a 0600 file (not a log) for the suite's leak scan."""
        if self.issued_file:
            with self.lock:
                fd = os.open(self.issued_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(fd, (secret + "\n").encode())
                os.close(fd)


def ms_error(status, error, code, text, tenant=None):
    now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    desc = "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (code, text, trace, corr, now)
    return status, {"error": error, "error_description": desc, "error_codes": [code], "timestamp": now,
                    "trace_id": trace, "correlation_id": corr,
                    "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprints(cert_pem):
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    return b64url(hashlib.sha1(der).digest()), b64url(hashlib.sha256(der).digest())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, fmt, *args):  # quiet: we log our own lines
        pass

    def reply(self, status, body, ctype="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(raw)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode()
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}, raw

    # ---- routing
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        parts = u.path.strip("/").split("/")
        if not self.server.control and len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "authorize"]:
            return self.state.interactive.authorize(self, u.query, "microsoft")
        if not self.server.control and u.path == "/google/authorize":
            return self.state.interactive.authorize(self, u.query, "google")
        if self.server.control and self.path == "/_devices":
            return self.reply(200, {"devices": self.state.interactive.pending_devices()})
        if self.server.control and self.path == "/_stats":
            st = self.state
            with st.lock:
                self.reply(200, {"token_requests": dict(st.requests), "total": sum(st.requests.values())})
            return
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        path = urllib.parse.urlparse(self.path).path
        if self.server.control:
            if path == "/_control":
                return self.control()
            if path == "/_reset":
                self.state.reset()
                return self.reply(200, {"ok": True})
            if path == "/_check":
                return self.check()
            return self.reply(404, {"error": "not_found"})
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self.microsoft(parts[0])
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "devicecode"]:
            f, _ = self.form()
            return self.state.interactive.devicecode(self, f)
        if path == "/google/token":
            return self.google()
        if path == "/generic/token":
            return self.generic()
        self.reply(404, {"error": "not_found"})

    # ---- control API (plain HTTP, loopback)
    def control(self):
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(n) or b"{}")
        st = self.state
        with st.lock:
            if "token_lifetime" in req:
                st.lifetime = int(req["token_lifetime"])
            if "clock_skew" in req:
                st.clock_skew = int(req["clock_skew"])
            if "fail" in req:
                client = req.get("client_id", "*")
                if req["fail"] == "none":
                    st.failures.pop(client, None)
                else:
                    st.failures[client] = {"fail": req["fail"], "count": req.get("count"),
                                           "delay": float(req.get("delay", 0))}
            if "revoke_mailbox" in req:
                r = req["revoke_mailbox"]
                st.revoked.add((r["client_id"], r["mailbox"].lower()))
        with st.lock:
            st.interactive.control(req)
        st.log("control %s" % json.dumps({k: v for k, v in req.items()}))
        self.reply(200, {"ok": True})

    def check(self):
        """The mail server asks: may this token open this mailbox?"""
        f, _ = self.form()
        user, token, service = f.get("user", "").lower(), f.get("token", ""), f.get("service", "")
        st = self.state
        try:
            claims = jwt.decode(token, st.key.public_key(), algorithms=["RS256"],
                                options={"verify_aud": False}, leeway=0)
        except jwt.PyJWTError as e:
            st.log("check service=%s user=%s token=%s... len=%d -> refused: %s" % (service, user, token[:8], len(token), e))
            return self.reply(200, {"ok": False, "reason": "invalid token: %s" % e})
        client = claims.get("appid") or claims.get("azp") or claims.get("client_id")
        if "email" in claims:
            ok = claims["email"].lower() == user
            reason = "token is for %s" % claims["email"]
        else:
            ok = user in [m.lower() for m in self.granted(client)]
            reason = "app %s has no access to mailbox %s" % (client, user)
        if (client, user) in st.revoked:
            ok, reason = False, "access revoked"
        st.log("check service=%s user=%s client=%s -> %s" % (service, user, client, "ok" if ok else "refused: " + reason))
        self.reply(200, {"ok": ok} if ok else {"ok": False, "reason": reason})

    def granted(self, client):
        for t in self.state.reg["tenants"].values():
            if client in t["apps"]:
                return t["apps"][client]["mailboxes"]
        g = self.state.reg["generic"]["clients"].get(client)
        return g["mailboxes"] if g else []

    # ---- failure injection shared by the token endpoints
    def inject(self, client, provider, tenant=None, app=None):
        f = self.state.injected(client)
        if not f:
            return None
        mode = f["fail"]
        if mode == "slow":
            time.sleep(f["delay"])
            return None
        if mode == "http500":
            return 500, b"<html><body>Sorry, but we're having trouble signing you in. (HTTP 500)</body></html>"
        if provider != "microsoft":
            table = {"invalid_secret": (401, {"error": "invalid_client", "error_description": "Unauthorized"}),
                     "no_consent": (401, {"error": "unauthorized_client", "error_description":
                                          "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."})}
            return table.get(mode, (400, {"error": "invalid_grant", "error_description": "Injected failure: " + mode}))
        if mode == "invalid_secret":
            return ms_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'." % app)
        if mode == "expired_secret":
            return ms_error(401, "invalid_client", 7000222, "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds." % app)
        if mode == "app_not_found":
            return ms_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant." % (app, tenant))
        if mode == "no_consent":
            return ms_error(400, "invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s' named 'xoauth2-proxy test'. Send an interactive authorization request for this user and resource." % app)
        return 400, {"error": "invalid_request", "error_description": "unknown injected failure " + mode}

    def send_token(self, tok, lifetime, scope=None):
        body = {"token_type": "Bearer", "expires_in": lifetime, "access_token": tok}
        if scope is not None:
            body["scope"] = scope
        else:
            body["ext_expires_in"] = lifetime
        self.reply(200, body)

    # ---- Microsoft identity platform v2.0
    def microsoft(self, tenant_in_url):
        st = self.state
        f, _ = self.form()
        client = f.get("client_id", "")
        st.count(client or "(none)")
        def fail(status, body, what):
            st.log("microsoft tenant=%s client=%s -> %d %s" % (tenant_in_url, client, status, what))
            self.reply(status, body, "application/json" if isinstance(body, dict) else "text/html")
        if tenant_in_url in ("common", "consumers"):
            return fail(*ms_error(400, "invalid_request", 9001023, "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."), "AADSTS9001023")
        tenant = None
        for tid, t in st.reg["tenants"].items():
            if tenant_in_url in (tid, t["domain"]):
                tenant = (tid, t)
        if not tenant:
            return fail(*ms_error(400, "invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud." % tenant_in_url), "AADSTS90002")
        tid, t = tenant
        with st.lock:
            answer = st.interactive.token(f, "microsoft")
        if answer:
            st.log("microsoft tenant=%s client=%s grant=%s -> %d %s" % (tenant_in_url, client, f.get("grant_type"), answer[0], answer[1].get("error", "ok")))
            return self.reply(*answer)
        if f.get("grant_type") != "client_credentials":
            return fail(400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: The app requested an unsupported grant type '%s'." % f.get("grant_type"), "error_codes": [70003]}, "AADSTS70003")
        inj = self.inject(client, "microsoft", tid, client)
        if inj:
            return fail(inj[0], inj[1], "injected")
        app = t["apps"].get(client)
        if not app:
            return fail(*ms_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant." % (client, t["domain"])), "AADSTS700016")
        if f.get("scope") != MS_SCOPE:
            return fail(*ms_error(400, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid." % f.get("scope", "")), "AADSTS70011")
        if "client_secret" in f:
            if f["client_secret"] not in app.get("secrets", []):
                return fail(*ms_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'." % client), "AADSTS7000215")
        elif f.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            err = self.verify_ms_assertion(f.get("client_assertion", ""), client, app, "%s/%s/oauth2/v2.0/token" % (st.base_url, tenant_in_url))
            if err:
                return fail(*err, "AADSTS%d" % err[1]["error_codes"][0])
        else:
            return fail(*ms_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."), "AADSTS7000218")
        tok, life = st.issue({"aud": "https://outlook.office365.com", "tid": tid, "appid": client, "roles": ROLES,
                              "oid": str(uuid.uuid5(uuid.NAMESPACE_DNS, client)), "ver": "1.0"})
        st.log("microsoft tenant=%s client=%s -> 200 token len=%d" % (tenant_in_url, client, len(tok)))
        self.send_token(tok, life)

    def verify_ms_assertion(self, assertion, client, app, audience):
        st = self.state
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as e:
            return ms_error(400, "invalid_request", 50027, "JWT token is invalid or malformed: %s" % e)
        alg = header.get("alg")
        cert = None
        for pem in app.get("certificates", []):
            s1, s256 = thumbprints(pem)
            if (alg == "RS256" and header.get("x5t") == s1) or (alg == "PS256" and header.get("x5t#S256") == s256):
                cert = pem
        if alg not in ("RS256", "PS256") or cert is None:
            thumb = header.get("x5t") or header.get("x5t#S256") or ""
            return ms_error(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]" % (thumb, client))
        pub = x509.load_pem_x509_certificate(cert.encode()).public_key()
        try:
            claims = jwt.decode(assertion, pub, algorithms=[alg], audience=audience,
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
        except jwt.InvalidAudienceError:
            return ms_error(401, "invalid_client", 700212, "No matching federated identity record found for presented assertion audience '%s'." % audience)
        except jwt.PyJWTError:
            return ms_error(401, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - The key was not found., Please visit the Azure Portal to see configured keys for app Id '%s'.]" % client)
        now = st.now()
        if claims.get("iss") != client or claims.get("sub") != client:
            return ms_error(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
        exp, nbf = int(claims.get("exp", 0)), int(claims.get("nbf", claims.get("iat", 0)))
        if exp < now or nbf > now + 300 or exp - nbf > 3600 * 24:
            return ms_error(400, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s." % (
                datetime.datetime.utcfromtimestamp(now).isoformat() + "Z",
                datetime.datetime.utcfromtimestamp(nbf).isoformat() + "Z",
                datetime.datetime.utcfromtimestamp(exp).isoformat() + "Z"))
        jti = claims.get("jti")
        with st.lock:
            if not jti or jti in st.seen_jti:
                return ms_error(400, "invalid_client", 700025 if jti else 700026, "Client assertion contains a reused or missing jti (replay).")
            st.seen_jti.add(jti)
        return None

    # ---- Google service accounts (JWT bearer grant with domain-wide delegation)
    def google(self):
        st = self.state
        f, _ = self.form()
        with st.lock:
            answer = st.interactive.token(f, "google")
        if answer:
            st.log("google client=%s grant=%s -> %d %s" % (f.get("client_id"), f.get("grant_type"), answer[0], answer[1].get("error", "ok")))
            return self.reply(*answer)
        def fail(status, body, what, who="-"):
            st.log("google sa=%s -> %d %s" % (who, status, what))
            self.reply(status, body, "application/json" if isinstance(body, dict) else "text/html")
        if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return fail(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: %s" % f.get("grant_type", "")}, "grant_type")
        assertion = f.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Failed audience check."}, "malformed")
        iss = unverified.get("iss", "")
        st.count(iss or "(none)")
        sa = st.reg["google"]["service_accounts"].get(iss)
        if not sa:
            return fail(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}, "unknown iss", iss)
        inj = self.inject(iss, "google")
        if inj:
            return fail(inj[0], inj[1], "injected", iss)
        if header.get("alg") != "RS256" or header.get("kid") != sa["private_key_id"]:
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, "kid/alg", iss)
        pub = serialization.load_pem_public_key(sa["public_key_pem"].encode())
        try:
            claims = jwt.decode(assertion, pub, algorithms=["RS256"], audience=st.base_url + "/google/token",
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except jwt.InvalidAudienceError:
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Failed audience check. The expected value was %s/google/token" % st.base_url}, "aud", iss)
        except jwt.PyJWTError:
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, "signature", iss)
        now, iat, exp = st.now(), int(claims.get("iat", 0)), int(claims.get("exp", 0))
        if exp <= now or iat > now + 300 or exp - iat > 3600:
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."}, "times", iss)
        scopes = claims.get("scope", "").split()
        if GOOGLE_SCOPE not in scopes or not set(scopes) <= set(sa["scopes"]):
            return fail(401, {"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}, "scope", iss)
        sub = claims.get("sub", "")
        if not sub or not sub.lower().endswith("@" + sa["domain"]):
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}, "sub", iss)
        tok, life = st.issue({"aud": sa["client_id"], "azp": sa["client_id"], "sub": sub, "email": sub,
                              "scope": " ".join(scopes)})
        st.log("google sa=%s sub=%s -> 200 token len=%d" % (iss, sub, len(tok)))
        self.send_token(tok, life, None)

    # ---- a generic OAuth2 provider: client credentials, client_secret_post or Basic
    def generic(self):
        st = self.state
        f, _ = self.form()
        client, secret = f.get("client_id", ""), f.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            client, secret = urllib.parse.unquote(client), urllib.parse.unquote(secret)
        st.count(client or "(none)")
        c = st.reg["generic"]["clients"].get(client)
        inj = self.inject(client, "generic")
        if inj:
            st.log("generic client=%s -> %d injected" % (client, inj[0]))
            return self.reply(inj[0], inj[1], "application/json" if isinstance(inj[1], dict) else "text/html")
        if f.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type"})
        if not c or (c.get("secret") and secret != c["secret"]):
            st.log("generic client=%s -> 401 invalid_client" % client)
            return self.reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        scope = f.get("scope", "")
        if scope not in c["scopes"]:
            return self.reply(400, {"error": "invalid_scope", "error_description": "scope %s is not allowed" % scope})
        tok, life = st.issue({"aud": "mail", "client_id": client, "scope": scope})
        st.log("generic client=%s -> 200 token len=%d" % (client, len(tok)))
        self.send_token(tok, life, scope)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, control):
        super().__init__(addr, Handler)
        self.control = control


def main():
    ap = argparse.ArgumentParser()
    for a in ("--https-port", "--http-port"):
        ap.add_argument(a, type=int, required=True)
    for a in ("--cert", "--key", "--registry", "--base-url", "--log"):
        ap.add_argument(a, required=True)
    ap.add_argument("--issued-tokens", help="append every issued access token here (0600), for leak scans")
    ap.add_argument("--public-key-out", help="write the token signing key's public half here (PEM)")
    args = ap.parse_args()
    Handler.state = State(json.load(open(args.registry)), args.base_url, args.log, args.issued_tokens)
    if args.public_key_out:
        with open(args.public_key_out, "wb") as f:
            f.write(Handler.state.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    https = Server(("127.0.0.1", args.https_port), control=False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    https.socket = ctx.wrap_socket(https.socket, server_side=True)
    control = Server(("127.0.0.1", args.http_port), control=True)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    Handler.state.log("idp listening https=%d control=%d" % (args.https_port, args.http_port))
    https.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
