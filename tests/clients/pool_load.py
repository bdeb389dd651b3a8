#!/usr/bin/python3
"""Many legacy clients on one login (smtplib, AUTH PLAIN, no TLS): SESSIONS
sessions, CONC of them at once (threads; all CONC start together), each sending
MESSAGES messages with RSET-free back-to-back transactions, then QUIT.
Subjects are "TAG-<session>-<message>". The password is read from XO_PASSWORD.
usage: pool_load.py HOST PORT LOGIN FROM RCPT --sessions N [--conc C] [--messages M] [--tag T] [--timeout S]
Prints one line per failure ("FAIL session i message j: <step> <reply or error>")
and a last line "SUMMARY sent=<accepted messages> failed=<failures> sessions=<N> seconds=<s>";
exits 0 only when every message was accepted."""
import argparse
import os
import smtplib
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    for a in ("host", "port", "login", "sender", "rcpt"):
        ap.add_argument(a)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--conc", type=int, default=1)
    ap.add_argument("--messages", type=int, default=1)
    ap.add_argument("--tag", default="pool")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    password = os.environ["XO_PASSWORD"]
    lock = threading.Lock()
    state = {"next": 0, "sent": 0, "failed": 0}
    start = threading.Barrier(a.conc)

    def fail(i, j, what, n=1):
        with lock:
            state["failed"] += n
            print("FAIL session %d message %d: %s" % (i, j, what), flush=True)

    def one_session(i):
        s, j, done = None, 0, 0
        try:
            s = smtplib.SMTP(a.host, int(a.port), timeout=a.timeout)
            s.ehlo("legacy-client.test")
            s.login(a.login, password, initial_response_ok=True)
            for j in range(1, a.messages + 1):
                subject = "%s-%d-%d" % (a.tag, i, j)
                msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@pool.test>\r\n\r\n"
                       "message %d of session %d\r\n" % (a.sender, a.rcpt, subject, subject, j, i))
                s.sendmail(a.sender, [a.rcpt], msg.encode())
                done += 1
                with lock:
                    state["sent"] += 1
            s.quit()
        except (smtplib.SMTPException, OSError) as e:
            # every message this session did not get accepted counts as a failure
            fail(i, j, "%s %s" % (type(e).__name__, str(e)[:200]), max(1, a.messages - done))
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def worker():
        try:
            start.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        while True:
            with lock:
                i = state["next"] = state["next"] + 1
            if i > a.sessions:
                return
            one_session(i)

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(a.conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("SUMMARY sent=%d failed=%d sessions=%d seconds=%.1f"
          % (state["sent"], state["failed"], a.sessions, time.time() - t0), flush=True)
    return 0 if state["sent"] == a.sessions * a.messages and state["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
