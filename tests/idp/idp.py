#!/usr/bin/python3
"""Test identity provider for xoauth2-proxy's tests: Microsoft identity platform
v2.0 token endpoints per tenant, Google's token endpoint for service accounts,
and a generic client-credentials endpoint, over HTTPS with the test CA; plus a
plain-HTTP control API on loopback for tests and for the mail server's token
check. It follows the providers' documented wire formats (PROTOCOLS.md) and can
be told to fail the ways they fail. Secrets and tokens are never logged: one
log line per request (method, path, client, status, outcome/error code).

usage: idp.py --https-port P --http-port Q --cert C --key K --registry R.json --base-url URL --log FILE
              [--issued-tokens FILE] [--public-key-out FILE] [--lmtp-port N]
With --lmtp-port it also plays Microsoft Graph (POST /v1.0/users/M/sendMail,
base64 MIME) and the Gmail API (POST /upload/gmail/v1/users/M/messages/send,
uploadType=media): the bearer token is checked (audience and role Mail.Send
for Graph, the Gmail scope and subject for Gmail, the mailbox grant), the
message goes to the world's Dovecot LMTP for every To/Cc/Bcc recipient with
its Bcc header removed, as the real APIs do.
The interactive flows (authorization code + PKCE, device code, refresh tokens)
live in interactive.py.
"""
import argparse
import base64
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
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interactive import Interactive  # noqa: E402
from provider_errors import G_ERROR, MS_ERROR, g_error, ms_error, ms_injected, utc  # noqa: E402

MS_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GMAIL_SEND_SCOPES = ("https://mail.google.com/", "https://www.googleapis.com/auth/gmail.send")
API_FAIL_MODES = ("401", "403", "403send", "413", "429", "503", "gmail_disabled", "drop", "none")
GOOGLE_SCOPE = "https://mail.google.com/"
ROLES = ["SMTP.SendAsApp", "IMAP.AccessAsApp", "POP.AccessAsApp"]
ROLE_FOR_SERVICE = {"smtp": "SMTP.SendAsApp", "imap": "IMAP.AccessAsApp", "pop3": "POP.AccessAsApp"}
FAIL_MODES = ("invalid_secret", "expired_secret", "app_not_found", "no_consent", "http500", "http403", "slow",
              "garbage200", "truncated", "none", "aadsts", "google")
# "aadsts" (with "code": an AADSTS number of provider_errors.MS_ERROR) and "google" (with "key": one of
# provider_errors.G_ERROR) answer every token request of the client that way, refresh and device code
# grants included: Microsoft's / Google's own status, error, and text.
EARLY_MODES = ("aadsts", "google")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprints(cert_pem):
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    return b64url(hashlib.sha1(der).digest()), b64url(hashlib.sha256(der).digest())


def thumb_hex(header):
    """A thumbprint from an assertion header as Microsoft prints it: upper-case hex."""
    t = header.get("x5t") or header.get("x5t#S256") or ""
    try:
        return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)).hex().upper()
    except (ValueError, TypeError):
        return t


class State:
    """Registry, failure modes, counters; shared by all request threads."""

    def __init__(self, registry, base_url, log, issued_file=None):
        self.issued_file = issued_file
        self.reg = registry
        self.base_url = base_url.rstrip("/")
        self.log_file = log
        self.lock = threading.RLock()
        self.local = threading.local()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {}
            self.failures = {}          # client or "*" -> {"fail": mode, "count": n|None, "delay": s}
            self.lifetime = 3599
            self.clock_skew = 0
            self.check_down = False     # /_check answers 503: the mail server's auth backend fails
            self.seen_jti = set()
            self.revoked = set()        # (client, mailbox)
            self.api_fail = None        # {"mode": m, "count": n|None, "retry_after": s}
            self.api_requests = 0
            self.api_sent = []          # Message-IDs handed on, in order (duplicates show)
            self.api_delay = 0.0        # seconds each API request waits before it answers
            self.api_inflight = {}      # mailbox -> requests being handled now
            self.api_max_inflight = {}  # mailbox -> the most at once
            if not hasattr(self, "interactive"):
                self.interactive = Interactive(self)
            self.interactive.hooks = {}

    def now(self):
        return int(time.time()) + self.clock_skew

    @staticmethod
    def ms_error(status, error, code, text):
        return ms_error(status, error, code, text)

    def log(self, line):
        """Inside a request: becomes part of that request's one log line."""
        notes = getattr(self.local, "notes", None)
        if notes is not None:
            notes.append(line)
            return
        self.write_log(line)

    def write_log(self, line):
        with self.lock:
            with open(self.log_file, "a") as f:
                f.write(time.strftime("%H:%M:%S ") + line + "\n")

    def count(self, client):
        with self.lock:
            self.requests[client] = self.requests.get(client, 0) + 1

    def injected(self, client, modes=None):
        """The failure mode to apply to this request, if any (consumes a count); only
        one of `modes` when given."""
        with self.lock:
            for key in (client, "*"):
                f = self.failures.get(key)
                if not f or (modes is not None and f["fail"] not in modes):
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

    def granted(self, client):
        for t in self.reg["tenants"].values():
            if client in t["apps"]:
                return [m.lower() for m in t["apps"][client].get("mailboxes", [])]
        g = self.reg["generic"]["clients"].get(client)
        return [m.lower() for m in g["mailboxes"]] if g else []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60      # an idle keep-alive connection is closed after this
    state = None      # set in main

    def log_message(self, fmt, *args):  # quiet: we log our own lines
        pass

    def send_response(self, code, message=None):
        self.status = code
        super().send_response(code, message)

    def reply(self, status, body, ctype=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ctype = ctype or ("application/json" if isinstance(body, dict) or raw[:1] == b"{"
                          else "text/html; charset=utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(raw)

    def answer(self, status, body, outcome):
        """A token endpoint's answer; outcome (e.g. 'AADSTS7000215') goes to the log line."""
        self.outcome = outcome
        self.reply(status, body)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode()
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}, raw

    # ---- one log line per request
    def logged(self, route):
        st = self.state
        self.client, self.outcome, self.status = "-", "", 0
        st.local.notes = []
        try:
            route()
        finally:
            notes, st.local.notes = st.local.notes, None
            path = urllib.parse.urlparse(self.path).path
            extra = (" [" + "; ".join(notes) + "]") if notes else ""
            st.write_log("%s %s client=%s -> %s %s%s" % (self.command, path, self.client, self.status,
                                                         self.outcome or ("ok" if self.status < 400 else ""), extra))

    def do_GET(self):
        self.logged(self.route_get)

    def do_POST(self):
        self.logged(self.route_post)

    def route_get(self):
        u = urllib.parse.urlparse(self.path)
        parts = u.path.strip("/").split("/")
        if not self.server.control and len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "authorize"]:
            return self.state.interactive.authorize(self, u.query, "microsoft")
        if not self.server.control and u.path == "/google/authorize":
            return self.state.interactive.authorize(self, u.query, "google")
        if self.server.control and u.path == "/_devices":
            return self.reply(200, {"devices": self.state.interactive.pending_devices()})
        if self.server.control and u.path == "/_stats":
            st = self.state
            with st.lock:
                return self.reply(200, {"token_requests": dict(st.requests), "total": sum(st.requests.values()),
                                        "api_requests": st.api_requests, "api_sent": list(st.api_sent),
                                        "api_max_inflight": dict(st.api_max_inflight),
                                        "refresh_grants": st.interactive.refresh_grants,
                                        "refresh_reused": st.interactive.refresh_reused})
        self.reply(404, {"error": "not_found"})

    def route_post(self):
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
            self.client = f.get("client_id", "-")
            return self.state.interactive.devicecode(self, f)
        if path == "/google/token":
            return self.google()
        if path == "/generic/token":
            return self.generic()
        if len(parts) == 4 and parts[0] == "v1.0" and parts[1] == "users" and parts[3] == "sendMail":
            return self.api_send("graph", urllib.parse.unquote(parts[2]))
        if len(parts) == 7 and parts[:4] == ["upload", "gmail", "v1", "users"] and parts[5:] == ["messages", "send"]:
            return self.api_send("gmail", urllib.parse.unquote(parts[4]))
        self.reply(404, {"error": "not_found"})

    # ---- control API (plain HTTP, loopback)
    def control(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"ok": False, "error": "body is not JSON"})
        if "fail" in req and req["fail"] not in FAIL_MODES:
            return self.reply(400, {"ok": False, "error": "unknown fail mode; one of " + ", ".join(FAIL_MODES)})
        if req.get("fail") == "aadsts" and req.get("code") not in MS_ERROR:
            return self.reply(400, {"ok": False, "error": "fail aadsts needs code, one of %s" % sorted(MS_ERROR)})
        if req.get("fail") == "google" and req.get("key") not in G_ERROR:
            return self.reply(400, {"ok": False, "error": "fail google needs key, one of %s" % sorted(G_ERROR)})
        st = self.state
        with st.lock:
            if "token_lifetime" in req:
                st.lifetime = int(req["token_lifetime"])
            if "clock_skew" in req:
                st.clock_skew = int(req["clock_skew"])
            if "check_down" in req:
                st.check_down = bool(req["check_down"])
            if "fail" in req:
                client = req.get("client_id", "*")
                if req["fail"] == "none":
                    st.failures.pop(client, None)
                else:
                    st.failures[client] = {"fail": req["fail"], "count": req.get("count"),
                                           "delay": float(req.get("delay", 0)), "code": req.get("code"),
                                           "key": req.get("key")}
            if "api_delay" in req:
                st.api_delay = float(req["api_delay"])
            if "api_fail" in req:
                if req["api_fail"] not in API_FAIL_MODES:
                    return self.reply(400, {"ok": False, "error": "unknown api_fail; one of " + ", ".join(API_FAIL_MODES)})
                st.api_fail = None if req["api_fail"] == "none" else {
                    "mode": req["api_fail"], "count": req.get("count"), "retry_after": req.get("retry_after")}
            if "revoke_mailbox" in req:
                r = req["revoke_mailbox"]
                st.revoked.add((r["client_id"], r["mailbox"].lower()))
            st.interactive.control(req)
        self.client = req.get("client_id", "-")
        self.outcome = json.dumps(req, sort_keys=True)   # control requests carry no secrets
        self.reply(200, {"ok": True})

    def check(self):
        """The mail server asks: may this token open this mailbox (for this service)?"""
        f, _ = self.form()
        user, token, service = f.get("user", "").lower(), f.get("token", ""), f.get("service", "").lower()
        st = self.state
        self.client = "(token %s... len=%d)" % (token[:8], len(token))
        if st.check_down:
            self.outcome = "check_down: the mail server's token check fails (503)"
            return self.reply(503, {"ok": False, "reason": "token check unavailable"})

        def refuse(reason):
            self.outcome = "refused service=%s user=%s: %s" % (service, user, reason)
            self.reply(200, {"ok": False, "reason": reason})
        try:
            claims = jwt.decode(token, st.key.public_key(), algorithms=["RS256"],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError as e:
            return refuse("invalid token: %s" % e)
        client = claims.get("appid") or claims.get("azp") or claims.get("client_id")
        self.client = client
        now = st.now()
        if int(claims.get("exp", 0)) <= now:
            return refuse("token expired")
        if int(claims.get("nbf", 0)) > now + 60:
            return refuse("token not yet valid")
        if "email" in claims:
            if claims["email"].lower() != user:
                return refuse("token is for %s" % claims["email"])
        else:
            if user not in st.granted(client):
                return refuse("app %s has no access to mailbox %s" % (client, user))
            role = ROLE_FOR_SERVICE.get(service)
            if "roles" in claims and role and role not in claims["roles"]:
                return refuse("token lacks the role %s" % role)
        if (client, user) in st.revoked:
            return refuse("access revoked")
        self.outcome = "ok service=%s user=%s" % (service, user)
        self.reply(200, {"ok": True})

    # ---- failure injection shared by the token endpoints
    def inject(self, client, provider, tenant=None, early=False):
        """The injected answer for this request, or None. early: only the modes that apply
        to every grant (EARLY_MODES), checked before the interactive grants."""
        f = self.state.injected(client, EARLY_MODES if early else None)
        if not f:
            return None
        mode = f["fail"]
        if mode == "aadsts":
            return ms_injected(f["code"], client) if provider == "microsoft" else None
        if mode == "google":
            status, error = G_ERROR[f["key"]]
            return g_error(status, error, f["key"]) if provider == "google" else None
        if mode == "slow":
            time.sleep(f["delay"])
            return None
        if mode == "http403":      # a web filter in the way: an HTML page, no OAuth error body
            return 403, b"<html><body><h1>Access denied</h1>The requested URL is blocked by policy.</body></html>"
        if mode == "http500":
            return 500, b"<html><body>Sorry, but we're having trouble signing you in. (HTTP 500)</body></html>"
        if mode == "garbage200":     # a 200 that is not JSON (a captive portal, a proxy's page)
            return 200, b"OK: this is not JSON"
        if mode == "truncated":      # a 200 JSON body cut short (Content-Length matches the cut body)
            return 200, b'{"token_type": "Bearer", "expires_in": 3599, "access_tok'
        if provider == "google":
            return {"invalid_secret": g_error(400, "invalid_grant", "signature"),
                    "expired_secret": g_error(400, "invalid_grant", "signature"),
                    "app_not_found": g_error(400, "invalid_grant", "account"),
                    "no_consent": g_error(401, "unauthorized_client", "scope")}[mode]
        if provider == "generic":
            return {"invalid_secret": (401, {"error": "invalid_client", "error_description": "Client authentication failed"}),
                    "expired_secret": (401, {"error": "invalid_client", "error_description": "Client secret expired"}),
                    "app_not_found": (401, {"error": "invalid_client", "error_description": "Unknown client"}),
                    "no_consent": (400, {"error": "unauthorized_client", "error_description": "Client not authorized for this grant"})}[mode]
        return {"invalid_secret": lambda: ms_error(401, "invalid_client", 7000215, app=client),
                "expired_secret": lambda: ms_error(401, "invalid_client", 7000222, app=client),
                "app_not_found": lambda: ms_error(400, "unauthorized_client", 700016, app=client, tenant=tenant),
                "no_consent": lambda: ms_error(400, "invalid_grant", 65001, app=client)}[mode]()

    @staticmethod
    def code_of(body):
        if isinstance(body, dict):
            return "AADSTS%d" % body["error_codes"][0] if body.get("error_codes") else body.get("error", "")
        return "html"

    def send_token(self, tok, lifetime, provider, scope=None):
        body = {"token_type": "Bearer", "expires_in": lifetime, "access_token": tok}
        if provider == "microsoft":
            body["ext_expires_in"] = lifetime
        if scope is not None:
            body["scope"] = scope
        self.answer(200, body, "token %s... len=%d" % (tok[:8], len(tok)))

    # ---- Microsoft identity platform v2.0
    def microsoft(self, tenant_in_url):
        st = self.state
        f, _ = self.form()
        client = f.get("client_id", "")
        self.client = client or "-"
        st.count(client or "(none)")

        def fail(status, body, what=None):
            self.answer(status, body, what or self.code_of(body))
        if tenant_in_url in ("common", "consumers") and f.get("grant_type") == "client_credentials":
            return fail(*ms_error(400, "invalid_request", 9001023))
        tenant = None
        for tid, t in st.reg["tenants"].items():
            if tenant_in_url.lower() in (tid, t["domain"]):
                tenant = (tid, t)
        if not tenant:
            return fail(*ms_error(400, "invalid_request", 90002, tenant=tenant_in_url))
        tid, t = tenant
        inj = self.inject(client, "microsoft", t["domain"], early=True)
        if inj:
            return fail(inj[0], inj[1], "injected " + self.code_of(inj[1]))
        with st.lock:
            answer = st.interactive.token(f, "microsoft")
        if answer:
            return fail(answer[0], answer[1], "grant=%s %s" % (f.get("grant_type"), self.code_of(answer[1]) or "token"))
        if f.get("grant_type") != "client_credentials":
            return fail(*ms_error(400, "unsupported_grant_type", 70003, grant=f.get("grant_type", "")))
        if not client:
            return fail(*ms_error(400, "invalid_request", 900144, param="client_id"))
        inj = self.inject(client, "microsoft", t["domain"])
        if inj:
            return fail(inj[0], inj[1], "injected " + self.code_of(inj[1]))
        app = t["apps"].get(client)
        if not app:
            return fail(*ms_error(400, "unauthorized_client", 700016, app=client, tenant=t["domain"]))
        if "scope" not in f:
            return fail(*ms_error(400, "invalid_request", 900144, param="scope"))
        if f["scope"] not in (MS_SCOPE, GRAPH_SCOPE):
            return fail(*ms_error(400, "invalid_scope", 70011, scope=f["scope"]))
        if "client_secret" in f:
            if f["client_secret"] not in app.get("secrets", []):
                return fail(*ms_error(401, "invalid_client", 7000215, app=client))
        elif f.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            err = self.verify_ms_assertion(f.get("client_assertion", ""), client, app,
                                           "%s/%s/oauth2/v2.0/token" % (st.base_url, tenant_in_url))
            if err:
                return fail(*err)
        else:
            return fail(*ms_error(401, "invalid_client", 7000218))
        graph = f["scope"] == GRAPH_SCOPE
        tok, life = st.issue({"aud": "https://graph.microsoft.com" if graph else "https://outlook.office365.com",
                              "tid": tid, "appid": client, "roles": ["Mail.Send"] if graph else ROLES,
                              "oid": str(uuid.uuid5(uuid.NAMESPACE_DNS, client)), "ver": "1.0"})
        self.send_token(tok, life, "microsoft")

    def verify_ms_assertion(self, assertion, client, app, audience):
        """None when the client assertion is good, else the (status, body) Microsoft would answer."""
        st = self.state
        try:
            header = jwt.get_unverified_header(assertion)
            jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return ms_error(400, "invalid_request", 50027)
        alg = header.get("alg")
        cert = None
        for pem in app.get("certificates", []):
            s1, s256 = thumbprints(pem)
            if (alg == "RS256" and header.get("x5t") == s1) or (alg == "PS256" and header.get("x5t#S256") == s256):
                cert = pem
        if alg not in ("RS256", "PS256") or cert is None:
            return ms_error(401, "invalid_client", 700027, reason="The key was not found.", thumb=thumb_hex(header),
                            app=client)
        pub = x509.load_pem_x509_certificate(cert.encode()).public_key()
        try:
            claims = jwt.decode(assertion, pub, algorithms=[alg],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError:
            return ms_error(401, "invalid_client", 700027, thumb=thumb_hex(header), app=client,
                            reason="The provided signature value did not match the expected signature value.")
        if claims.get("iss") != client or claims.get("sub") != client:
            return ms_error(401, "invalid_client", 700021)
        if claims.get("aud") != audience:
            return ms_error(401, "invalid_client", 700023)
        now = st.now()
        try:
            exp, nbf = int(claims["exp"]), int(claims.get("nbf", claims.get("iat", now)))
        except (KeyError, TypeError, ValueError):
            return ms_error(400, "invalid_request", 50027)
        # valid: not expired, not from the future (5 min skew), and at most about an hour ahead
        if exp <= now or nbf > now + 300 or exp > now + 3600 + 300:
            return ms_error(401, "invalid_client", 700024, now=utc(now, True), nbf=utc(nbf, True), exp=utc(exp, True))
        jti = claims.get("jti")
        if not jti:
            return ms_error(400, "invalid_request", 50027)
        with st.lock:
            if jti in st.seen_jti:
                return ms_error(401, "invalid_client", 50012, jti=jti)
            st.seen_jti.add(jti)
        return None

    # ---- Google service accounts (JWT bearer grant with domain-wide delegation)
    def google(self):
        st = self.state
        f, _ = self.form()
        if f.get("client_id"):      # an installed app's grant (a service account's comes below)
            inj = self.inject(f["client_id"], "google", early=True)
            if inj:
                self.client = f["client_id"]
                st.count(f["client_id"])
                return self.answer(inj[0], inj[1], "injected %s" % inj[1]["error"])
        with st.lock:
            answer = st.interactive.token(f, "google")
        if answer:
            self.client = f.get("client_id", "-")
            return self.answer(answer[0], answer[1], "grant=%s %s" % (f.get("grant_type"), answer[1].get("error", "token")))

        def fail(status, body, what):
            self.answer(status, body, "%s (%s)" % (body.get("error", "html") if isinstance(body, dict) else "html", what))
        if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            st.count(f.get("client_id") or "(none)")
            return fail(400, {"error": "unsupported_grant_type",
                              "error_description": "Invalid grant_type: %s" % f.get("grant_type", "")}, "grant_type")
        assertion = f.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            st.count("(none)")
            return fail(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Failed to parse."}, "malformed")
        iss = str(unverified.get("iss", ""))
        self.client = iss or "-"
        st.count(iss or "(none)")
        sa = st.reg["google"]["service_accounts"].get(iss)
        if not sa:
            return fail(*g_error(400, "invalid_grant", "account"), "unknown iss")
        inj = self.inject(iss, "google")
        if inj:
            return fail(inj[0], inj[1], "injected")
        if header.get("alg") != "RS256" or header.get("kid") != sa["private_key_id"]:
            return fail(*g_error(400, "invalid_grant", "signature"), "kid/alg")
        pub = serialization.load_pem_public_key(sa["public_key_pem"].encode())
        try:
            claims = jwt.decode(assertion, pub, algorithms=["RS256"],
                                options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.PyJWTError:
            return fail(*g_error(400, "invalid_grant", "signature"), "signature")
        aud = st.base_url + "/google/token"
        if claims.get("aud") != aud:
            return fail(400, {"error": "invalid_grant", "error_description":
                              "Invalid JWT: Failed audience check. The expected value was %s" % aud}, "aud")
        try:
            now, iat, exp = st.now(), int(claims["iat"]), int(claims["exp"])
        except (KeyError, TypeError, ValueError):
            return fail(*g_error(400, "invalid_grant", "times"), "iat/exp missing")
        if exp <= now or iat > now + 300 or exp - iat > 3600 or exp < iat:
            return fail(*g_error(400, "invalid_grant", "times"), "iat/exp")
        scopes = str(claims.get("scope", "")).split()
        if GOOGLE_SCOPE not in scopes or not set(scopes) <= set(sa["scopes"]):
            return fail(*g_error(401, "unauthorized_client", "scope"), "scope not delegated")
        sub = str(claims.get("sub", ""))
        if not sub or not sub.lower().endswith("@" + sa["domain"]):
            return fail(*g_error(400, "invalid_grant", "sub"), "sub")
        tok, life = st.issue({"aud": sa["client_id"], "azp": sa["client_id"], "sub": sub, "email": sub,
                              "scope": " ".join(scopes)})
        st.log("sub=%s" % sub)
        self.send_token(tok, life, "google")

    # ---- a generic OAuth2 provider: client credentials, client_secret_post or Basic
    def generic(self):
        st = self.state
        f, _ = self.form()
        client, secret = f.get("client_id", ""), f.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                client, secret = "", None
            client, secret = urllib.parse.unquote_plus(client), urllib.parse.unquote_plus(secret or "")
        self.client = client or "-"
        st.count(client or "(none)")
        inj = self.inject(client, "generic")
        if inj:
            return self.answer(inj[0], inj[1], "injected " + self.code_of(inj[1]))
        if f.get("grant_type") != "client_credentials":
            return self.answer(400, {"error": "unsupported_grant_type"}, "unsupported_grant_type")
        c = st.reg["generic"]["clients"].get(client)
        if not c or secret != c.get("secret"):
            return self.answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"},
                               "invalid_client")
        scope = f.get("scope", "")
        if scope not in c["scopes"]:
            return self.answer(400, {"error": "invalid_scope", "error_description": "scope %s is not allowed" % scope},
                               "invalid_scope")
        tok, life = st.issue({"aud": "mail", "client_id": client, "scope": scope})
        self.send_token(tok, life, "generic", scope)


    # ---- Microsoft Graph sendMail and the Gmail API messages.send
    def api_fail_injected(self, api):
        """The injected failure for this request as (status, headers, body), or None."""
        st = self.state
        with st.lock:
            f = st.api_fail
            if not f:
                return None
            if f.get("count") is not None:
                if f["count"] <= 0:
                    return None
                f["count"] -= 1
            mode, retry_after = f["mode"], f.get("retry_after")
        if mode == "drop":   # the message is sent, then the connection drops before any answer
            return "drop"
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if api == "graph":
            err = {"401": (401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
                   "403": (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
                   "403send": (403, "ErrorSendAsDenied", "The user account which was used to submit this request "
                               "does not have the right to send mail on behalf of the specified sending account."),
                   "413": (413, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size."),
                   "429": (429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
                   "503": (503, "ServiceUnavailable", "Service unavailable."),
                   "gmail_disabled": (403, "ErrorAccessDenied", "Access is denied.")}[mode]
            return err[0], headers, {"error": {"code": err[1], "message": err[2]}}
        err = {"401": (401, "authError", "Request had invalid authentication credentials."),
               "403": (403, "insufficientPermissions", "Request had insufficient authentication scopes."),
               "403send": (403, "forbidden", "Delegation denied for the sender."),
               "413": (413, "uploadTooLarge", "Request payload size exceeds the limit: 36700160 bytes."),
               "429": (429, "rateLimitExceeded", "User-rate limit exceeded."),
               "503": (503, "backendError", "The service is currently unavailable."),
               "gmail_disabled": (403, "accessNotConfigured", "Gmail API has not been used in project 1234 before "
                                  "or it is disabled.")}[mode]
        return err[0], headers, {"error": {"code": err[0], "message": err[2], "errors": [{"reason": err[1]}]}}

    def api_reply(self, status, body, headers=None):
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def api_token(self, api, mailbox):
        """None when the bearer token may send as `mailbox`, else the refusal (status, body)."""
        st = self.state
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}
        try:
            claims = jwt.decode(auth[7:], st.key.public_key(), algorithms=["RS256"],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError:
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "IDX14100: JWT is not well formed."}}
        self.client = claims.get("appid") or claims.get("azp") or "-"
        if int(claims.get("exp", 0)) <= st.now():
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}}
        if api == "graph":
            if claims.get("aud") != "https://graph.microsoft.com":
                return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Invalid audience."}}
            if "Mail.Send" not in claims.get("roles", []):
                return 403, {"error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}}
            if mailbox.lower() not in st.granted(self.client) or (self.client, mailbox.lower()) in st.revoked:
                return 403, {"error": {"code": "ErrorAccessDenied", "message": "Access to OData is disabled: the "
                                       "application access policy denies this mailbox."}}
            return None
        if mailbox != "me" and claims.get("email", "").lower() != mailbox.lower():
            return 403, {"error": {"code": 403, "message": "Delegation denied for %s" % claims.get("email"),
                                   "errors": [{"reason": "forbidden"}]}}
        if not set(claims.get("scope", "").split()) & set(GMAIL_SEND_SCOPES):
            return 403, {"error": {"code": 403, "message": "Request had insufficient authentication scopes.",
                                   "errors": [{"reason": "insufficientPermissions"}]}}
        return None

    def api_send(self, api, mailbox):
        st = self.state
        key = mailbox.lower()
        with st.lock:
            st.api_inflight[key] = st.api_inflight.get(key, 0) + 1
            st.api_max_inflight[key] = max(st.api_max_inflight.get(key, 0), st.api_inflight[key])
            delay = st.api_delay
        try:
            if delay:
                time.sleep(delay)
            return self.api_send_now(api, mailbox)
        finally:
            with st.lock:
                st.api_inflight[key] -= 1

    def api_send_now(self, api, mailbox):
        st = self.state
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        with st.lock:
            st.api_requests += 1
        ctype = self.headers.get("Content-Type", "")
        refused = self.api_token(api, mailbox)
        if refused:
            self.outcome = "%s refused: %s" % (api, json.dumps(refused[1]["error"].get("code")))
            return self.api_reply(refused[0], refused[1])
        inj = self.api_fail_injected(api)
        drop = inj == "drop"
        if inj and not drop:
            self.outcome = "%s injected %d" % (api, inj[0])
            return self.api_reply(inj[0], inj[2], inj[1])
        if api == "graph":
            if not ctype.startswith("text/plain"):
                return self.api_reply(415, {"error": {"code": "UnsupportedMediaType", "message": ctype}})
            if len(raw) > 4 * 1024 * 1024:
                self.outcome = "graph 413 (%d bytes of base64)" % len(raw)
                return self.api_reply(413, {"error": {"code": "ErrorMessageSizeExceeded", "message": "too big"}})
            try:
                message = base64.b64decode(raw, validate=True)
            except ValueError:
                return self.api_reply(400, {"error": {"code": "ErrorMimeContentInvalidBase64String",
                                                      "message": "Invalid base64 string for MIME content."}})
        else:
            if "uploadType=media" not in self.path or not ctype.startswith("message/rfc822"):
                return self.api_reply(400, {"error": {"code": 400, "message": "Media type '%s' is not supported." % ctype,
                                                      "errors": [{"reason": "badContent"}]}})
            if len(raw) > 35 * 1024 * 1024:
                return self.api_reply(413, {"error": {"code": 413, "message": "too large", "errors": [{"reason": "uploadTooLarge"}]}})
            message = raw
        body, rcpts, msgid = strip_bcc(message)
        if not rcpts:
            return self.api_reply(400, {"error": {"code": "ErrorInvalidRecipients", "message": "At least one recipient is not valid.",
                                                  "errors": [{"reason": "invalidArgument"}]}})
        try:
            lmtp_deliver(self.server.lmtp_port, mailbox, rcpts, body)
        except Exception as e:  # noqa: BLE001 -- the test endpoint answers 503 for any delivery trouble
            self.outcome = "%s delivery failed: %s" % (api, e)
            return self.api_reply(503, {"error": {"code": "ServiceUnavailable", "message": "delivery failed"}})
        with st.lock:
            st.api_sent.append(msgid)
        self.outcome = "%s sent for %s to %d recipient(s), %d bytes" % (api, mailbox, len(rcpts), len(body))
        if drop:
            self.outcome += ", then dropped the connection without an answer (injected)"
            self.close_connection = True
            return
        if api == "graph":
            return self.api_reply(202, None)
        return self.api_reply(200, {"id": uuid.uuid4().hex[:16], "threadId": uuid.uuid4().hex[:16], "labelIds": ["SENT"]})



def strip_bcc(message):
    """(message without its Bcc field, every To/Cc/Bcc address, Message-ID), as Graph and Gmail send it."""
    from email.parser import BytesHeaderParser
    from email.utils import getaddresses
    sep = message.find(b"\r\n\r\n")
    head, rest = (message, b"") if sep < 0 else (message[:sep + 2], message[sep + 2:])
    hdrs = BytesHeaderParser().parsebytes(head + b"\r\n")
    rcpts = []
    for name in ("to", "cc", "bcc"):
        for _, addr in getaddresses(hdrs.get_all(name, [])):
            if addr and addr.lower() not in rcpts:
                rcpts.append(addr.lower())
    kept, skip = [], False
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            if not skip:
                kept.append(line)
            continue
        skip = line.lower().startswith(b"bcc:")
        if not skip:
            kept.append(line)
    return b"\r\n".join(kept) + b"\r\n" + rest, rcpts, hdrs.get("message-id", "")


def lmtp_deliver(port, sender, rcpts, body):
    """Hands the message to the world's Dovecot LMTP; raises unless every recipient took it."""
    import smtplib
    for rcpt in rcpts:   # one transaction each: LMTP answers the final dot once per recipient
        with smtplib.LMTP("127.0.0.1", port, timeout=30) as lm:
            refused = lm.sendmail(sender, [rcpt], body)
            if refused:
                raise RuntimeError("refused: %s" % refused)

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, control, ssl_ctx=None, lmtp_port=0):
        super().__init__(addr, Handler)
        self.control = control
        self.ssl_ctx = ssl_ctx
        self.lmtp_port = lmtp_port

    def finish_request(self, request, client_address):
        """TLS handshake in the request's own thread, so a silent client cannot stall accept()."""
        if not self.ssl_ctx:
            return super().finish_request(request, client_address)
        request.settimeout(Handler.timeout)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except OSError:
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def main():
    ap = argparse.ArgumentParser()
    for a in ("--https-port", "--http-port"):
        ap.add_argument(a, type=int, required=True)
    for a in ("--cert", "--key", "--registry", "--base-url", "--log"):
        ap.add_argument(a, required=True)
    ap.add_argument("--issued-tokens", help="append every issued access token here (0600), for leak scans")
    ap.add_argument("--public-key-out", help="write the token signing key's public half here (PEM)")
    ap.add_argument("--lmtp-port", type=int, default=0, help="Dovecot LMTP on loopback, for the mail APIs")
    args = ap.parse_args()
    Handler.state = State(json.load(open(args.registry)), args.base_url, args.log, args.issued_tokens)
    if args.public_key_out:
        with open(args.public_key_out, "wb") as f:
            f.write(Handler.state.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    https = Server(("127.0.0.1", args.https_port), control=False, ssl_ctx=ctx, lmtp_port=args.lmtp_port)
    control = Server(("127.0.0.1", args.http_port), control=True)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    Handler.state.write_log("idp listening https=%d control=%d" % (args.https_port, args.http_port))
    https.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
