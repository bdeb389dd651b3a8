#!/bin/bash
# No test log holds a secret, an access token or a password. Collects every
# secret the suite's test worlds generated (client secrets, private keys,
# service account keys), every access token the identity providers issued
# (recorded by the IdP in a 0600 file that is not a log), and the local
# passwords the tests use, then searches every log and output file the suite
# wrote under the build directory's e2e/ folder.
set -euo pipefail
BUILD=${XO_BUILD_DIR:?}
E2E=$BUILD/e2e
[ -d "$E2E" ] || { echo "no e2e output under $E2E: run the suite first"; exit 1; }
/usr/bin/python3 - "$E2E" "${XO_SOURCE_DIR:-.}/tests/e2e/lib.sh" <<'PYEOF'
import glob, os, re, sys
e2e, lib = sys.argv[1], sys.argv[2]
needles = set()
for world in glob.glob(os.path.join(e2e, "*", "world")) + glob.glob(os.path.join(e2e, "*", "*", "world")):
    for f in glob.glob(os.path.join(world, "secrets", "*")):
        text = open(f, errors="replace").read()
        if "PRIVATE KEY" in text:   # key material: every base64 line of it
            needles.update(l for l in text.replace("\\n", "\n").splitlines() if len(l) > 40 and "-----" not in l)
        elif not f.endswith(".crt"):
            needles.add(text.strip())
    issued = os.path.join(world, "idp", "issued-tokens")
    if os.path.exists(issued):
        for line in open(issued):
            tok = line.strip()
            if tok:
                needles.add(tok)
                if tok.count(".") == 2:
                    needles.add(tok.split(".")[2][:40])   # its signature alone
import base64
for pw in re.findall(r"hash_password '([^']+)'", open(lib).read()):
    needles.add(pw)
    needles.add(base64.b64encode(pw.encode()).decode().rstrip("="))   # as AUTH LOGIN sends it
needles = {n for n in needles if len(n) >= 8}
# Logs: daemon logs, client transcripts and test outputs (not configs, keys or mail).
logs = [p for p in glob.glob(os.path.join(e2e, "**", "*"), recursive=True)
        if os.path.isfile(p) and (p.endswith((".log", ".out", ".stderr")) or "/log/" in p)]
found = 0
for p in logs:
    try:
        data = open(p, errors="replace").read()
    except OSError:
        continue
    for n in needles:
        if n in data:
            found += 1
            print("LEAK: %s contains a secret (%s...)" % (p, n[:4]))
print("scanned %d files for %d secrets, tokens and passwords: %d leak(s)" % (len(logs), len(needles), found))
sys.exit(1 if found else 0)
PYEOF
