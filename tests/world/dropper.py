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
usage: dropper.py PORT CERT KEY [--auth-reply TEXT] [--mail-reply TEXT]"""
import socket
import ssl
import sys
import threading

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
AUTH_REPLY = opts.get("--auth-reply", "235 2.7.0 Authentication successful")
MAIL_REPLY = opts.get("--mail-reply", "250 2.0.0 Ok")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)


def session(conn):
    conn.settimeout(30)
    f = conn.makefile("rb")
    def send(s):
        conn.sendall(s.encode() + b"\r\n")
    send("220 dropper.test ESMTP")
    tls = False
    try:
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                send("250-dropper.test\r\n250-PIPELINING\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n"
                     + ("250 AUTH XOAUTH2" if tls else "250 STARTTLS"))
            elif cmd == b"STARTTLS":
                send("220 2.0.0 go ahead")
                conn = ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                tls = True
            elif cmd == b"AUTH XOAUTH2":
                send("334 ")
                f.readline()
                send(AUTH_REPLY)
            elif cmd.startswith(b"AUTH XOAUTH2 "):        # the one-line form
                send(AUTH_REPLY)
            elif cmd.startswith(b"MAIL"):
                send(MAIL_REPLY)
            elif cmd.startswith(b"RCPT") or cmd == b"RSET" or cmd == b"NOOP":
                send("250 2.0.0 Ok")
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
    except (OSError, ssl.SSLError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


srv = socket.create_server(("127.0.0.1", port), reuse_port=False)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
while True:
    c, _ = srv.accept()
    threading.Thread(target=session, args=(c,), daemon=True).start()
