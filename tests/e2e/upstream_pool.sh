#!/bin/bash
# Issue 13: upstream sessions the way Exchange allows them. The test world's
# Exchange front (tests/world/exchange_front.py, SMTP_EXCHANGE_PORT) refuses a
# fourth concurrent authenticated session per mailbox with 432 4.3.2.
#  a) straight at the front, no proxy: 10 concurrent sessions on one mailbox,
#     each holding its session 10 s: exactly 3 get 235, the rest the 432, and
#     the connection stays open after it (QUIT answered 221)
#  b) through the proxy (max_upstream_sessions: 3, upstream_wait: 30s): 50
#     clients at once on login erp, 2 messages each: all 100 delivered, 0
#     client-visible failures, the front never saw a 4th session (MAX <= 3, no
#     REFUSED) and `ss` sampled every 100 ms never shows more than 3 proxy
#     connections to the front
#  c) 50 one-message sessions in a row: at most 3 upstream sessions opened
#  d) one token request at the identity provider for b), c) and e)
#  e) IMAP obeys max_imap_sessions (2 here): a third login of the mailbox waits
#     until one of two open sessions logs out, Dovecot never sees a third
#  f) pipelined hand-over: a second front (--limit 1, its reply to each end of
#     data held 300 ms, as over a WAN) and max_upstream_sessions: 1; 8 clients
#     at once, one message each: the next client's commands go out behind the
#     previous message before its reply is back (the front logs PIPELINED),
#     all 8 are delivered exactly once, never a second session, never a 432
#  g) the warm AUTH path: while the one session of ms-pipe is held by a client
#     inside a transaction, another client's AUTH is answered 235 at once
#     (the session came back healthy in f), the token is in the cache), not
#     after the holder lets go; both messages are delivered
# XO_POOL_KEYS=0 leaves the pool keys out of the proxy config (to run b-d
# against a proxy that does not know them yet; b-d are then expected to fail).
# XO_POOL_B_CONC=3 runs b) with 3 clients at once instead of 50: a self-check of
# b)'s checks against a proxy without the pool (then b passes, c and d fail).
source "$(dirname "$0")/lib.sh"
world_start
PW='erp-pass word"1'
FRONT=$SMTP_EXCHANGE_PORT
SAMPLER_PID=""
FRONT_F=$((PORT_BASE + 90))
extra_cleanup() {
  [ -n "$SAMPLER_PID" ] && { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
  return 0
}
maildir_count() {  # maildir_count MAILBOX: messages delivered to it so far
  local d=$MAIL_DIR/${1#*@}/${1%@*}/Maildir/new
  if [ -d "$d" ]; then find "$d" -type f | wc -l; else echo 0; fi
}
wait_delivered() {  # wait_delivered MAILBOX N [seconds]: until N messages are there
  local end=$((SECONDS + ${3:-30}))
  while [ "$(maildir_count "$1")" -lt "$2" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
  maildir_count "$1"
}
# pool_run STEP LOGIN RCPT SESSIONS CONC MESSAGES: tests/clients/pool_load.py through the proxy (subjects
# pool-STEP-*, output in $WORK/STEP.out); checks that every message was accepted, then delivered
pool_run() {
  local step=$1 login=$2 rcpt=$3 sessions=$4 conc=$5 msgs=$6 n summary got
  n=$((sessions * msgs))
  XO_PASSWORD=$PW timeout 200 $PY "$SRC/tests/clients/pool_load.py" 127.0.0.1 "$PROXY_SMTP" "$login" erp@contoso.test \
    "$rcpt" --sessions "$sessions" --conc "$conc" --messages "$msgs" --tag "pool-$step" --timeout 90 >"$WORK/$step.out" 2>&1 || true
  summary=$(grep '^SUMMARY' "$WORK/$step.out" || echo "SUMMARY missing")
  check "$step: $sessions sessions, $conc at once: $n messages accepted, 0 client-visible failures ($summary)" \
    grep -q "^SUMMARY sent=$n failed=0 " "$WORK/$step.out"
  { grep '^FAIL' "$WORK/$step.out" | head -3 | sed 's/^/  first failure: /'; } || true
  got=$(wait_delivered "$rcpt" "$n")
  check "$step: all $n delivered to the Maildir ($got)" test "$got" -eq "$n"
}
front_lines() {  # front_lines FROM_LINE: the front's log from that line on
  tail -n +"$1" "$EXCHANGE_LOG"
}
front_max() {  # front_max FROM_LINE MAILBOX: the highest MAX line for MAILBOX since FROM_LINE (0 if none)
  front_lines "$1" | awk -v m="$2" '$2 == "MAX" && $3 == m { if ($4 > x) x = $4 } END { print x + 0 }'
}

echo "== a) 10 concurrent sessions straight at the front, one mailbox"
umask 077
curl -sS -m 10 --cacert "$CA_FILE" "$MS_TOKEN_URL" -d grant_type=client_credentials -d client_id="$MS_SECRET_CLIENT_ID" \
  --data-urlencode client_secret@"$MS_SECRET_FILE" --data-urlencode scope="$MS_SCOPE" \
  | $PY -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' > "$WORK/token"
umask 022
check "a token for alice@contoso.test from the identity provider" test -s "$WORK/token"
pids=()
for i in $(seq 1 10); do
  XO_TOKEN=$(cat "$WORK/token") timeout 60 $PY "$SRC/tests/world/sasl_client.py" smtp "$FRONT" starttls xoauth2 \
    alice@contoso.test --ca "$CA_FILE" --hold 10 --send alice@contoso.test pool-a@contoso.test "pool-a-$i" \
    >"$WORK/a$i.out" 2>&1 &
  pids+=($!)
done
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
n235=$(cat "$WORK"/a*.out | grep -c '^S: 235 ' || true)
n432=$(cat "$WORK"/a*.out | grep -c '^S: 432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded$' || true)
check "a: 3 of 10 sessions authenticated (235: $n235, relayed: $ok)" test "$n235" -eq 3 -a "$ok" -eq 3
check "a: the other 7 got 432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded ($n432)" test "$n432" -eq 7
open_after=$(grep -h -A2 '^S: 432 ' "$WORK"/a*.out | grep -c '^S: 221 ' || true)
check "a: the connection stayed open after the 432 (QUIT answered 221 in $open_after of $n432)" test "$open_after" -eq "$n432"
check "a: the front logged the peak (MAX alice@contoso.test 4: 3 granted + 1 refused at once)" \
  test "$(front_max 1 alice@contoso.test)" -eq 4
got=$(wait_delivered pool-a@contoso.test 3)
check "a: the 3 authenticated sessions' messages were delivered ($got)" test "$got" -eq 3
grep -rqF -f "$WORK/token" "$WORK"/a*.out "$EXCHANGE_LOG" && fail "a: the token appears in a transcript or the front's log" \
  || pass "a: no token in the transcripts or the front's log"

echo "== b) 50 clients at once through the proxy, 2 messages each"
proxy_config "$WORK/proxy.yaml"
pool_keys="    max_upstream_sessions: 3\n    upstream_wait: 30s\n    max_imap_sessions: 2\n"
[ "${XO_POOL_KEYS:-1}" = 0 ] && pool_keys=""
# connection ms-secret (login erp -> erp@contoso.test) goes to the front instead of Postfix;
# ms-pipe (login pipe, the same mailbox) to f)'s front, one session at most
$PY - "$WORK/proxy.yaml" "$FRONT" "$SMTP_STARTTLS_PORT" "$pool_keys" "$FRONT_F" <<'PYEOF'
import sys
path, front, sub, keys, front_f = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].replace("\\n", "\n"), sys.argv[5]
s = open(path).read()
head, rest = s.split("  ms-secret:\n", 1)
block, tail = rest.split("  ms-cert:\n", 1)
old = "smtp: {host: localhost, port: %s, tls: starttls}" % sub
assert old in block
pipe = block.replace(old, "smtp: {host: localhost, port: %s, tls: starttls}" % front_f) + \
    "    max_upstream_sessions: 1\n    upstream_wait: 60s\n"
block = block.replace(old, "smtp: {host: localhost, port: %s, tls: starttls}" % front) + keys
tail = tail.replace("users:\n", "users:\n  - {login: pipe, password_hash: \"%s\", connection: ms-pipe, mailbox: erp@contoso.test}\n"
                    % s.split("login: erp, password_hash: \"", 1)[1].split("\"", 1)[0], 1)
open(path, "w").write(head + "  ms-secret:\n" + block + "  ms-pipe:\n" + pipe + "  ms-cert:\n" + tail)
PYEOF
# Four I/O threads whatever the machine (the default is one fewer than the cores): the pool's
# hand-overs between sessions then also cross threads.
echo "daemon: {io_threads: 4}" >>"$WORK/proxy.yaml"
idp_reset
proxy_start "$WORK/proxy.yaml"
start_line=$(($(wc -l < "$EXCHANGE_LOG") + 1))
# sample the proxy's connections to the front every 100 ms (bounded: 240 s)
: > "$WORK/ss.samples"
( for _ in $(seq 1 2400); do
    [ -e "$WORK/ss.stop" ] && break
    ss -tnH state established "( dport = :$FRONT )" | wc -l >> "$WORK/ss.samples"
    sleep 0.1
  done ) &
SAMPLER_PID=$!
pool_run b erp pool-b@contoso.test 50 "${XO_POOL_B_CONC:-50}" 2
touch "$WORK/ss.stop"; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
ss_max=$(sort -n "$WORK/ss.samples" | tail -1); ss_n=$(wc -l < "$WORK/ss.samples")
check "b: never more than 3 proxy connections to the front in $ss_n ss samples (max ${ss_max:-none})" \
  test -n "$ss_max" -a "${ss_max:-99}" -le 3 -a "$ss_n" -ge 2
fmax=$(front_max "$start_line" erp@contoso.test)
check "b: the front saw at most 3 sessions of erp@contoso.test at once (MAX $fmax)" test "$fmax" -ge 1 -a "$fmax" -le 3
refused=$(front_lines "$start_line" | grep -c ' REFUSED ' || true)
check "b: the front never had to answer 432 ($refused)" test "$refused" -eq 0

echo "== c) 50 one-message sessions in a row"
c_line=$(($(wc -l < "$EXCHANGE_LOG") + 1))
pool_run c erp pool-c@contoso.test 50 1 1
opens=$(front_lines "$c_line" | grep -c ' OPEN erp@contoso.test ' || true)
conns=$(front_lines "$c_line" | grep -c ' CONNECT ' || true)
check "c: at most 3 upstream sessions opened for 50 sessions in a row ($opens authenticated, $conns connections)" \
  test "$opens" -le 3 -a "$conns" -le 3

echo "== e) IMAP: at most max_imap_sessions (2) upstream sessions per mailbox; a third login waits its turn"
# Two IMAP clients of erp hold their sessions until $WORK/imap.go; a third logs
# in meanwhile: it must not reach Dovecot until one of the two has logged out.
imap_client() {  # imap_client NAME: login, then (first two) hold until imap.go, SELECT, LOGOUT
  XO_PASSWORD=$PW timeout 60 $PY - 127.0.0.1 "$PROXY_IMAP" "$WORK/imap.go" "$1" >"$WORK/imap-$1.out" 2>&1 <<'PY' &
import imaplib, os, sys, time
host, port, go, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port, timeout=50)
t0 = time.time()
m.login("erp", os.environ["XO_PASSWORD"])
print("LOGGED IN %.1f" % (time.time() - t0), flush=True)
if name != "third":
    end = time.time() + 40
    while not os.path.exists(go) and time.time() < end:
        time.sleep(0.05)
typ, _ = m.select("INBOX")
print("SELECT", typ, flush=True)
m.logout()
PY
}
imap_conns() { ss -tnH state established "( dport = :$IMAPS_PORT )" | wc -l; }
imap_client one; P1=$!
imap_client two; P2=$!
end=$((SECONDS + 30))
until grep -q "LOGGED IN" "$WORK/imap-one.out" 2>/dev/null && grep -q "LOGGED IN" "$WORK/imap-two.out" 2>/dev/null; do
  [ $SECONDS -lt $end ] || break; sleep 0.1
done
check "e: two IMAP sessions of erp logged in" bash -c "grep -q 'LOGGED IN' '$WORK/imap-one.out' && grep -q 'LOGGED IN' '$WORK/imap-two.out'"
imap_client third; P3=$!
sleep 2
check "e: the third login waits while two are open (not logged in after 2 s)" bash -c "! grep -q 'LOGGED IN' '$WORK/imap-third.out'"
n=$(imap_conns)
check "e: the proxy holds 2 connections to Dovecot's IMAPS port, not 3 ($n)" test "$n" -eq 2
touch "$WORK/imap.go"
wait "$P1" "$P2" "$P3" || true
check "e: the third logs in once one of the two has logged out and selects INBOX ($(tr '\n' ' ' < "$WORK/imap-third.out"))" \
  grep -q '^SELECT OK' "$WORK/imap-third.out"
check "e: the first two selected INBOX too" bash -c "grep -q '^SELECT OK' '$WORK/imap-one.out' && grep -q '^SELECT OK' '$WORK/imap-two.out'"

echo "== d) token requests"
n=$(idp_requests "$MS_SECRET_CLIENT_ID")
check "d: exactly one token request at the identity provider for b), c) and e) ($n)" test "$n" -eq 1

echo "== f) pipelined hand-over: one upstream session, its end-of-data replies 300 ms late"
front_start "$FRONT_F" "$WORK/front-f.log" --limit 1 --eod-delay-ms 300 || fail "f: the second front did not start"
pool_run f pipe pool-f@contoso.test 8 8 1
subjects=$(grep -h '^Subject: pool-f-' "$MAIL_DIR"/contoso.test/pool-f/Maildir/new/* 2>/dev/null | sort | uniq | wc -l)
got=$(maildir_count pool-f@contoso.test)
check "f: each exactly once (8 distinct subjects in $got messages)" test "$subjects" -eq 8 -a "$got" -eq 8
piped=$(grep -c ' PIPELINED erp@contoso.test after end of data' "$WORK/front-f.log" || true)
check "f: the next transaction went out behind a message before its reply came back ($piped of 7 hand-overs)" \
  test "$piped" -ge 4
check "f: one upstream session at most, no 432 (MAX $(awk '$2 == "MAX" {x = $4} END {print x + 0}' "$WORK/front-f.log"))" \
  bash -c "! grep -q ' REFUSED ' '$WORK/front-f.log' && awk '\$2 == \"MAX\" && \$4 > 1 {bad = 1} END {exit bad}' '$WORK/front-f.log'"

echo "== g) AUTH while every session of the mailbox is busy"
# X holds the session inside a transaction until Y has its 235 (or 15 s pass).
XO_PASSWORD=$PW timeout 60 $PY - 127.0.0.1 "$PROXY_SMTP" "$WORK/g.go" X >"$WORK/g-x.out" 2>&1 <<'PY' &
import os, smtplib, sys, time
host, port, go, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = smtplib.SMTP(host, port, timeout=50)
s.login("pipe", os.environ["XO_PASSWORD"])
s.mail("erp@contoso.test"); s.rcpt("pool-g@contoso.test")
print("HOLDING", flush=True)
end = time.time() + 15
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
print("LET GO", "after Y's 235" if os.path.exists(go) else "after 15 s without Y's 235", flush=True)
code, _ = s.data(b"Subject: pool-g-x\r\n\r\nheld\r\n")
print("DATA", code, flush=True)
s.quit()
PY
GX=$!
wait_grep -x HOLDING "$WORK/g-x.out" || fail "g: X did not get inside a transaction"
XO_PASSWORD=$PW timeout 60 $PY - 127.0.0.1 "$PROXY_SMTP" "$WORK/g.go" >"$WORK/g-y.out" 2>&1 <<'PY'
import os, smtplib, sys
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, port, timeout=50)
code, _ = s.login("pipe", os.environ["XO_PASSWORD"])
print("AUTH", code, flush=True)
open(go, "w").close()
s.sendmail("erp@contoso.test", ["pool-g@contoso.test"], b"Subject: pool-g-y\r\n\r\nafter\r\n")
print("SENT", flush=True)
s.quit()
PY
wait "$GX" || true
check "g: Y's AUTH was answered while X held the only session ($(tr '\n' ' ' < "$WORK/g-x.out"))" \
  grep -qx "LET GO after Y's 235" "$WORK/g-x.out"
check "g: Y authenticated (235) and sent, X's message accepted ($(tr '\n' ' ' < "$WORK/g-y.out"))" \
  bash -c "grep -qx 'AUTH 235' '$WORK/g-y.out' && grep -qx SENT '$WORK/g-y.out' && grep -qx 'DATA 250' '$WORK/g-x.out'"
got=$(wait_delivered pool-g@contoso.test 2)
check "g: both delivered ($got)" test "$got" -eq 2

grep -v '^$' "$IDP_ISSUED_TOKENS" > "$WORK/issued" || true
grep -qF -f "$WORK/issued" "$WORK/proxy.log" "$EXCHANGE_LOG" "$WORK/b.out" "$WORK/c.out" "$WORK/f.out" "$WORK/front-f.log" \
  && fail "a token issued in this run appears in the proxy's or the front's log" \
  || pass "no token issued in this run ($(wc -l < "$WORK/issued")) in the proxy's or the front's log"

finish
