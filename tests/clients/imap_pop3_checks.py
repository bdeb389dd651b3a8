#!/usr/bin/python3
"""Legacy readers through the proxy, with Python's imaplib and poplib and a raw
socket for what imaplib cannot send (a LOGIN with literals, IDLE).
usage: imap_pop3_checks.py CHECK ARGS...   (prints PASS/FAIL lines, exits 1 on a FAIL)
  login-literal PORT USER PASSWORD
  fetch-big PORT USER PASSWORD FILE       APPEND FILE, FETCH it back, compare bytes
  idle PORT USER PASSWORD SMTP_PORT SMTP_USER SMTP_PASSWORD MAILBOX
  pop3-retr PORT USER PASSWORD SUBJECT_TAG FILE
  imap-login PORT USER PASSWORD            LOGIN + SELECT INBOX
  imap-fail PORT USER PASSWORD EXPECT      expects a tagged NO containing EXPECT
  pop3-fail PORT USER PASSWORD EXPECT
"""
import imaplib
import poplib
import smtplib
import socket
import sys
import time

from report import check, exit_status


def recv_until(s, marker, limit=10):
    data, end = b"", time.time() + limit
    while marker not in data and time.time() < end:
        s.settimeout(max(0.1, end - time.time()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def login_literal(port, user, password):
    """LOGIN with both arguments as synchronising literals, as old clients send them."""
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    recv_until(s, b"\r\n")
    u, p = user.encode(), password.encode()
    s.sendall(b"a1 LOGIN {%d}\r\n" % len(u))
    cont = recv_until(s, b"\r\n")
    check("server asks for the literal", cont.startswith(b"+"), cont.decode(errors="replace").strip())
    s.sendall(u + b" {%d}\r\n" % len(p))
    recv_until(s, b"\r\n")
    s.sendall(p + b"\r\n")
    answer = recv_until(s, b"a1 ")
    answer += recv_until(s, b"\r\n", 2) if not answer.endswith(b"\r\n") else b""
    check("LOGIN with literals {n} (password with spaces and quotes)", b"a1 OK" in answer, answer.decode(errors="replace").strip()[:120])
    s.sendall(b"a2 LOGIN {3+}\r\nbad {5+}\r\nwrong\r\n")   # non-synchronising literals, wrong user
    answer = recv_until(s, b"\r\n")
    s.close()


def fetch_big(port, user, password, path):
    data = open(path, "rb").read()
    M = imaplib.IMAP4("127.0.0.1", int(port))
    M.login(user, password)
    typ, resp = M.append("INBOX", None, None, data)
    check("APPEND of %d bytes" % len(data), typ == "OK", resp[0].decode()[:60])
    M.select("INBOX")
    typ, ids = M.search(None, "SUBJECT", data.split(b"Subject: ")[1].split(b"\r\n")[0].decode())
    last = ids[0].split()[-1]
    t0 = time.time()
    typ, msg = M.fetch(last, "(BODY.PEEK[])")
    took = time.time() - t0
    got = msg[0][1]
    check("FETCH of the %d MB message byte-identical" % (len(data) // 1048576), got == data,
          "%d bytes in %.2f s (%.1f MB/s)" % (len(got), took, len(got) / 1048576 / max(took, 1e-6)))
    M.logout()


def idle(port, user, password, smtp_port, smtp_user, smtp_password, mailbox):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    recv_until(s, b"\r\n")
    s.sendall(b'a1 LOGIN "%s" "%s"\r\n' % (user.encode(), password.replace("\\", "\\\\").replace('"', '\\"').encode()))
    check("LOGIN (quoted) before IDLE", b"a1 OK" in recv_until(s, b"a1 "))
    recv_until(s, b"\r\n", 1)
    s.sendall(b"a2 SELECT INBOX\r\n")
    sel = recv_until(s, b"a2 OK")
    exists = [int(l.split()[1]) for l in sel.split(b"\r\n") if l.endswith(b" EXISTS")]
    s.sendall(b"a3 IDLE\r\n")
    check("IDLE accepted", recv_until(s, b"\r\n").startswith(b"+"))
    m = smtplib.SMTP("127.0.0.1", int(smtp_port), timeout=30)
    m.login(smtp_user, smtp_password)
    m.sendmail(mailbox, [mailbox], b"Subject: wake up\r\n\r\nnew mail for IDLE\r\n")
    m.quit()
    woke = recv_until(s, b"EXISTS", 15)
    check("IDLE woken by a new delivery", b"EXISTS" in woke, woke.decode(errors="replace").strip()[:60])
    s.sendall(b"DONE\r\n")
    check("IDLE ended with DONE", b"a3 OK" in recv_until(s, b"a3 "))
    s.sendall(b"a4 LOGOUT\r\n")
    recv_until(s, b"a4 ")
    s.close()


def pop3_retr(port, user, password, tag, path):
    want = open(path, "rb").read().replace(b"\r\n", b"\n")
    p = poplib.POP3("127.0.0.1", int(port), timeout=30)
    p.user(user)
    check("POP3 USER/PASS", p.pass_(password).startswith(b"+OK"))
    count, _ = p.stat()
    found = None
    for i in range(count, 0, -1):
        resp, lines, _ = p.retr(i)
        body = b"\n".join(lines) + b"\n"
        if tag.encode() in body:
            found = body
            break
    check("POP3 RETR byte-identical (after the trace headers)", found is not None and found.endswith(want),
          "%d bytes" % (len(found) if found else 0))
    p.quit()


def imap_login(port, user, password):
    M = imaplib.IMAP4("127.0.0.1", int(port))
    typ, resp = M.login(user, password)
    check("IMAP LOGIN as %s" % user, typ == "OK" and b"CAPABILITY" in resp[0], resp[0].decode()[:50])
    typ, resp = M.select("INBOX")
    check("IMAP SELECT INBOX as %s" % user, typ == "OK", "%s messages" % resp[0].decode())
    M.logout()


def imap_fail(port, user, password, expect):
    M = imaplib.IMAP4("127.0.0.1", int(port))
    try:
        M.login(user, password)
        check("IMAP LOGIN %s refused" % user, False, "it succeeded")
    except imaplib.IMAP4.error as e:
        check("IMAP LOGIN %s refused with %s" % (user, expect), expect in str(e), str(e))
        print("REPLY " + str(e))


def pop3_fail(port, user, password, expect):
    p = poplib.POP3("127.0.0.1", int(port), timeout=30)
    p.user(user)
    try:
        p.pass_(password)
        check("POP3 PASS %s refused" % user, False, "it succeeded")
    except poplib.error_proto as e:
        check("POP3 PASS %s refused with %s" % (user, expect), expect in str(e), str(e))
        print("REPLY " + str(e))


fn = {"login-literal": login_literal, "fetch-big": fetch_big, "idle": idle, "pop3-retr": pop3_retr,
      "imap-login": imap_login, "imap-fail": imap_fail, "pop3-fail": pop3_fail}[sys.argv[1]]
fn(*sys.argv[2:])
sys.exit(exit_status())
