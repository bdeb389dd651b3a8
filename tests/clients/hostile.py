#!/usr/bin/python3
"""What an attacker sends, over raw sockets, for tests/e2e/hostile_input.sh (issue 11).
usage: hostile.py CHECK ARGS...   prints PASS/FAIL/INFO lines, exits 1 on a FAIL
  smuggle PORT VARIANT MARKER FROM VICTIM RCPT EXPECT   VARIANT lf-dot-crlf|crlf-dot-lf|lf-dot-lf;
                                         EXPECT reject (550 5.6.0) or normalize (250, one message)
  eightbit PORT DOMAIN                   MAIL FROM:<\\xff0@DOMAIN> twice: 553 5.6.7 each time
  midtxn PORT LOGIN VERB FROM RCPT MARKER   EHLO|HELO|RSET after MAIL+RCPT, then a whole transaction
  imap-literal PORT                      {9000+} literal full of commands: BAD, BYE, close, nothing else
  smtp-lf PORT SRC FORGED                AUTH PLAIN with a LF in the login name
  imap-lf PORT SRC FORGED                IMAP LOGIN with a literal login name holding a LF
  max-sessions IMAP_PORT SMTP_PORT       4 idle IMAP clients; SMTP listener (max_sessions 4) takes 4, refuses the 5th
  per-client PORT                        max_sessions_per_client 2: third from 127.0.0.1 refused, 127.0.0.2 taken
  throttle PORT BAD_LOGIN LOGIN          90 wrong passwords from 127.0.0.10-99, then LOGIN from 127.0.0.5
Passwords come from the environment (XO_PASSWORD) and are never printed. Every
socket has a timeout; only loopback addresses are used."""
import os
import socket
import sys
import threading
import time

from report import check, exit_status, info, plain_response

HOST = "127.0.0.1"


def show(b):
    return b.decode("latin-1").encode("unicode_escape").decode("ascii")


def connect(port, src=None, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    s.connect((HOST, int(port)))
    return s


class Lines:
    """Line reader on a socket with a deadline per call; EOF and reset end the stream."""

    def __init__(self, sock):
        self.s, self.buf, self.eof = sock, b"", False

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.s.settimeout(left)
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                if self.buf and self.eof:
                    out, self.buf = self.buf, b""
                    return out
                return None
        out, self.buf = self.buf.split(b"\n", 1)
        return out + b"\n"

    def smtp_reply(self, timeout=10.0):
        """(code, text of the last line) or (0, 'timeout'|'closed')."""
        deadline = time.monotonic() + timeout
        text = []
        while True:
            ln = self.line(max(0.0, deadline - time.monotonic()))
            if ln is None:
                return 0, ("closed" if self.eof else "timeout")
            ln = ln.rstrip(b"\r\n")
            text.append(ln)
            if len(ln) < 4 or ln[3:4] != b"-":
                code = int(ln[:3]) if ln[:3].isdigit() else 0
                return code, ln.decode("utf-8", "replace")

    def all_lines(self, timeout=10.0):
        """Every line until the peer closes (or the deadline)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            ln = self.line(max(0.0, deadline - time.monotonic()))
            if ln is None:
                return out, self.eof
            out.append(ln.rstrip(b"\r\n"))


def send(s, data):
    try:
        s.sendall(data)
        return True
    except OSError as e:
        info("send: %r" % e)
        return False


def smtp_open(port, src=None, ehlo=True):
    s = connect(port, src)
    r = Lines(s)
    code, text = r.smtp_reply()
    if code != 220:
        return s, r, (code, text)
    if ehlo:
        send(s, b"EHLO hostile.test\r\n")
        code, text = r.smtp_reply()
    return s, r, (code, text)


def cmd(s, r, line, timeout=10.0):
    send(s, line + b"\r\n")
    return r.smtp_reply(timeout)


def auth_plain(login, password):
    return b"AUTH PLAIN " + plain_response(login, password)


SEQUENCES = {"lf-dot-crlf": b"\n.\r\n", "crlf-dot-lf": b"\r\n.\n", "lf-dot-lf": b"\n.\n"}


def smuggle(port, variant, marker, sender, victim, rcpt, expect):
    """DATA with a smuggled end of data and a second transaction as another sender."""
    seq = SEQUENCES[variant]
    what = "smuggling %s (%s)" % (variant, expect)
    s, r, (code, text) = smtp_open(port)
    if code != 250:
        check(what + ": EHLO", False, text)
        return
    for line in (b"MAIL FROM:<%s>" % sender.encode(), b"RCPT TO:<%s>" % rcpt.encode()):
        code, text = cmd(s, r, line)
        if code != 250:
            check(what + ": " + line.decode(), False, text)
            return
    code, text = cmd(s, r, b"DATA")
    if code != 354:
        check(what + ": DATA", False, text)
        return
    first = (b"From: <%s>\r\nTo: <%s>\r\nSubject: smuggle-%s-first\r\n\r\nfirst part %s" %
             (sender.encode(), rcpt.encode(), marker.encode(), marker.encode()))
    second = (b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nFrom: <%s>\r\nTo: <%s>\r\n"
              b"Subject: smuggle-%s-second\r\n\r\nsmuggled as %s\r\n.\r\n" %
              (victim.encode(), rcpt.encode(), victim.encode(), rcpt.encode(), marker.encode(), victim.encode()))
    send(s, first + seq + second + b"QUIT\r\n")
    replies = []
    while True:
        code, text = r.smtp_reply(15.0)
        if code == 0:
            break
        replies.append(text)
        if code == 221:
            break
    s.close()
    info("%s: replies after 354: %s" % (variant, " | ".join(replies) or "(none)"))
    end = [t for t in replies if not t.startswith("221")]
    if expect == "reject":
        check(what + ": one reply, 550 5.6.0, to the whole message; no command after the smuggled end ran",
              len(end) == 1 and end[0].startswith("550 5.6.0"), " | ".join(replies))
    else:
        check(what + ": one reply, 250, to the whole message; no command after the smuggled end ran",
              len(end) == 1 and end[0].startswith("250"), " | ".join(replies))


def eightbit(port, domain):
    s, r, (code, text) = smtp_open(port)
    if code != 250:
        check("8-bit sender: EHLO", False, text)
        return
    for attempt in (1, 2):
        t0 = time.monotonic()
        code, text = cmd(s, r, b"MAIL FROM:<\xff0@" + domain.encode() + b">", timeout=10.0)
        took = time.monotonic() - t0
        check("MAIL FROM:<\\xff0@%s> (attempt %d) answered 553 5.6.7 in %.2f s" % (domain, attempt, took),
              code == 553 and text.startswith("553 5.6.7"), text)
        if code == 0:
            break
        if attempt == 1:
            cmd(s, r, b"RSET")
    code, text = cmd(s, r, b"QUIT")
    check("8-bit sender: the session still answers QUIT with 221", code == 221, text)
    s.close()


def midtxn(port, login, verb, sender, rcpt, marker):
    password = os.environ["XO_PASSWORD"].encode()
    what = "%s inside a transaction" % verb
    s, r, (code, text) = smtp_open(port)
    if code != 250:
        check(what + ": EHLO", False, text)
        return
    code, text = cmd(s, r, auth_plain(login.encode(), password), timeout=20.0)
    if code != 235:
        check(what + ": AUTH", False, text)
        return
    steps = [b"MAIL FROM:<%s>" % sender.encode(), b"RCPT TO:<%s>" % rcpt.encode(),
             {"EHLO": b"EHLO again.hostile.test", "HELO": b"HELO again.hostile.test", "RSET": b"RSET"}[verb],
             b"MAIL FROM:<%s>" % sender.encode(), b"RCPT TO:<%s>" % rcpt.encode(), b"DATA"]
    want = [250, 250, 250, 250, 250, 354]
    got = []
    for line, w in zip(steps, want):
        code, text = cmd(s, r, line, timeout=20.0)
        got.append(text)
        if code != w:
            check(what + ": the new transaction is taken", False, "%s -> %s" % (line.decode(), text))
            s.close()
            return
    msg = (b"From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nsecond transaction after %s\r\n.\r\n" %
           (sender.encode(), rcpt.encode(), marker.encode(), verb.encode()))
    send(s, msg)
    code, text = r.smtp_reply(30.0)
    check(what + ": the second transaction is accepted (no 503 nested MAIL)", code == 250, text)
    cmd(s, r, b"QUIT")
    s.close()


def imap_literal(port):
    s = connect(port)
    r = Lines(s)
    greeting = r.line()
    if not greeting or not greeting.startswith(b"* OK"):
        check("IMAP greeting", False, show(greeting or b""))
        return
    cmds, i = b"", 0
    while len(cmds) < 9000:
        i += 1
        cmds += (b"e%d NOOP\r\n", b"e%d CAPABILITY\r\n", b"e%d LOGOUT\r\n")[i % 3] % i
    payload = cmds[:9000 - 2] + b"\r\n"
    send(s, b"a1 LOGIN erp {9000+}\r\n" + payload + b" x\r\ne999 CAPABILITY\r\n")
    lines, closed = r.all_lines(10.0)
    s.close()
    info("replies: " + " | ".join(show(x) for x in lines[:6]) + (" | ... (%d lines)" % len(lines) if len(lines) > 6 else ""))
    check("{9000+} literal: 'a1 BAD' first", bool(lines) and lines[0].startswith(b"a1 BAD"),
          show(lines[0]) if lines else "(no reply)")
    check("{9000+} literal: then '* BYE'", len(lines) >= 2 and lines[1].startswith(b"* BYE"),
          show(lines[1]) if len(lines) >= 2 else "(none)")
    embedded = [x for x in lines if x.startswith(b"e") or x.startswith(b"* CAPABILITY") or b"logging out" in x]
    check("{9000+} literal: no reply to a command inside the literal", not embedded and len(lines) == 2,
          " | ".join(show(x) for x in embedded[:3]) or "%d lines" % len(lines))
    check("{9000+} literal: the proxy closed the connection", closed)


def smtp_lf(port, src, forged):
    s, r, (code, text) = smtp_open(port, src)
    if code != 250:
        check("AUTH PLAIN with a LF in the login: EHLO", False, text)
        return
    code, text = cmd(s, r, auth_plain(b"evil\n" + forged.encode(), b"not-a-password"), timeout=20.0)
    info("AUTH PLAIN login 'evil\\n%s': %s" % (forged, text))
    check("AUTH PLAIN with a LF in the login is refused", code in (501, 535), text)
    s.close()


def imap_lf(port, src, forged):
    s = connect(port, src)
    r = Lines(s)
    r.line()
    name = b"evil\n" + forged.encode()
    send(s, b"a1 LOGIN {%d+}\r\n%s not-a-password\r\n" % (len(name), name))
    ln = r.line(20.0) or b""
    info("IMAP LOGIN literal 'evil\\n%s': %s" % (forged, show(ln.rstrip())))
    check("IMAP LOGIN with a LF in the literal login is refused", ln.startswith(b"a1 NO") or ln.startswith(b"a1 BAD"),
          show(ln.rstrip()))
    s.close()


def max_sessions(imap_port, smtp_port):
    held = []
    try:
        for i in range(4):
            s = connect(imap_port)
            held.append(s)
            g = Lines(s).line() or b""
            if not g.startswith(b"* OK"):
                check("idle IMAP client %d greeted" % (i + 1), False, show(g))
                return
        info("4 idle IMAP clients connected")
        greetings = []
        for i in range(5):
            s = connect(smtp_port)
            held.append(s)
            greetings.append(Lines(s).smtp_reply(10.0)[1])
        info("SMTP greetings: " + " | ".join(greetings))
        check("4 idle IMAP clients do not fill the SMTP listener (max_sessions 4): its first client is greeted 220",
              greetings[0].startswith("220"), greetings[0])
        check("SMTP clients 2-4 are greeted 220", all(g.startswith("220") for g in greetings[1:4]),
              " | ".join(greetings[1:4]))
        check("the 5th SMTP client gets 421 4.3.2", greetings[4].startswith("421 4.3.2"), greetings[4])
    finally:
        for s in held:
            s.close()


def per_client(port):
    held = []
    try:
        got = []
        for src in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"):
            s = connect(port, src)
            held.append(s)
            got.append(Lines(s).smtp_reply(10.0)[1])
        info("greetings 127.0.0.1 x3, 127.0.0.2: " + " | ".join(got))
        check("max_sessions_per_client 2: two clients from 127.0.0.1 are greeted 220",
              got[0].startswith("220") and got[1].startswith("220"), " | ".join(got[:2]))
        check("max_sessions_per_client 2: the third from 127.0.0.1 gets 421", got[2].startswith("421"), got[2])
        check("max_sessions_per_client 2: one from 127.0.0.2 meanwhile is greeted 220", got[3].startswith("220"), got[3])
    finally:
        for s in held:
            s.close()


def throttle(port, bad_login, login):
    password = os.environ["XO_PASSWORD"].encode()
    n = 90
    ready = threading.Barrier(n + 1, timeout=30)
    results = [None] * n

    def attacker(i):
        src = "127.0.0.%d" % (10 + i)
        s = None
        try:
            s, r, (code, _) = smtp_open(port, src)
            s.settimeout(60)
            ready.wait()
            if code != 250:
                results[i] = "ehlo %d" % code
                return
            code, text = cmd(s, r, auth_plain(bad_login.encode(), b"wrong password %d" % i), timeout=60.0)
            results[i] = str(code) if code else text
        except (OSError, threading.BrokenBarrierError) as e:
            results[i] = repr(e)
        finally:
            if s:
                s.close()

    threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    s, r, (code, text) = smtp_open(port, "127.0.0.5")
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        check("90 attackers connected", False)
        return
    time.sleep(0.1)   # the 90 wrong passwords are in the proxy now
    t0 = time.monotonic()
    code, text = cmd(s, r, auth_plain(login.encode(), password), timeout=30.0)
    took = time.monotonic() - t0
    s.close()
    print("MEASURE valid cold AUTH from 127.0.0.5 during 90 wrong-password AUTHs: %.3f s (%s)" % (took, text), flush=True)
    check("valid AUTH during 90 concurrent wrong passwords answered 235 or 454 in %.2f s (at most 3 s; 90 queued derivations take about 9)" % took,
          code in (235, 454) and took <= 3.0, text)
    for t in threads:
        t.join(60)
    tally = {}
    for x in results:
        tally[x] = tally.get(x, 0) + 1
    info("the 90 wrong-password replies: " + ", ".join("%s x%d" % (k, v) for k, v in sorted(tally.items(), key=str)))
    check("every wrong password was refused (535/454/421), none accepted",
          all(x in ("535", "454", "421") for x in results), ", ".join(sorted(set(map(str, results)))))


def main():
    a = sys.argv[1:]
    fn = {"smuggle": smuggle, "eightbit": eightbit, "midtxn": midtxn, "imap-literal": imap_literal,
          "smtp-lf": smtp_lf, "imap-lf": imap_lf, "max-sessions": max_sessions, "per-client": per_client,
          "throttle": throttle}[a[0]]
    try:
        fn(*a[1:])
    except OSError as e:
        check(a[0], False, repr(e))
    return exit_status()


sys.exit(main())
