#!/usr/bin/python3
"""Writes the seed corpora under tests/fuzz/corpus/TARGET/ from the
transcripts in tests/unit/data (machines/ and transcripts/), the base config
and the config error cases, plus a few token endpoint answers. Run it again
after a transcript is added; findings (crashes fixed) are kept, named
crash-*, and never rewritten."""
import hashlib, json, os, re, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "unit", "data")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def unescape(s):
    return re.sub(r"\\(r|n|x[0-9a-fA-F]{2})",
                  lambda m: {"r": "\r", "n": "\n"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), s)


def load(path):
    opts, steps = set(), []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("@ "):
            opts.add(line[2:])
            continue
        if len(line) >= 2 and line[1] == ":":
            steps.append((line[0], line[3:] if len(line) > 3 else ""))
    return opts, steps


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1", "replace") if not all(ord(c) < 256 for c in data) else data.encode("latin-1")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def client(steps):
    return "".join(unescape(t) + "\r\n" for k, t in steps if k == "C")


def server(steps):
    return "".join(t + "\r\n" for k, t in steps if k == "S")


def machine_options(opts, proto):
    o = 0
    if "starttls" in opts: o |= 1
    if "tls-required" not in opts: o |= 4
    if proto == "smtp":
        if "trusted" in opts: o |= 8
        if "normalize" in opts: o |= 16
    return o


def main():
    mdir, tdir = os.path.join(DATA, "machines"), os.path.join(DATA, "transcripts")
    for f in sorted(os.listdir(mdir)):
        proto, base = f.split("_")[0], f[:-4]
        opts, steps = load(os.path.join(mdir, f))
        c = client(steps)
        write(proto + "_machine", base, bytes([machine_options(opts, proto), 0]) + c.encode("latin-1"))
        if proto == "smtp":
            write("smtp_command", base, c)
            # DATA bodies: the client's bytes after each DATA up to its end.
            for i, m in enumerate(re.finditer(r"\r\nDATA\r\n(.*?\r\n\.\r\n)", c, re.S)):
                write("smtp_data", "%s-%d" % (base, i), b"\x05" + m.group(1).encode("latin-1"))
        elif proto == "imap":
            write("imap_command", base, b"\x07\x01" + c.encode("latin-1"))
        elif proto == "pop3":
            write("pop3_command", base, c)
    for f in sorted(os.listdir(tdir)):
        proto, base = f.split("_")[0], f[:-4]
        opts, steps = load(os.path.join(tdir, f))
        s, c = server(steps), client(steps)
        if proto == "smtp":
            write("smtp_reply", base, b"\x0b" + s.encode("latin-1"))
            write("smtp_command", base, c)
        elif proto == "imap":
            write("imap_response", base, b"\x0b" + s.encode("latin-1"))
            write("imap_command", base, b"\x07\x01" + c.encode("latin-1"))
        elif proto == "pop3":
            write("pop3_response", base, b"\x0b\x01" + s.encode("latin-1"))
            write("pop3_command", base, s + c)
        # SASL: every base64-looking argument and challenge in the transcript.
        for k, t in steps:
            for w in re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", t):
                write("sasl", hashlib.sha1(w.encode()).hexdigest()[:12], w)
    write("smtp_data", "plain", b"\x03Subject: hi\r\n\r\nbody\r\n..stuffed\r\n.\r\n")
    write("smtp_data", "smuggling", b"\x01a\r\n\n.\n\r\nb\r\n.\r\nMAIL FROM:<x>\r\n")
    write("sasl", "plain", "AGVycABzZWNyZXQ=")
    write("sasl", "challenge", "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==")
    bodies = [
        (0, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ0"}),
        (0, {"access_token": "a", "expires_in": "3600", "scope": "https://outlook.office365.com/.default", "refresh_token": "r"}),
        (3, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
             "error_codes": [7000215]}),
        (4, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        (7, {"error": "temporarily_unavailable"}),
    ]
    for i, (status, body) in enumerate(bodies):
        write("token_json", str(i), bytes([status]) + json.dumps(body).encode())
    write("token_json", "html", b"\x08<html>Service Unavailable</html>")
    # The API path: option bytes (chunk, kind, status high/low, refreshed), envelope lines, a message.
    env = b"MAIL FROM:<erp@contoso.test>\nRCPT TO:<alice@contoso.test>\nRCPT TO:<Hidden@Contoso.test>\nDATA\n"
    msg = b"To: Alice <alice@contoso.test>\r\nCc: bob@contoso.test,\r\n carol@contoso.test\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"
    write("smtp_api", "graph-202", bytes([7, 0, 0, 102, 0]) + env + msg)
    write("smtp_api", "gmail-200", bytes([3, 1, 0, 100, 0]) + env + msg)
    write("smtp_api", "graph-403", bytes([5, 0, 1, 47, 0]) +
          b'{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}')
    write("smtp_api", "graph-429", bytes([5, 0, 1, 73, 1]) + b"120")
    write("smtp_api", "gmail-400", bytes([5, 1, 1, 44, 0]) +
          b'{"error":{"code":400,"message":"Precondition check failed.","status":"FAILED_PRECONDITION"}}')
    base = open(os.path.join(DATA, "config_base.yaml"), encoding="utf-8").read()
    write("config", "base", base.encode("utf-8"))
    # Each error case of config_errors.txt applied to the base, as the unit test does.
    lines = base.split("\n")
    case, repl = None, []
    def flush():
        if case is None:
            return
        name, at = case
        new = list(lines)
        if at == 0:
            new += repl
        elif 0 < at <= len(new):
            new[at - 1:at] = repl
        write("config", name, "\n".join(new).encode("utf-8"))
    for line in open(os.path.join(DATA, "config_errors.txt"), encoding="utf-8").read().split("\n"):
        m = re.match(r"^(\w+) (\d+) -> ", line)
        if m and case is None:
            case, repl = (m.group(1), int(m.group(2))), []
        elif case is not None and line == "":
            flush()
            case = None
        elif case is not None and not line.startswith("~ "):
            repl.append(line)
    flush()


if __name__ == "__main__":
    main()
    sys.exit(0)
