#!/usr/bin/python3
"""Clients for tests/e2e/faults.sh and tests/e2e/open_relay.sh (issue 12).
usage: faults.py CHECK ARGS...   prints PASS/FAIL/INFO/MEASURE lines, exits 1 on a FAIL
  vanish PORT LOGIN FROM RCPT MARKER   AUTH, MAIL, RCPT, DATA, half of a 200 KB message, then the
                                       socket is closed (no final dot)
  quit-midtxn PORT LOGIN FROM RCPT    AUTH, MAIL, RCPT (accepted), then QUIT: 221
  errors-midtxn PORT LOGIN FROM RCPT  the same, then ten unknown commands: 421 and closed
  rejected-midtxn PORT LOGIN FROM RCPT  MAIL accepted, RCPT to reject@ refused, DATA 554, QUIT
  login-only PORT LOGIN               AUTH then QUIT (the upstream session stays in the pool)
  mail-rcpt PORT LOGIN FROM RCPT      AUTH, MAIL, RCPT: 235, 250, 250 expected; RSET, QUIT
  flood PORT N PID                     N connections opened at once; each must get a 220 greeting or
                                       a clean 421; measures the proxy's RSS (PID) while all are open
  relay PORT SRC [LOGIN SENDER]        open-relay tricks from SRC (a loopback address outside the
                                       listener's trusted_networks): each refused with its reply;
                                       with LOGIN (password XO_PASSWORD) also after AUTH, a SENDER
                                       other than the login's mailbox
  unmapped PORT SRC SENDER...          a trusted client: each SENDER matches no senders: entry -> 550 5.7.1
Passwords come from the environment (XO_PASSWORD) and are never printed. Every socket has a
timeout and every wait a deadline; only loopback addresses are used."""
import os
import resource
import selectors
import socket
import sys
import time

from report import check, exit_status, info, plain_response



class Smtp:
    """One SMTP client connection with a deadline on every reply."""

    def __init__(self, port, src=None, timeout=30.0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if src:
            self.s.bind((src, 0))
        self.s.connect(("127.0.0.1", int(port)))
        self.buf = b""

    def reply(self, timeout=30.0):
        """(code, last line) of the next reply; (0, 'closed') at EOF or timeout."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0, "timeout"
                self.s.settimeout(left)
                try:
                    chunk = self.s.recv(65536)
                except socket.timeout:
                    return 0, "timeout"
                except OSError:
                    chunk = b""
                if not chunk:
                    return 0, "closed"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            last = line.decode(errors="replace").rstrip("\r")
            if len(last) < 4 or last[3] != "-":
                try:
                    return int(last[:3]), last
                except ValueError:
                    return 0, last

    def send(self, data):
        try:
            self.s.sendall(data if isinstance(data, bytes) else data.encode() + b"\r\n")
            return True
        except OSError:
            return False

    def cmd(self, line, timeout=30.0):
        if not self.send(line):
            return 0, "closed"
        return self.reply(timeout)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def auth_plain(login, password):
    return "AUTH PLAIN " + plain_response(login, password).decode()


def vanish(port, login, sender, rcpt, marker):
    c = Smtp(port)
    steps = [("greeting", c.reply())]
    steps.append(("EHLO", c.cmd("EHLO vanish.test")))
    steps.append(("AUTH", c.cmd(auth_plain(login, os.environ["XO_PASSWORD"]))))
    steps.append(("MAIL", c.cmd("MAIL FROM:<%s>" % sender)))
    steps.append(("RCPT", c.cmd("RCPT TO:<%s>" % rcpt)))
    steps.append(("DATA", c.cmd("DATA")))
    info("replies: " + " | ".join("%s %d" % (n, r[0]) for n, r in steps))
    ok = [r[0] for _, r in steps] == [220, 250, 235, 250, 250, 354]
    check("vanish: the transaction reached DATA (220 250 235 250 250 354)", ok)
    if not ok:
        c.close()
        return
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@faults.test>\r\n\r\n"
            % (sender, rcpt, marker, marker)).encode()
    body = b"".join(b"line %06d of a message whose client vanishes half way\r\n" % i for i in range(3500))
    half = head + body[:len(body) // 2]
    sent = c.send(half)
    time.sleep(0.5)       # let the proxy stream it upstream before the socket goes
    c.close()
    print("MEASURE vanish: sent %d of %d bytes, then closed the socket without the final dot"
          % (len(half), len(head) + len(body)), flush=True)
    check("vanish: half of the message was written", sent)


def leave_midtxn(port, login, sender, rcpt, how):
    """AUTH, MAIL, RCPT accepted, then the client leaves the transaction open: QUIT (221), or
    ten bad commands (the tenth answered 421 and the connection closed)."""
    c = Smtp(port)
    if how == "rejected":   # every recipient refused (550), DATA refused here (554), then QUIT
        rcpt = "reject@" + rcpt.split("@")[1]
    got = [c.reply()[0], c.cmd("EHLO midtxn.test")[0], c.cmd(auth_plain(login, os.environ["XO_PASSWORD"]))[0],
           c.cmd("MAIL FROM:<%s>" % sender)[0], c.cmd("RCPT TO:<%s>" % rcpt)[0]]
    want = [220, 250, 235, 250, 550 if how == "rejected" else 250]
    check("%s: the transaction is open upstream (%s)" % (how, " ".join(map(str, want))), got == want,
          " ".join(map(str, got)))
    if how == "rejected":
        code, text = c.cmd("DATA")
        check("rejected: DATA without an accepted recipient: 554", code == 554, text)
        code, text = c.cmd("QUIT")
        check("rejected: then QUIT: 221", code == 221, text)
    elif how == "quit":
        code, text = c.cmd("QUIT")
        check("quit: QUIT with MAIL and RCPT accepted: 221", code == 221, text)
    else:
        codes = [c.cmd("BOGUS%d" % i)[0] for i in range(10)]
        code, text = c.reply(10.0)
        check("errors: ten unknown commands mid-transaction: 500 each, the tenth followed by 421 and a close",
              codes[:9] == [500] * 9 and codes[9] == 500 and code == 421, " ".join(map(str, codes)) + " " + text)
    c.close()


def login_only(port, login):
    """AUTH, then QUIT: the upstream session the login opened stays idle in the pool."""
    c = Smtp(port)
    got = [c.reply()[0], c.cmd("EHLO pool.test")[0], c.cmd(auth_plain(login, os.environ["XO_PASSWORD"]))[0],
           c.cmd("QUIT")[0]]
    check("login-only: 220 250 235 221", got == [220, 250, 235, 221], " ".join(map(str, got)))
    c.close()


def mail_rcpt(port, login, sender, rcpt):
    """AUTH, MAIL, RCPT (each 250 expected), RSET, QUIT."""
    c = Smtp(port)
    c.reply()
    c.cmd("EHLO pool.test")
    auth = c.cmd(auth_plain(login, os.environ["XO_PASSWORD"]))
    mail = c.cmd("MAIL FROM:<%s>" % sender)
    rcpt_r = c.cmd("RCPT TO:<%s>" % rcpt) if mail[0] == 250 else (0, "-")
    info("AUTH %s | MAIL %s | RCPT %s" % (auth[1], mail[1], rcpt_r[1]))
    check("mail-rcpt: AUTH 235", auth[0] == 235, auth[1])
    check("mail-rcpt: MAIL 250", mail[0] == 250, mail[1])
    check("mail-rcpt: RCPT 250", rcpt_r[0] == 250, rcpt_r[1])
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def rss_kb(pid):
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def flood(port, n, pid):
    n = int(n)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 200) if hard != resource.RLIM_INFINITY else n + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    before = rss_kb(pid)
    sel = selectors.DefaultSelector()
    socks, got = [], {}
    start = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", int(port)))
        socks.append(s)
        got[s] = b""
        sel.register(s, selectors.EVENT_READ)
    opened = time.monotonic() - start
    done = {}
    deadline = start + 60
    while len(done) < n and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            got[s] += chunk
            if not chunk or b"\n" in got[s]:
                done[s] = got[s].split(b"\n", 1)[0].decode(errors="replace").rstrip("\r") if got[s] else "closed"
                sel.unregister(s)
    took = time.monotonic() - start
    during = rss_kb(pid)
    greeted = sum(1 for v in done.values() if v.startswith("220 "))
    refused = sum(1 for v in done.values() if v.startswith("421 4.3.2"))
    other = [v for v in done.values() if not (v.startswith("220 ") or v.startswith("421 4.3.2"))]
    print("MEASURE flood: %d connections opened in %.2f s; %d greeted 220, %d refused 421 4.3.2, %d other, "
          "%d without an answer after %.1f s" % (n, opened, greeted, refused, len(other), n - len(done), took),
          flush=True)
    print("MEASURE flood: proxy RSS %d kB before, %d kB with all %d open" % (before, during, n), flush=True)
    if other:
        info("other answers: " + " | ".join(sorted(set(other))[:5]))
    check("flood: every one of the %d connections got a 220 greeting or a clean 421 4.3.2" % n,
          greeted + refused == n, "%d + %d of %d" % (greeted, refused, n))
    check("flood: all %d fit (max_sessions and max_sessions_per_client set above %d): %d greeted" % (n, n, greeted),
          greeted == n)
    # One more while all are held: max_sessions is N, so it gets a clean 421 4.3.2.
    extra = Smtp(port, timeout=10.0)
    code, text = extra.reply(10.0)
    extra.close()
    check("flood: connection %d while %d are open gets 421 4.3.2 (max_sessions %d)" % (n + 1, n, n),
          text.startswith("421 4.3.2"), text)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    sel.close()


def relay(port, src, login=None, sender=None):
    """Every trick from an untrusted address: one connection each, replies named."""
    def session():
        c = Smtp(port, src)
        code, text = c.reply()
        if code != 220:
            check("relay: greeted from %s" % src, False, text)
        c.cmd("EHLO relay-test.example")
        return c

    def expect(name, got, codes, enh=None):
        code, text = got
        ok = code in codes and (enh is None or text[4:].startswith(enh))
        check("%s: %s" % (name, "/".join(str(x) for x in codes) + (" " + enh if enh else "")), ok, text)

    c = session()
    expect("no AUTH: MAIL FROM:<erp@contoso.test>", c.cmd("MAIL FROM:<erp@contoso.test>"), (530,), "5.7.0")
    expect("no AUTH: then RCPT TO:<alice@contoso.test>", c.cmd("RCPT TO:<alice@contoso.test>"), (503,), "5.5.1")
    expect("no AUTH: then DATA", c.cmd("DATA"), (503,), "5.5.1")
    c.close()

    c = session()
    expect("RCPT before MAIL", c.cmd("RCPT TO:<alice@contoso.test>"), (503,), "5.5.1")
    expect("DATA before MAIL", c.cmd("DATA"), (503,), "5.5.1")
    c.close()

    c = session()
    expect("percent hack: MAIL FROM:<x@other.test>", c.cmd("MAIL FROM:<x@other.test>"), (530,), "5.7.0")
    expect("percent hack: RCPT TO:<alice%contoso.test@other.test>",
           c.cmd("RCPT TO:<alice%contoso.test@other.test>"), (503,), "5.5.1")
    c.close()

    c = session()
    got = c.cmd("MAIL FROM:<@hop.other.test:x@other.test>")
    expect("source route in MAIL FROM:<@hop.other.test:x@other.test>", got, (530, 501, 553))
    expect("source route in RCPT TO:<@hop.other.test:alice@contoso.test>",
           c.cmd("RCPT TO:<@hop.other.test:alice@contoso.test>"), (503, 501, 553))
    c.close()

    c = session()
    expect("MAIL FROM:<erp@contoso.test> AUTH=erp@contoso.test (the AUTH parameter is no login)",
           c.cmd("MAIL FROM:<erp@contoso.test> AUTH=erp@contoso.test"), (530,), "5.7.0")
    expect("XCLIENT ADDR=127.0.0.1 (Postfix's client spoofing) is not a command here",
           c.cmd("XCLIENT ADDR=127.0.0.1 NAME=localhost"), (500,), "5.5.2")
    expect("XFORWARD ADDR=127.0.0.1 is not a command here", c.cmd("XFORWARD ADDR=127.0.0.1"), (500,), "5.5.2")
    expect("after XCLIENT: MAIL still needs AUTH", c.cmd("MAIL FROM:<erp@contoso.test>"), (530,), "5.7.0")
    c.close()

    c = Smtp(port, src)
    c.reply()
    c.cmd("HELO relay-test.example")
    expect("HELO instead of EHLO: MAIL still needs AUTH", c.cmd("MAIL FROM:<erp@contoso.test>"), (530,), "5.7.0")
    c.close()

    # A whole transaction in one write (PIPELINING): no reply may be 250/354 and the message
    # text (which holds a second transaction) is never run as a transaction.
    c = session()
    blast = (b"MAIL FROM:<erp@contoso.test>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\n"
             b"Subject: open-relay-blast\r\n\r\nMAIL FROM:<erp@contoso.test>\r\nRCPT TO:<alice@contoso.test>\r\n"
             b"DATA\r\n.\r\nQUIT\r\n")
    c.send(blast)
    codes = []
    for _ in range(10):
        code, text = c.reply(10.0)
        if code == 0:
            break
        codes.append(code)
        if code == 221:
            break
    info("pipelined MAIL/RCPT/DATA/message/QUIT without AUTH: " + " ".join(map(str, codes)))
    check("pipelined transaction without AUTH: no 250 and no 354 at all",
          bool(codes) and codes[0] == 530 and not any(x in (250, 354) for x in codes), " ".join(map(str, codes)))
    c.close()

    if login:
        # After AUTH as LOGIN: a SENDER other than the login's mailbox. The proxy must keep the
        # login's mailbox as the upstream identity (never switch to the sender's), so the upstream
        # decides SendAs; the caller's upstream refuses it as Exchange does.
        c = session()
        expect("AUTH PLAIN as %s from %s" % (login, src), c.cmd(auth_plain(login, os.environ["XO_PASSWORD"])),
               (235,), "2.7.0")
        got = c.cmd("MAIL FROM:<%s>" % sender)
        if got[0] == 250:
            got = c.cmd("RCPT TO:<alice@contoso.test>")
            if got[0] == 250:
                got = c.cmd("DATA")
        expect("a sender <%s> other than the login's mailbox: refused (5xx), never 250 for the message"
               % sender, got, (550, 553, 554), "5.7.")
        c.cmd("QUIT")
        c.close()


def unmapped(port, src, *senders):
    """A trusted client: senders the senders: map must not match: 550 5.7.1 (or a syntax 501)."""
    for sender in senders:
        c = Smtp(port, src)
        c.reply()
        c.cmd("EHLO trusted-test.example")
        code, text = c.cmd("MAIL FROM:<%s>" % sender)
        if code == 250:
            code, text = c.cmd("RCPT TO:<alice@contoso.test>")
        check("trusted client %s, sender <%s> not in senders: refused 550 5.7.1 (or 501 syntax)" % (src, sender),
              (code == 550 and text.startswith("550 5.7.1")) or code == 501, text)
        c.cmd("QUIT")
        c.close()


def main():
    check_name, args = sys.argv[1], sys.argv[2:]
    {"vanish": vanish, "flood": flood, "relay": relay, "unmapped": unmapped,
     "quit-midtxn": lambda *a: leave_midtxn(*a, "quit"), "errors-midtxn": lambda *a: leave_midtxn(*a, "errors"),
     "rejected-midtxn": lambda *a: leave_midtxn(*a, "rejected"), "login-only": login_only,
     "mail-rcpt": mail_rcpt}[check_name](*args)
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
