#!/bin/bash
# Two proxy replicas sharing one real redis-server (Debian's), behind Debian's
# HAProxy, all on loopback and started here (stopped by the EXIT trap):
#   - `authorize` through replica 1's config; replica 2 relays with that grant;
#     `status` reads the Redis store;
#   - short token lifetime: 20 sessions over both replicas right after expiry
#     all relay, and the test IdP (strict rotation: a refresh token works once)
#     sees exactly one refresh per lifetime, twice, and no reused refresh token;
#   - replica 1 killed mid-run: its clients retry through HAProxy, nothing lost;
#   - a DUMP (and the value) of every Redis key holds no issued token in clear;
#   - Redis down: a cached token still relays, an uncached mailbox gets 454 4.7.0,
#     /status says why; Redis back: reconnected (backoff) and relaying again;
#   - rediss://: the server certificate verified against redis_ca_file, a
#     certificate for another name refused.
source "$(dirname "$0")/lib.sh"
world_start
R2_SMTP=$((PORT_BASE + 50)) R2_ADMIN=$((PORT_BASE + 51)) REDIS_PORT=$((PORT_BASE + 52)) LB_PORT=$((PORT_BASE + 53))
LIFE=15
PW='replica pass'
REDIS_PID="" LB_PID="" R2_PID="" TLS_PIDS=()
mkdir -p "$WORK/redis"; chmod 700 "$WORK/redis"
REDIS_PASS=$(openssl rand -hex 16)
( umask 077; printf '%s\n' "$REDIS_PASS" > "$WORK/redis.pass"
  printf 'port %s\nbind 127.0.0.1\nrequirepass %s\ndir %s\nappendonly yes\nappendfsync always\nsave ""\nlogfile %s\ndaemonize no\n' \
    "$REDIS_PORT" "$REDIS_PASS" "$WORK/redis" "$WORK/redis.log" > "$WORK/redis.conf" )
export XOAUTH2_PROXY_STORE_KEY; XOAUTH2_PROXY_STORE_KEY=$(openssl rand -base64 32)
rcli() { REDISCLI_AUTH=$REDIS_PASS timeout 10 redis-cli --no-auth-warning -p "$REDIS_PORT" "$@"; }
stop_pid() {  # stop_pid PID: TERM, then KILL after 10 s
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  local end=$((SECONDS + 10))
  while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
extra_cleanup() {
  stop_pid "$R2_PID"; stop_pid "$LB_PID"; stop_pid "$REDIS_PID"
  local p; for p in "${TLS_PIDS[@]}"; do stop_pid "$p"; done
}
redis_start() {
  redis-server "$WORK/redis.conf" >/dev/null 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" 10 || { tail -5 "$WORK/redis.log"; echo "FAIL: redis-server did not start"; exit 1; }
}
redis_start

h=$(hash_password "$PW")
replica_config() {  # replica_config FILE SMTP_PORT ADMIN_PORT
  cat > "$1" <<YAML
listeners:
  - {name: submission, protocol: smtp, bind: "127.0.0.1:$2", tls: none}
connections:
  ms-device:
    provider: microsoft
    flow: device_code
    tenant: $MS_TENANT_ID
    client_id: $MS_PUBLIC_CLIENT_ID
    authority: $IDP_URL
    refresh_window: 5s
    smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}
    ca_file: $CA_FILE
users:
  - {login: bob, password_hash: "$h", connection: ms-device, mailbox: bob@contoso.test}
  - {login: carol, password_hash: "$h", connection: ms-device, mailbox: carol@contoso.test}
admin: {bind: "127.0.0.1:$3"}
tokens:
  backoff: 100ms
  store: redis://127.0.0.1:$REDIS_PORT/0
  redis_password: {file: $WORK/redis.pass}
log: {level: info}
YAML
}
replica_config "$WORK/r1.yaml" "$PROXY_SMTP" "$PROXY_ADMIN"
replica_config "$WORK/r2.yaml" "$R2_SMTP" "$R2_ADMIN"
check "replica config with a redis:// store passes --check" "$PROXY_BIN" --config "$WORK/r1.yaml" --check

# --- authorize through replica 1's config (device code, approved at the IdP)
idp_control "{\"token_lifetime\": $LIFE}"
authorize_device() {  # authorize_device MAILBOX OUT
  "$PROXY_BIN" --config "$WORK/r1.yaml" authorize ms-device --mailbox "$1" --device </dev/null >"$2" 2>&1 &
  local pid=$! end=$((SECONDS + 20)) code=""
  until code=$(grep -oE 'enter the code [A-Z0-9]+' "$2" 2>/dev/null | awk '{print $4}') && [ -n "$code" ]; do
    [ $SECONDS -lt $end ] || break; sleep 0.1
  done
  idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"approve\", \"mailbox\": \"$1\"}}"
  end=$((SECONDS + 60))
  while kill -0 $pid 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  kill $pid 2>/dev/null || true
  wait $pid
}
authorize_device bob@contoso.test "$WORK/auth-bob.out"; rc=$?
check "authorize (device code) into Redis: $(tail -1 "$WORK/auth-bob.out")" test $rc -eq 0
check "authorize names the Redis store" grep -q "saved (encrypted) in redis://127.0.0.1:$REDIS_PORT/0" "$WORK/auth-bob.out"
authorize_device carol@contoso.test "$WORK/auth-carol.out"; rc=$?
check "authorize carol too" test $rc -eq 0

# --- the replicas and HAProxy
"$PROXY_BIN" --config "$WORK/r1.yaml" >>"$WORK/r1.log" 2>&1 &
R1_PID=$!
"$PROXY_BIN" --config "$WORK/r2.yaml" >>"$WORK/r2.log" 2>&1 &
R2_PID=$!
wait_port "$PROXY_SMTP" 10 && wait_port "$R2_SMTP" 10 || { tail "$WORK"/r?.log; echo "FAIL: replicas did not start"; exit 1; }
cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn 500
defaults
  mode tcp
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
frontend smtp
  bind 127.0.0.1:$LB_PORT
  default_backend replicas
backend replicas
  balance roundrobin
  server r1 127.0.0.1:$PROXY_SMTP check inter 300ms fall 1 rise 2
  server r2 127.0.0.1:$R2_SMTP check inter 300ms fall 1 rise 2
CFG
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
LB_PID=$!
wait_port "$LB_PORT" 10 || { cat "$WORK/haproxy.log"; echo "FAIL: haproxy did not start"; exit 1; }

send() {  # send LOGIN PORT TAG [TRIES] -> 0 when relayed (retries a failed attempt, bounded)
  local login=$1 port=$2 tag=$3 tries=${4:-1} i
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$tag.eml" "$login@contoso.test" "$login@contoso.test" "$tag"
  for ((i = 0; i < tries; i++)); do
    XO_PASSWORD=$PW timeout 60 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$port" "$login" - "$login@contoso.test" \
      "$login@contoso.test" "$WORK/$tag.eml" >"$WORK/$tag.out" 2>&1 && return 0
    sleep 0.3
  done
  return 1
}
refreshes() { curl -sS -m 5 "$IDP_CONTROL/_stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["'"$1"'"])'; }

# --- an authorization made through replica 1 is used by replica 2
check "replica 2 relays with the grant authorized through replica 1" send bob "$R2_SMTP" r2-first
check "r2-first delivered" maildir_find bob@contoso.test "Subject: r2-first"
T0=$SECONDS
"$PROXY_BIN" --config "$WORK/r1.yaml" status ms-device >"$WORK/status.out" 2>&1 || true
check "status reads the Redis store" grep -q "token store: connected to redis://127.0.0.1:$REDIS_PORT/0" "$WORK/status.out"
check "status: bob's refresh token from Redis" grep -qE 'bob@contoso.test: refresh token obtained .* ago' "$WORK/status.out"

# --- 20 sessions over both replicas right after expiry: one refresh per lifetime
burst() {  # burst ROUND
  local before after pids=() i ok=0
  sleep $((T0 + LIFE + 1 - SECONDS > 0 ? T0 + LIFE + 1 - SECONDS : 0))
  before=$(refreshes refresh_grants)
  local r1_before r2_before
  r1_before=$(grep -c 'session .* end .*messages=1 .*result=ok' "$WORK/r1.log" || true)
  r2_before=$(grep -c 'session .* end .*messages=1 .*result=ok' "$WORK/r2.log" || true)
  for i in $(seq 1 20); do send bob "$LB_PORT" "burst$1-$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
  T0=$SECONDS
  after=$(refreshes refresh_grants)
  check "round $1: 20 sessions through HAProxy right after expiry: $ok relayed" test "$ok" -eq 20
  local missing=0
  for i in $(seq 1 20); do maildir_find bob@contoso.test "Subject: burst$1-$i" >/dev/null || missing=$((missing + 1)); done
  check "round $1: all 20 delivered ($missing missing)" test $missing -eq 0
  check "round $1: the IdP saw exactly one refresh for the 20 ($((after - before)))" test $((after - before)) -eq 1
  local r1_after r2_after
  r1_after=$(grep -c 'session .* end .*messages=1 .*result=ok' "$WORK/r1.log" || true)
  r2_after=$(grep -c 'session .* end .*messages=1 .*result=ok' "$WORK/r2.log" || true)
  check "round $1: both replicas served ($((r1_after - r1_before)) + $((r2_after - r2_before)))" \
    test $((r1_after - r1_before)) -gt 0 -a $((r2_after - r2_before)) -gt 0
}
burst 1
burst 2
check "no refresh token was used twice (strict rotation at the IdP)" test "$(refreshes refresh_reused)" -eq 0

# --- replica 1 killed mid-run: clients reconnect through HAProxy, nothing lost
idp_control '{"token_lifetime": 3599}'
pids=()
for w in 1 2 3 4 5 6; do
  ( for i in 1 2 3 4 5; do send bob "$LB_PORT" "kill-$w-$i" 10 || exit 1; done ) & pids+=($!)
done
sleep 1
kill -KILL "$R1_PID"; wait "$R1_PID" 2>/dev/null || true
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
check "replica 1 killed mid-run: all 6 clients finished their 5 messages ($ok/6)" test $ok -eq 6
missing=0
for w in 1 2 3 4 5 6; do for i in 1 2 3 4 5; do
  maildir_find bob@contoso.test "Subject: kill-$w-$i" >/dev/null || missing=$((missing + 1))
done; done
check "nothing lost: 30 of 30 delivered ($missing missing)" test $missing -eq 0

# --- nothing readable as a token in Redis
leaks=0 keys=0
rcli --scan >"$WORK/keys.txt"
while read -r k; do
  keys=$((keys + 1))
  { rcli DUMP "$k"; case $(rcli TYPE "$k") in hash) rcli HGETALL "$k";; string) rcli GET "$k";; esac; } >>"$WORK/dump.txt"
done <"$WORK/keys.txt"
while read -r t; do [ -n "$t" ] && grep -qF -- "$t" "$WORK/dump.txt" && leaks=$((leaks + 1)); done <"$IDP_ISSUED_TOKENS"
check "Redis holds $keys key(s); none of $(wc -l <"$IDP_ISSUED_TOKENS") issued tokens in clear in DUMP or values ($leaks)" \
  test $keys -ge 2 -a $leaks -eq 0
# (The values are sealed base64, which held a bare "eyJ" about once in a hundred runs.)
check "no JWT or refresh token shape in Redis" bash -c "! grep -qaE '$TOKEN_SHAPE' '$WORK/dump.txt'"

# --- Redis down: cached tokens go on, the rest get a temporary failure, /status says why
# Replica 2 may still hold burst 2's 15 s token, which would need Redis to refresh mid-check:
# once it has expired, the warm send refreshes it into a 3599 s token (lifetime set above).
wait_s=$((T0 + LIFE + 1 - SECONDS)); [ "$wait_s" -gt 0 ] && sleep "$wait_s"
send bob "$R2_SMTP" warm 3 || true   # bob's long-lived token cached in replica 2
stop_pid "$REDIS_PID"; REDIS_PID=""
check "Redis down: bob (cached token) still relays" send bob "$R2_SMTP" redis-down-bob
send carol "$R2_SMTP" redis-down-carol || true
check "Redis down: carol (no cached token) gets 454 4.7.0" grep -q '^RESULT 454 4.7.0' "$WORK/redis-down-carol.out"
curl -sS -m 5 "http://127.0.0.1:$R2_ADMIN/status" >"$WORK/status-down.json"
check "/status: token store down, with the reason" $PY -c '
import json,sys; s=json.load(open(sys.argv[1]))["token_store"]
sys.exit(0 if s["state"] == "down" and "unavailable" in s["detail"] else 1)' "$WORK/status-down.json"
$PY -c 'import json,sys; print("  " + json.load(open(sys.argv[1]))["token_store"]["detail"])' "$WORK/status-down.json"
redis_start
up=""
for _ in $(seq 1 100); do
  curl -sS -m 5 "http://127.0.0.1:$R2_ADMIN/status" | grep -q '"state": "up"' && { up=1; break; }
  sleep 0.1
done
check "Redis back: replica 2 reconnected within 10 s" test -n "$up"
check "Redis back: carol relays" send carol "$R2_SMTP" redis-back-carol 3
stop_pid "$R2_PID"; R2_PID=""
check "replica 2 stops cleanly on SIGTERM (Redis thread ended first)" grep -q 'xoauth2-proxy stopped' "$WORK/r2.log"
check "no token or password in the replicas' logs" bash -c "! grep -qF -e '$REDIS_PASS' -e '$XOAUTH2_PROXY_STORE_KEY' '$WORK/r1.log' '$WORK/r2.log'"
# --- rediss://: verified TLS (the world's CA; a certificate for another name is refused)
TLS_OK=$((PORT_BASE + 54)) TLS_WRONG=$((PORT_BASE + 55))
for pair in "$TLS_OK:localhost" "$TLS_WRONG:wrong.example.test"; do
  port=${pair%%:*} name=${pair#*:}
  mkdir -p "$WORK/redis-$port"
  ( umask 077; printf 'port 0\ntls-port %s\nbind 127.0.0.1\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\nrequirepass %s\ndir %s\nsave ""\nlogfile %s\n' \
    "$port" "$WORLD_ROOT/tls/$name.pem" "$WORLD_ROOT/tls/$name.key" "$CA_FILE" "$REDIS_PASS" "$WORK/redis-$port" "$WORK/redis-$port.log" >"$WORK/redis-$port.conf" )
  redis-server "$WORK/redis-$port.conf" >/dev/null 2>&1 &
  TLS_PIDS+=($!)
  wait_port "$port" 10 || fail "TLS redis-server on $port did not start"
  sed -e "s|store: redis://127.0.0.1:$REDIS_PORT/0|store: rediss://localhost:$port/0\n  redis_ca_file: $CA_FILE|" "$WORK/r1.yaml" >"$WORK/tls-$port.yaml"
  timeout 60 "$PROXY_BIN" --config "$WORK/tls-$port.yaml" status ms-device >"$WORK/status-tls-$port.out" 2>&1 || true
done
check "rediss:// with the CA: connected (status)" grep -q "token store: connected to rediss://localhost:$TLS_OK/0" "$WORK/status-tls-$TLS_OK.out"
check "rediss:// to a certificate for another name: refused" grep -qE "certificate verify failed|TLS handshake failed" "$WORK/status-tls-$TLS_WRONG.out"
grep -m1 -E "certificate verify failed|TLS handshake failed" "$WORK/status-tls-$TLS_WRONG.out" | sed 's/^/  /'
finish
