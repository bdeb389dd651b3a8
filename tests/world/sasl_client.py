#!/usr/bin/python3
"""A raw SASL bearer-token client for the test world's SMTP, IMAP and POP3
servers: connects (implicit TLS, STARTTLS/STLS or plain), authenticates with
XOAUTH2 or OAUTHBEARER in the two-step form (command, empty continuation, then
the base64 data), answers an error challenge the way RFC 7628 / Gmail ask
(empty line for XOAUTH2, "AQ==" = \\x01 for OAUTHBEARER) and prints the
transcript. Lines carrying the token are shown as "<N bytes of SASL data>";
challenges are printed with their base64-decoded text.

usage: sasl_client.py smtp|imap|pop3 PORT implicit|starttls|none xoauth2|oauthbearer USER
       [--ca CA_FILE] [--host localhost] [--send FROM RCPT SUBJECT] [--hold SECONDS]
--hold keeps an authenticated SMTP session open that long before --send and QUIT
(for concurrency limits); after a refused SMTP AUTH the QUIT's reply is read and
printed (it shows whether the server kept the connection open).
The token is read from the environment variable XO_TOKEN (never from argv).
exit 0: authenticated (and the message accepted with --send), 1: refused, 2: other error."""
import argparse
import base64
import os
import socket
import ssl
import sys
import time


class Conn:
    def __init__(self, host, port, ctx, implicit):
        self.host, self.ctx = host, ctx
        self.sock = socket.create_connection((host, port), timeout=10)
        if implicit:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        self.f = self.sock.makefile("rb")

    def starttls(self):
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=self.host)
        self.f = self.sock.makefile("rb")

    def send(self, line, show=None):
        print("C: " + (show if show is not None else line), flush=True)
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self):
        raw = self.f.readline()
        if not raw:
            raise EOFError("server closed the connection")
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        shown = text
        for prefix in ("334 ", "+ "):
            if text.startswith(prefix) and len(text) > len(prefix):
                try:
                    shown += "   [decoded: %s]" % base64.b64decode(text[len(prefix):]).decode()
                except Exception:
                    pass
        print("S: " + shown, flush=True)
        return text

    def smtp_reply(self):
        while True:
            ln = self.line()
            if len(ln) < 4 or ln[3] != "-":
                return int(ln[:3]), ln


def sasl_data(mech, user, token, host, port):
    if mech == "xoauth2":
        raw = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
    else:
        raw = "n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01" % (user, host, port, token)
    b64 = base64.b64encode(raw.encode()).decode()
    return b64, "<%d bytes of SASL data>" % len(b64)


def error_answer(mech):
    return "" if mech == "xoauth2" else base64.b64encode(b"\x01").decode()


def smtp(c, a, token):
    c.smtp_reply()
    c.send("EHLO client.test")
    code, _ = c.smtp_reply()
    if a.tls == "starttls":
        c.send("STARTTLS")
        if c.smtp_reply()[0] != 220:
            return 2
        c.starttls()
        c.send("EHLO client.test")
        c.smtp_reply()
    c.send("AUTH " + a.mech.upper())
    code, ln = c.smtp_reply()
    if code != 334:
        return 1
    data, shown = sasl_data(a.mech, a.user, token, a.host, a.port)
    c.send(data, shown)
    code, ln = c.smtp_reply()
    if code == 334:
        c.send(error_answer(a.mech))
        code, ln = c.smtp_reply()
    if code != 235:
        c.send("QUIT")
        try:
            c.smtp_reply()
        except (OSError, EOFError):
            pass
        return 1
    if a.hold:
        time.sleep(a.hold)
    if a.send:
        frm, rcpt, subject = a.send
        c.send("MAIL FROM:<%s>" % frm)
        if c.smtp_reply()[0] != 250:
            return 2
        c.send("RCPT TO:<%s>" % rcpt)
        if c.smtp_reply()[0] != 250:
            return 2
        c.send("DATA")
        if c.smtp_reply()[0] != 354:
            return 2
        body = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nsent by sasl_client.py\r\n." % (frm, rcpt, subject)
        c.sock.sendall(body.encode() + b"\r\n")
        print("C: <message, %d bytes>" % len(body))
        if c.smtp_reply()[0] != 250:
            return 2
    c.send("QUIT")
    c.smtp_reply()
    return 0


def imap(c, a, token):
    c.line()
    if a.tls == "starttls":
        c.send("a0 STARTTLS")
        if not c.line().startswith("a0 OK"):
            return 2
        c.starttls()
    c.send("a1 AUTHENTICATE " + a.mech.upper())
    ln = c.line()
    if not ln.startswith("+"):
        return 1
    data, shown = sasl_data(a.mech, a.user, token, a.host, a.port)
    c.send(data, shown)
    while True:
        ln = c.line()
        if ln.startswith("+"):
            c.send(error_answer(a.mech))
        elif ln.startswith("a1 "):
            break
    if not ln.startswith("a1 OK"):
        c.send("a2 LOGOUT")
        return 1
    c.send("a2 LOGOUT")
    while not c.line().startswith("a2 "):
        pass
    return 0


def pop3(c, a, token):
    c.line()
    if a.tls == "starttls":
        c.send("STLS")
        if not c.line().startswith("+OK"):
            return 2
        c.starttls()
    c.send("AUTH " + a.mech.upper())
    ln = c.line()
    if not ln.startswith("+"):
        return 1
    data, shown = sasl_data(a.mech, a.user, token, a.host, a.port)
    c.send(data, shown)
    ln = c.line()
    if ln.startswith("+ "):
        c.send(error_answer(a.mech))
        ln = c.line()
    ok = ln.startswith("+OK")
    c.send("QUIT")
    c.line()
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("proto", choices=["smtp", "imap", "pop3"])
    ap.add_argument("port", type=int)
    ap.add_argument("tls", choices=["implicit", "starttls", "none"])
    ap.add_argument("mech", choices=["xoauth2", "oauthbearer"])
    ap.add_argument("user")
    ap.add_argument("--ca", default=os.environ.get("CA_FILE"))
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--send", nargs=3, metavar=("FROM", "RCPT", "SUBJECT"))
    ap.add_argument("--hold", type=float, default=0)
    a = ap.parse_args()
    token = os.environ.get("XO_TOKEN", "")
    ctx = ssl.create_default_context(cafile=a.ca)
    try:
        c = Conn(a.host, a.port, ctx, a.tls == "implicit")
        return {"smtp": smtp, "imap": imap, "pop3": pop3}[a.proto](c, a, token)
    except (OSError, EOFError, ValueError) as e:
        print("ERROR: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
