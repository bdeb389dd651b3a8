#!/usr/bin/python3
"""A misbehaving upstream for one test: speaks EHLO, STARTTLS (test CA
certificate), AUTH XOAUTH2 in the two-step form, MAIL, RCPT and DATA, then
drops the TCP connection after 64 KB of the message (or at its end, if it is
smaller), never answering the final dot. The proxy must answer its client
451 4.4.x, never 250. Each drop is logged to its log as one line.
With --auth-reply or --mail-reply it plays an Exchange that refuses: the given
reply instead of 235 after the XOAUTH2 data, or instead of 250 to MAIL FROM
(e.g. "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is
disabled for the Tenant."), for `xoauth2-proxy test` and the diagnosis table.
--rcpt-reply replaces the 250 to RCPT TO; --auth-mechs the mechanisms EHLO offers
after STARTTLS (default "XOAUTH2", e.g. "PLAIN LOGIN" for a server without it).
--imap-auth-reply TEXT plays Exchange's IMAP instead (implicit TLS, as on 993):
CAPABILITY with AUTH=XOAUTH2 and SASL-IR, then "TAG TEXT" after AUTHENTICATE
(e.g. "NO AUTHENTICATE failed.").
With --close-at STEP it closes the TCP connection without a reply at one
step of the dialogue, and answers every step before it normally: greeting
(at once, no 220), ehlo (the first EHLO), starttls, auth (the AUTH line),
mail, rcpt, data (the DATA command), eod (after the whole message and its
final dot, whatever its size). Each close is logged as
"closing the connection at STEP". Without it, the 64 KB drop above.
With --mail-reply-other TEXT it plays Exchange's SendAs check: TEXT instead of
250 to a MAIL FROM other than the XOAUTH2 user=. It logs each XOAUTH2 user=
(never the token) and each MAIL FROM with the user it came as.
usage: dropper.py PORT CERT KEY [--auth-reply TEXT] [--mail-reply TEXT] [--rcpt-reply TEXT]
                  [--auth-mechs MECHS] [--imap-auth-reply TEXT] [--close-at STEP]
                  [--mail-reply-other TEXT]"""
import base64
import socket
import ssl
import sys
import threading

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
AUTH_REPLY = opts.get("--auth-reply", "235 2.7.0 Authentication successful")
MAIL_REPLY = opts.get("--mail-reply", "250 2.0.0 Ok")
RCPT_REPLY = opts.get("--rcpt-reply", "250 2.0.0 Ok")
AUTH_MECHS = opts.get("--auth-mechs", "XOAUTH2")
IMAP_AUTH_REPLY = opts.get("--imap-auth-reply")
CLOSE_AT = opts.get("--close-at")
OTHER_REPLY = opts.get("--mail-reply-other")


def sasl_user(data):
    """The user= of XOAUTH2 data, logged (the token never is)."""
    try:
        fields = base64.b64decode(data.strip()).split(b"\x01")
    except ValueError:
        return "?"
    user = "?"
    for fld in fields:
        if fld.startswith(b"user="):
            user = fld[5:].decode(errors="replace")
    print("AUTH XOAUTH2 user=%s" % user, flush=True)
    return user
STEPS = ("greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "eod")
if CLOSE_AT is not None and CLOSE_AT not in STEPS:
    sys.exit("dropper.py: --close-at takes one of " + " ".join(STEPS))


class Close(Exception):
    """Raised at the --close-at step: the connection is closed without a reply."""


def close_at(step):
    if step == CLOSE_AT:
        print("closing the connection at %s" % step, flush=True)
        raise Close()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)


def close_quietly(conn):
    try:
        conn.close()
    except OSError:
        pass


def session(conn):
    conn.settimeout(30)
    f = conn.makefile("rb")
    def send(s):
        conn.sendall(s.encode() + b"\r\n")
    tls = ehlo_seen = False
    user = "-"
    try:
        close_at("greeting")
        send("220 dropper.test ESMTP")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().upper()
            step = {b"STARTTLS": "starttls", b"DATA": "data"}.get(cmd)
            for verb, name in ((b"AUTH", "auth"), (b"MAIL", "mail"), (b"RCPT", "rcpt")):
                if cmd.startswith(verb):
                    step = name
            if cmd.startswith(b"EHLO") and not ehlo_seen:
                ehlo_seen, step = True, "ehlo"
            if step:
                close_at(step)
            if cmd.startswith(b"EHLO"):
                send("250-dropper.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n"
                     + ("250 AUTH " + AUTH_MECHS if tls else "250 STARTTLS"))
            elif cmd == b"STARTTLS":
                send("220 2.0.0 go ahead")
                conn = ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                tls = True
            elif cmd == b"AUTH XOAUTH2":
                send("334 ")
                user = sasl_user(f.readline())
                send(AUTH_REPLY)
            elif cmd.startswith(b"AUTH XOAUTH2 "):        # the one-line form
                user = sasl_user(line.strip()[13:])
                send(AUTH_REPLY)
            elif cmd.startswith(b"MAIL"):
                sender = line.strip()[10:].split(b">")[0].lstrip(b"<").decode(errors="replace")
                print("MAIL FROM:<%s> as user=%s" % (sender, user), flush=True)
                send(OTHER_REPLY if OTHER_REPLY and sender.lower() != user.lower() else MAIL_REPLY)
            elif cmd.startswith(b"RCPT"):
                send(RCPT_REPLY)
            elif cmd == b"RSET" or cmd == b"NOOP":
                send("250 2.0.0 Ok")
            elif cmd == b"DATA" and CLOSE_AT == "eod":
                send("354 go ahead")
                tail = b"\r\n"      # the message starts at a line start
                while not tail.endswith(b"\r\n.\r\n"):     # the whole message, never answered
                    chunk = f.read1(65536)
                    if not chunk:
                        return
                    tail = (tail + chunk)[-5:]
                close_at("eod")
            elif cmd == b"DATA":
                send("354 go ahead")
                # Drop after 64 KB of the message, or at its end for a smaller one
                # (never answer the final dot).
                got, tail = 0, b"\r\n"      # the message starts at a line start
                while got < 65536:
                    chunk = f.read1(65536)
                    if not chunk:
                        break
                    got += len(chunk)
                    if b"\r\n.\r\n" in tail + chunk:
                        break
                    tail = (tail + chunk)[-4:]
                print("dropping the connection after %d bytes of DATA" % got, flush=True)
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            elif cmd == b"QUIT":
                send("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 not here")
    except Close:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return
    except (OSError, ssl.SSLError):
        return
    finally:
        close_quietly(conn)


def imap_session(conn):
    """Exchange Online's IMAP refusing the token: implicit TLS, one tagged answer to AUTHENTICATE."""
    conn.settimeout(30)
    try:
        conn = ctx.wrap_socket(conn, server_side=True)
        f = conn.makefile("rb")
        def send(s):
            conn.sendall(s.encode() + b"\r\n")
        send("* OK The Microsoft Exchange IMAP4 service is ready. [RABSAE4AUABQADAAMgA3AC4ATgBBAE0AUAA=]")
        while True:
            line = f.readline()
            if not line:
                return
            parts = line.decode(errors="replace").split()
            if len(parts) < 2:
                continue
            tag, cmd = parts[0], parts[1].upper()
            if cmd == "CAPABILITY":
                send("* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN "
                     "IDLE NAMESPACE LITERAL+")
                send(tag + " OK CAPABILITY completed.")
            elif cmd == "AUTHENTICATE":
                if len(parts) < 4:          # no initial response: ask for it
                    send("+ ")
                    f.readline()
                send(tag + " " + IMAP_AUTH_REPLY)
            elif cmd == "LOGOUT":
                send("* BYE Microsoft Exchange Server IMAP4 server signing off.")
                send(tag + " OK LOGOUT completed.")
                return
            else:
                send(tag + " BAD User is not authenticated.")
    except (OSError, ssl.SSLError):
        return
    finally:
        close_quietly(conn)


srv = socket.create_server(("127.0.0.1", port), reuse_port=False)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
while True:
    c, _ = srv.accept()
    threading.Thread(target=imap_session if IMAP_AUTH_REPLY else session, args=(c,), daemon=True).start()
