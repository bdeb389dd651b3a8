#!/usr/bin/python3
"""Slow and stalling SMTP clients for the listener limits (issue 12).
usage: slow_client.py CASE PORT
  trickle: one byte a second of a command line; the proxy must cut it off
           (421 4.4.2) within command_timeout, not keep the session forever.
  stall-data: after 354, part of a message, then silence; the proxy must
           close within data_timeout and deliver nothing.
  session: NOOP every second; the proxy must end it at session_timeout.
Prints one line "RESULT <seconds> <last reply or 'closed'>". Bounded: 60 s."""
import socket
import sys
import time

case, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")


def reply():
    last = ""
    while True:
        line = f.readline().decode(errors="replace").rstrip("\r\n")
        if not line:
            return "closed"
        last = line
        if len(line) < 4 or line[3] != "-":
            return last


reply()
start = time.monotonic()
last = "closed"
try:
    if case == "trickle":
        s.sendall(b"EHLO slow.test\r\n")
        reply()
        s.settimeout(1.5)
        for b in b"NOOP and a very long argument that never ends " * 4:
            if time.monotonic() - start > 60:
                break
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            try:
                got = s.recv(1000).decode(errors="replace").strip()
                last = got if got else "closed"
                break
            except socket.timeout:
                pass
    elif case == "stall-data":
        s.sendall(b"EHLO slow.test\r\nMAIL FROM:<erp@contoso.test>\r\n")
        reply(), reply()
        s.sendall(b"RCPT TO:<alice@contoso.test>\r\n")
        reply()
        s.sendall(b"DATA\r\n")
        reply()
        s.sendall(b"Subject: STALLED-MESSAGE\r\n\r\npart of a message\r\n")
        s.settimeout(60)
        last = reply()
    elif case == "session":
        s.sendall(b"EHLO slow.test\r\n")
        reply()
        while time.monotonic() - start < 60:
            s.sendall(b"NOOP\r\n")
            last = reply()
            if not last.startswith("250"):
                break
            time.sleep(1)
except OSError as e:
    last = "closed (%s)" % e.__class__.__name__
print("RESULT %.1f %s" % (time.monotonic() - start, last))
