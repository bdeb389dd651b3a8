#!/usr/bin/python3
"""A pipelining client (RFC 2920): after AUTH PLAIN, sends MAIL, RCPTs and DATA
in one write and checks that the replies come back one per command, in order.
usage: pipeline_check.py PORT LOGIN PASSWORD FROM RCPT[,RCPT...] EXPECTED_CODES
EXPECTED_CODES: comma-separated, e.g. 250,550,250,354 (then the message is sent and 250 expected)."""
import socket
import sys

from report import plain_response

port, login, password, sender, rcpts, expected = sys.argv[1:7]
rcpts, expected = rcpts.split(","), [int(c) for c in expected.split(",")]
s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
f = s.makefile("rb")


def replies(n):
    out = []
    for _ in range(n):
        lines = []
        while True:
            line = f.readline().decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        out.append(lines[-1])
    return out


replies(1)
s.sendall(b"EHLO pipeline.test\r\n")
replies(1)
s.sendall(b"AUTH PLAIN " + plain_response(login, password) + b"\r\n")
auth = replies(1)[0]
batch = "MAIL FROM:<%s>\r\n" % sender + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts) + "DATA\r\n"
s.sendall(batch.encode())
got = replies(len(rcpts) + 2)
codes = [int(r[:3]) for r in got]
ok = codes == expected
if ok and codes[-1] == 354:
    s.sendall(b"Subject: pipelined\r\n\r\nhello\r\n.\r\n")
    end = replies(1)[0]
    got.append(end)
    ok = end.startswith("250")
s.sendall(b"QUIT\r\n")
print(("PASS" if ok else "FAIL") + ": pipelined replies " + " | ".join(got) + " (auth: %s)" % auth)
sys.exit(0 if ok else 1)
