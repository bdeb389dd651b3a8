"""What the test client scripts have in common: PASS/FAIL lines that the e2e
scripts count (one per check, flushed), the exit status they end with, and the
AUTH PLAIN response. Imported by faults.py, hostile.py and imap_pop3_checks.py
(a script's own directory is on sys.path)."""
import base64

FAILS = 0


def check(what, ok, detail=""):
    global FAILS
    print(("PASS: " if ok else "FAIL: ") + what + (": " + detail if detail else ""), flush=True)
    if not ok:
        FAILS += 1


def info(text):
    print("  INFO: " + text, flush=True)


def exit_status():
    """1 once any check failed, else 0."""
    return 1 if FAILS else 0


def plain_response(login, password):
    """base64("\\0" login "\\0" password), login and password as str or bytes."""
    as_bytes = [v if isinstance(v, bytes) else v.encode() for v in (login, password)]
    return base64.b64encode(b"\0" + as_bytes[0] + b"\0" + as_bytes[1])
