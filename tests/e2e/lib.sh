# Shared helpers for the end-to-end tests (sourced, not run).
# Each test: source lib.sh; world_start; proxy_config ...; proxy_start; checks; done.
# Everything started here is stopped by the EXIT trap; daemons write to files
# under $XO_WORK, never to the test's stdout.
set -euo pipefail
SRC=${XO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${XO_BUILD_DIR:-$SRC/build}
PORT_BASE=${XO_PORT_BASE:-21000}
WORK=${XO_WORK:-/tmp/xo-e2e-$(basename "$0" .sh)}
PROXY_BIN=$BUILD/xoauth2-proxy
PY=/usr/bin/python3
PROXY_SMTP=$((PORT_BASE + 20))       # the proxy's SMTP listener (AUTH)
PROXY_TRUSTED=$((PORT_BASE + 21))    # the proxy's trusted-sender listener
PROXY_ADMIN=$((PORT_BASE + 22))
PROXY_IMAP=$((PORT_BASE + 25))       # the proxy's IMAP listener
PROXY_POP3=$((PORT_BASE + 26))       # the proxy's POP3 listener
FAILS=0
PROXY_PID=""

rm -rf "$WORK"
mkdir -p "$WORK"

# What a leaked token looks like: a JWT's header ({"alg", {"typ" or {"kid" in base64url), a JWT's
# header.payload, or a Microsoft-style refresh token. A bare "eyJ" is no sign: random base64 (OAuth
# states, PKCE challenges, sealed values) holds it once in about 260 000 positions.
TOKEN_SHAPE='eyJ(hbGci|0eXAi|raWQi)|eyJ[A-Za-z0-9_-]{10,}\.eyJ|0\.AX[A-Za-z0-9_-]{20,}'
no_token_in() { ! grep -qE "$TOKEN_SHAPE" "$@"; }

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

FRONT_PIDS=()
cleanup() {
  local rc=$?
  declare -F extra_cleanup >/dev/null && extra_cleanup
  for p in "${FRONT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  proxy_stop
  [ -f "$WORK/world/world.env" ] && bash "$SRC/tests/world/stop" "$WORK/world" >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT

world_start() {
  if ! bash "$SRC/tests/world/start" "$WORK/world" "$PORT_BASE" >"$WORK/world-start.out" 2>&1; then
    cat "$WORK/world-start.out"; echo "FAIL: test world did not start"; exit 1
  fi
  # shellcheck disable=SC1091
  source "$WORK/world/world.env"
}

wait_port() {  # wait_port PORT [seconds]
  local end=$((SECONDS + ${2:-10}))
  while [ $SECONDS -lt $end ]; do
    ss -ltnH "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

# wait_grep GREP_ARGS...: `grep -q GREP_ARGS` until it matches, at most 30 s
# (a daemon's log line may still be on its way: never a fixed sleep).
wait_grep() {
  local end=$((SECONDS + 30))
  until grep -q "$@" 2>/dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}

# front_start PORT LOG [exchange_front.py options]: one more Exchange front (the world's own is
# SMTP_EXCHANGE_PORT) before Postfix's submission port, logging to LOG (its stderr to LOG.stderr);
# cleanup stops it. Fails when it does not listen within 10 s.
front_start() {
  local port=$1 log=$2
  shift 2
  $PY "$SRC/tests/world/exchange_front.py" "$port" "$SMTP_STARTTLS_PORT" "$WORLD_ROOT/tls/localhost.pem" \
    "$WORLD_ROOT/tls/localhost.key" "$CA_FILE" "$log" "$@" </dev/null >"$log.stderr" 2>&1 &
  FRONT_PIDS+=($!)
  wait_port "$port" 10
}

hash_password() { printf '%s\n' "$1" | "$PROXY_BIN" hash-password; }

# proxy_config FILE: a config for every connection kind against the test world.
proxy_config() {
  local file=${1:-$WORK/proxy.yaml}
  local h_erp h_scan h_gmail h_gen
  h_erp=$(hash_password 'erp-pass word"1')
  h_scan=$(hash_password 'scanner-pass')
  h_gmail=$(hash_password 'gmail-pass')
  h_gen=$(hash_password 'generic-pass')
  cat > "$file" <<YAML
listeners:
  - {name: submission, protocol: smtp, bind: "127.0.0.1:$PROXY_SMTP", tls: none}
  - {name: trusted, protocol: smtp, bind: "127.0.0.1:$PROXY_TRUSTED", tls: none, trusted_networks: [127.0.0.1/32]}
  - {name: imap, protocol: imap, bind: "127.0.0.1:$PROXY_IMAP"}
  - {name: pop3, protocol: pop3, bind: "127.0.0.1:$PROXY_POP3"}
connections:
  ms-secret:
    provider: microsoft
    flow: client_secret
    tenant: $MS_TENANT_ID
    client_id: $MS_SECRET_CLIENT_ID
    client_secret: {file: $MS_SECRET_FILE}
    authority: $IDP_URL
    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}
    pop3: {host: localhost, port: $POP3S_PORT, tls: implicit}
    ca_file: $CA_FILE
  ms-cert:
    provider: microsoft
    flow: certificate
    tenant: $MS_TENANT_ID
    client_id: $MS_CERT_CLIENT_ID
    certificate: $MS_CERT_FILE
    private_key: $MS_CERT_KEY_FILE
    authority: $IDP_URL
    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}
    pop3: {host: localhost, port: $POP3S_PORT, tls: implicit}
    ca_file: $CA_FILE
  google:
    provider: google
    flow: service_account
    key_file: $GOOGLE_KEY_FILE
    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}
    pop3: {host: localhost, port: $POP3S_PORT, tls: implicit}
    ca_file: $CA_FILE
  generic:
    provider: generic
    flow: client_secret
    client_id: $GENERIC_CLIENT_ID
    client_secret: {file: $GENERIC_SECRET_FILE}
    token_url: $GENERIC_TOKEN_URL
    scope: $GENERIC_SCOPE
    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}
    pop3: {host: localhost, port: $POP3S_PORT, tls: implicit}
    ca_file: $CA_FILE
users:
  - {login: erp, password_hash: "$h_erp", connection: ms-secret, mailbox: erp@contoso.test}
  - {login: scanner, password_hash: "$h_scan", connection: ms-cert, mailbox: scanner@contoso.test}
  - {login: gmail, password_hash: "$h_gmail", connection: google, mailbox: alice@fabrikam.test}
  - {login: generic, password_hash: "$h_gen", connection: generic, mailbox: alice@contoso.test}
senders:
  - {sender: "*@contoso.test", connection: ms-secret}
  - {sender: "printer@fabrikam.test", connection: google, mailbox: alice@fabrikam.test}
tokens: {backoff: 100ms}
log: {level: info}
YAML
}

proxy_start() {  # proxy_start [CONFIG]
  local cfg=${1:-$WORK/proxy.yaml}
  "$PROXY_BIN" --config "$cfg" >>"$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  wait_port "$PROXY_SMTP" 10 || { echo "proxy did not start:"; tail -20 "$WORK/proxy.log"; exit 1; }
}

proxy_stop() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  local end=$((SECONDS + 30))
  while kill -0 "$PROXY_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# interactive_connections FILE NAME...: adds the named interactive-flow
# connections to FILE (before ms-cert), on the test world's upstreams:
# ms-device (Microsoft device code), ms-delegated (Microsoft authorization
# code), gmail-user (Google authorization code). Their refresh tokens go to a
# file store: tokens.store is set to $STORE ($WORK/state/tokens.db, its
# directory 0700).
interactive_connections() {
  local file=$1; shift
  STORE=$WORK/state/tokens.db
  mkdir -p "$WORK/state"; chmod 700 "$WORK/state"
  $PY - "$file" "$STORE" "$@" <<PYEOF
import sys
p, store, names = sys.argv[1], sys.argv[2], sys.argv[3:]
up = """    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}
    pop3: {host: localhost, port: $POP3S_PORT, tls: implicit}
    ca_file: $CA_FILE
"""
known = {
    "ms-device": """  ms-device:
    provider: microsoft
    flow: device_code
    tenant: $MS_TENANT_ID
    client_id: $MS_PUBLIC_CLIENT_ID
    authority: $IDP_URL
""",
    "ms-delegated": """  ms-delegated:
    provider: microsoft
    flow: authorization_code
    tenant: $MS_TENANT_ID
    client_id: $MS_PUBLIC_CLIENT_ID
    authority: $IDP_URL
""",
    "gmail-user": """  gmail-user:
    provider: google
    flow: authorization_code
    client_id: $GOOGLE_CLIENT_ID
    client_secret: {file: $GOOGLE_CLIENT_SECRET_FILE}
    authorize_url: $GOOGLE_AUTHORIZE_URL
    token_url: $GOOGLE_TOKEN_URL
""",
}
s = open(p).read()
s = s.replace("  ms-cert:", "".join(known[n] + up for n in names) + "  ms-cert:", 1)
s = s.replace("tokens: {backoff: 100ms}", "tokens: {backoff: 100ms, store: %s}" % store, 1)
open(p, "w").write(s)
PYEOF
}

idp_control() { curl -sS -m 5 -X POST -H 'Content-Type: application/json' -d "$1" "$IDP_CONTROL/_control" >/dev/null; }
idp_reset() { curl -sS -m 5 -X POST "$IDP_CONTROL/_reset" >/dev/null; }
idp_requests() {  # idp_requests CLIENT_ID -> number of token requests
  curl -sS -m 5 "$IDP_CONTROL/_stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["token_requests"].get(sys.argv[1], 0))' "$1"
}

delivered() { maildir_find "$@" >/dev/null; }   # delivered MAILBOX NEEDLE (waits up to 15 s)
# count_marker NEEDLE: how many delivered messages (all mailboxes) contain NEEDLE
count_marker() { { grep -rlF -- "$1" "$MAIL_DIR" 2>/dev/null || true; } | grep -c /new/ || true; }
# metric NAME: its value on the proxy's /metrics (the admin listener on PROXY_ADMIN)
metric() { curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
wait_metric() {  # wait_metric NAME VALUE SECONDS
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do [ "$(metric "$1")" = "$2" ] && return 0; sleep 0.2; done
  return 1
}

# maildir_find MAILBOX NEEDLE: path of the delivered message containing NEEDLE
maildir_find() {
  local user=${1%@*} domain=${1#*@}
  local dir=$MAIL_DIR/$domain/$user/Maildir/new
  local end=$((SECONDS + 15))
  while [ $SECONDS -lt $end ]; do
    if [ -d "$dir" ]; then
      local f
      f=$(grep -l -F -- "$2" "$dir"/* 2>/dev/null | head -1 || true)
      [ -n "$f" ] && { echo "$f"; return 0; }
    fi
    sleep 0.1
  done
  return 1
}

finish() {
  if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
  echo "all checks passed"
}
