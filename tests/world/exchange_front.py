#!/usr/bin/python3
"""An Exchange Online look-alike in front of the test world's Postfix
submission port: Exchange allows 3 concurrent authenticated SMTP sessions per
mailbox and answers the fourth `432 4.3.2 STOREDRV.ClientSubmit; sender thread
limit exceeded` instead of 235, keeping the connection open.

A TLS-terminating relay, one thread per client (at most --max-sessions; more
get 421 and are closed). For each client it opens a connection to Postfix,
relays Postfix's greeting and every reply byte for byte, and forwards every
command line. STARTTLS is done on both legs (upstream: test CA, host name
localhost). AUTH XOAUTH2/OAUTHBEARER: the mailbox is taken from the initial
response (user= / a=); when Postfix answers 235 and the mailbox already has
--limit authenticated sessions, the client gets the 432 instead, and the front
replaces its (now authenticated) Postfix leg with a fresh unauthenticated one
(EHLO, STARTTLS, EHLO), so the session goes on unauthenticated, as Exchange's
does. DATA content and BDAT chunks are relayed as they come.

With --eod-delay-ms N it plays a WAN or a busy Exchange at the end of a
message: Postfix's reply to the final dot (or to BDAT ... LAST) is held N ms
before it is relayed. If the client's next commands are already there when the
reply goes out (it pipelined them behind the message, as RFC 2920 allows), the
front logs "PIPELINED <mailbox> after end of data".

Every message is logged with the command that carried it (DATA, or BDAT for
BDAT ... LAST). Two ways to fail, for the proxy's BDAT path: with
--refuse-data-to ADDR, DATA in a transaction with RCPT TO:<ADDR> is answered
"451 4.7.500 Server busy. Please try again later." (Postfix never sees it);
with --refuse-marker TEXT, a BDAT ... LAST chunk holding TEXT is answered
"554 5.6.0 Message refused by the front (test marker)" and not handed to
Postfix, which keeps the transaction's MAIL and RCPT (the client must RSET).

Log (one line each, flushed; never a token):
  CONNECT n=<connections so far>
  OPEN <mailbox> count=<authenticated sessions of it now>
  REFUSED <mailbox> count=<its authenticated sessions> (the 432)
  CLOSE <mailbox> count=<its authenticated sessions left> (at QUIT before the 221, else at close)
  PIPELINED <mailbox> after end of data   (only with --eod-delay-ms)
  MESSAGE <mailbox> DATA|BDAT [REFUSED]   at each message's end (or DATA's refusal)
  MAX <mailbox> <n>   at each new peak of sessions that wanted to be
                      authenticated at once (granted + the one refused: a
                      MAX above the limit means 432s were given)
usage: exchange_front.py PORT UPSTREAM_PORT CERT KEY CA LOG [--limit 3] [--max-sessions 500] [--eod-delay-ms 0]
       [--refuse-data-to ADDR] [--refuse-marker TEXT]"""
import base64
import select
import socket
import ssl
import sys
import threading
import time

port, up_port, cert, key, ca, log_path = sys.argv[1:7]
port, up_port = int(port), int(up_port)
opts = dict(zip(sys.argv[7::2], sys.argv[8::2]))
LIMIT = int(opts.get("--limit", "3"))
MAX_SESSIONS = int(opts.get("--max-sessions", "500"))
EOD_DELAY = float(opts.get("--eod-delay-ms", "0")) / 1000
REFUSE_DATA_TO = opts.get("--refuse-data-to", "").lower().encode()
REFUSE_MARKER = opts.get("--refuse-marker", "").encode()
TIMEOUT = 120           # seconds of silence on either leg before the session is dropped
MAX_LINE = 1 << 16      # a command (or SASL data) line longer than this ends the session
REFUSAL = b"432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded\r\n"

server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
client_ctx = ssl.create_default_context(cafile=ca)

lock = threading.Lock()
active = {}        # mailbox -> authenticated sessions now
peak = {}          # mailbox -> highest concurrency wanted
sessions = 0       # client connections being served
connections = 0    # client connections accepted so far
log_file = open(log_path, "a", buffering=1)


def log(text):   # called with lock held
    log_file.write("%s %s\n" % (time.strftime("%H:%M:%S"), text))


def note_peak(mailbox, n):   # lock held
    if n > peak.get(mailbox, 0):
        peak[mailbox] = n
        log("MAX %s %d" % (mailbox, n))


class Leg:
    """One side of the relay: a socket and a byte buffer, read by lines."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""
        sock.settimeout(TIMEOUT)

    def fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def line(self, limit=MAX_LINE):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                ln, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return ln
            start = len(self.buf)
            if len(self.buf) > limit:
                raise EOFError
            self.fill()

    def take(self, n):   # exactly n bytes (a BDAT chunk)
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def reply(self):     # one SMTP reply, all its lines, as bytes; and its code
        out = b""
        while True:
            ln = self.line()
            out += ln
            if len(ln) < 4 or ln[3:4] != b"-":
                return out, ln[:3]

    def send(self, data):
        self.sock.sendall(data)

    def waiting(self):   # bytes from the peer already here, not yet read
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        return bool(select.select([self.sock], [], [], 0)[0])

    def starttls(self, ctx, **kw):
        if self.buf:     # bytes pipelined after STARTTLS: plaintext injection
            raise EOFError
        self.sock = ctx.wrap_socket(self.sock, **kw)
        self.sock.settimeout(TIMEOUT)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def open_upstream(tls):
    """A fresh Postfix leg; with tls, already through EHLO, STARTTLS, EHLO. Returns (leg, greeting)."""
    up = Leg(socket.create_connection(("127.0.0.1", up_port), timeout=TIMEOUT))
    up.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    greeting, _ = up.reply()
    if tls:
        up.send(b"EHLO exchange-front.test\r\n")
        up.reply()
        up.send(b"STARTTLS\r\n")
        if up.reply()[1] != b"220":
            raise EOFError
        up.starttls(client_ctx, server_hostname="localhost")
        up.send(b"EHLO exchange-front.test\r\n")
        up.reply()
    return up, greeting


def mailbox_of(b64):
    """The mailbox named in a XOAUTH2 (user=) or OAUTHBEARER (a=) initial response."""
    try:
        raw = base64.b64decode(b64, validate=False).decode("utf-8", "replace")
    except Exception:
        return None
    for part in raw.split("\x01"):
        if part.startswith("user="):
            return part[5:].strip().lower()
        if part.startswith("n,") or part.startswith("y,") or part.startswith("p="):
            for f in part.split(","):
                if f.startswith("a="):
                    return f[2:].replace("=2C", ",").replace("=3D", "=").strip().lower()
    return None


def release(mailbox):
    if mailbox:
        with lock:
            active[mailbox] -= 1
            log("CLOSE %s count=%d" % (mailbox, active[mailbox]))


def end_of_data(cl, up, mailbox):
    """Postfix's reply to the end of a message, held EOD_DELAY first."""
    r = up.reply()[0]
    if EOD_DELAY:
        time.sleep(EOD_DELAY)
        if cl.waiting():
            with lock:
                log("PIPELINED %s after end of data" % mailbox)
    cl.send(r)


def logged(mailbox, what):
    with lock:
        log("MESSAGE %s %s" % (mailbox, what))


def session(conn):
    global sessions
    cl, up, mailbox = Leg(conn), None, None
    rcpts = []   # this transaction's RCPT TO lines (for --refuse-data-to)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        up, greeting = open_upstream(False)
        cl.send(greeting)
        tls = False
        while True:
            ln = cl.line()
            verb = ln.split(b" ", 1)[0].strip().upper()
            if verb == b"STARTTLS" and not tls:
                up.send(ln)
                r, code = up.reply()
                if code != b"220":
                    cl.send(r)
                    continue
                up.starttls(client_ctx, server_hostname="localhost")
                cl.send(r)
                cl.starttls(server_ctx, server_side=True)
                tls = True
            elif verb == b"AUTH":
                words = ln.split()
                ir = words[2].decode() if len(words) > 2 else None
                up.send(ln)
                r, code = up.reply()
                while code == b"334":                # continuation: relay the client's answer
                    cl.send(r)
                    data = cl.line()
                    if ir is None:
                        ir = data.strip().decode("ascii", "replace")
                    up.send(data)
                    r, code = up.reply()
                who = mailbox_of(ir) if ir and ir != "=" else None
                if code == b"235" and who and mailbox is None:
                    with lock:
                        n = active.get(who, 0)
                        if n >= LIMIT:
                            note_peak(who, n + 1)
                            log("REFUSED %s count=%d" % (who, n))
                            refused = True
                        else:
                            active[who] = n + 1
                            mailbox = who
                            note_peak(who, n + 1)
                            log("OPEN %s count=%d" % (who, n + 1))
                            refused = False
                    if refused:
                        cl.send(REFUSAL)
                        up.close()
                        up, _ = open_upstream(tls)   # the session goes on unauthenticated
                        continue
                cl.send(r)
            elif verb == b"DATA":
                if REFUSE_DATA_TO and any(REFUSE_DATA_TO in r for r in rcpts):
                    rcpts = []
                    logged(mailbox, "DATA REFUSED")
                    cl.send(b"451 4.7.500 Server busy. Please try again later.\r\n")
                    continue
                rcpts = []
                up.send(ln)
                r, code = up.reply()
                cl.send(r)
                if code != b"354":
                    continue
                while True:                           # the message, to the lone dot
                    d = cl.line(1 << 24)
                    up.send(d)
                    if d == b".\r\n":
                        break
                logged(mailbox, "DATA")
                end_of_data(cl, up, mailbox)
            elif verb == b"BDAT":
                words = ln.split()
                n = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
                chunk = cl.take(n)
                last = len(words) > 2 and words[2].upper() == b"LAST"
                if last:
                    rcpts = []
                if last and REFUSE_MARKER and REFUSE_MARKER in chunk:
                    logged(mailbox, "BDAT REFUSED")
                    cl.send(b"554 5.6.0 Message refused by the front (test marker)\r\n")
                    continue
                up.send(ln + chunk)
                if last:
                    logged(mailbox, "BDAT")
                    end_of_data(cl, up, mailbox)
                else:
                    cl.send(up.reply()[0])
            elif verb == b"QUIT":
                up.send(ln)
                r, _ = up.reply()
                release(mailbox)   # before the 221: a client told "bye" may count its slot free
                mailbox = None
                cl.send(r)
                return
            else:
                if verb == b"RCPT":
                    rcpts.append(ln.lower())
                elif verb in (b"RSET", b"MAIL", b"EHLO", b"HELO"):
                    rcpts = []
                up.send(ln)
                r, _ = up.reply()
                cl.send(r)
    except (OSError, EOFError, ssl.SSLError, ValueError):
        return
    finally:
        cl.close()
        if up:
            up.close()
        release(mailbox)
        with lock:
            sessions -= 1


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(256)
with lock:
    log("listening on 127.0.0.1:%d, relaying to 127.0.0.1:%d, %d authenticated sessions per mailbox"
        % (port, up_port, LIMIT))
while True:
    c, _ = srv.accept()
    with lock:
        connections += 1
        log("CONNECT n=%d" % connections)
        busy = sessions >= MAX_SESSIONS
        if not busy:
            sessions += 1
    if busy:
        try:
            c.sendall(b"421 4.3.2 Service not available, too many connections\r\n")
        except OSError:
            pass
        c.close()
        continue
    threading.Thread(target=session, args=(c,), daemon=True).start()
