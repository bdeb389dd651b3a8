#!/bin/bash
# Fault tests (issue 12, "What it must show"). Each check names the reply the client
# must get; nothing may be lost or sent twice: a client told 4xx keeps its message and
# sends it again (here: through a healthy connection), and the Maildir then holds that
# message's unique Subject exactly once.
#   a. the upstream closing the TCP connection at each SMTP step (tests/world/dropper.py
#      --close-at): greeting, EHLO, STARTTLS, AUTH -> 454 4.7.0 at AUTH; MAIL, RCPT, DATA,
#      end of data -> 451 4.4.2 (never 250: at end of data the upstream may have taken the
#      message, RFC 1047); MAIL/RCPT/DATA pipelined: one reply each; a close before the reply
#      to MAIL is first retried once on a fresh session; an upstream restarted while its session
#      sat idle in the pool -> the next MAIL 250; a trusted sender whose upstream closes at the
#      greeting -> 451 4.7.0
#   b. the identity provider down (port closed), slow (beyond http_timeout), answering a
#      non-JSON 200, truncated JSON, an HTML 500 -> 454 4.7.0 at AUTH, a log line naming the
#      connection, /status shows the connection failing
#   c. a client vanishing mid-DATA: nothing delivered, the next client of the mailbox relays;
#      a client leaving a transaction open upstream (QUIT after RCPT, ten errors, QUIT after
#      every recipient was refused): the next client of the mailbox relays (not "503 nested MAIL")
#   d. 1000 sessions opened at once: each greeted (the 1001st gets 421 4.3.2), then a message
#      relays, sessions_active back to 0, RSS bounded
#   e. an upstream certificate signed by an unknown CA -> 454 4.7.0, the log names it
# After each part: the daemon alive, /healthz 200, /status JSON.
source "$(dirname "$0")/lib.sh"
FAULTS="$PY $SRC/tests/clients/faults.py"
PROXY_FLOOD=$((PORT_BASE + 30))     # smtp listener for the 1000 sessions
DROP_BASE=$((PORT_BASE + 40))       # droppers, one per step: B+40..B+47
BADCA_PORT=$((PORT_BASE + 48))      # an upstream whose certificate no known CA signed
IDP_DOWN_PORT=$((PORT_BASE + 49))   # nothing listens here
RESTART_PORT=$((PORT_BASE + 50))    # a dropper restarted while the proxy holds an idle session to it
STEPS=(greeting ehlo starttls auth mail rcpt data eod)
FLOOD_N=1000
PW='erp-pass word"1'
run=$RANDOM$RANDOM
DROPPER_PIDS=()
extra_cleanup() {
  local p
  for p in "${DROPPER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${DROPPER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

world_start
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true     # 1000 clients + 1000 sessions + upstreams
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 2600 ] || { echo "FAIL: ulimit -n $(ulimit -n) is below 2600"; exit 1; }

# The misbehaving upstreams: one dropper per step; one with a certificate from an unknown CA.
for i in "${!STEPS[@]}"; do
  $PY "$SRC/tests/world/dropper.py" $((DROP_BASE + i)) "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" \
    --close-at "${STEPS[$i]}" >"$WORK/dropper-${STEPS[$i]}.log" 2>&1 &
  DROPPER_PIDS+=($!)
done
mkdir -p "$WORK/badca"
(
  cd "$WORK/badca"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Unknown Test CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout localhost.key -out localhost.csr -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
  openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf \
    -out localhost.pem 2>/dev/null
) || { echo "FAIL: could not make the unknown CA's certificate"; exit 1; }
$PY "$SRC/tests/world/dropper.py" "$BADCA_PORT" "$WORK/badca/localhost.pem" "$WORK/badca/localhost.key" \
  >"$WORK/dropper-badca.log" 2>&1 &
DROPPER_PIDS+=($!)
for i in "${!STEPS[@]}"; do wait_port $((DROP_BASE + i)) 10 || { echo "FAIL: dropper ${STEPS[$i]} did not start"; exit 1; }; done
wait_port "$BADCA_PORT" 10 || { echo "FAIL: the unknown-CA dropper did not start"; exit 1; }
start_restart_dropper() {
  $PY "$SRC/tests/world/dropper.py" "$RESTART_PORT" "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" \
    >>"$WORK/dropper-restart.log" 2>&1 &
  RESTART_PID=$!
  DROPPER_PIDS+=($RESTART_PID)
  wait_port "$RESTART_PORT" 10 || { echo "FAIL: the restartable dropper did not start"; exit 1; }
}
start_restart_dropper

proxy_config
steps_csv=$(IFS=,; echo "${STEPS[*]}")
$PY - "$WORK/proxy.yaml" "$steps_csv" "$DROP_BASE" "$BADCA_PORT" "$IDP_DOWN_PORT" "$PROXY_FLOOD" "$PROXY_ADMIN" "$FLOOD_N" \
  "$RESTART_PORT" <<'PYEOF'
import re, sys
p, steps, drop_base, badca, idp_down, flood, admin, n, restart = sys.argv[1:10]
s = open(p).read()
block = s[s.index("  ms-secret:"):s.index("  ms-cert:")]
port = re.search(r"smtp: \{host: localhost, port: (\d+), tls: starttls\}", block).group(1)
authority = re.search(r"authority: (\S+)", block).group(1)
extra, users = "", ""
h = re.search(r'login: erp, password_hash: "([^"]+)"', s).group(1)
def conn(name, smtp_port=port, auth=authority):
    global extra, users
    extra += block.replace("ms-secret:", name + ":").replace("port: %s," % port, "port: %s," % smtp_port) \
                  .replace("authority: " + authority, "authority: " + auth)
    users += '  - {login: %s, password_hash: "%s", connection: %s, mailbox: erp@contoso.test}\n' % (name, h, name)
for i, step in enumerate(steps.split(",")):
    conn("drop-" + step, int(drop_base) + i)
conn("badca", badca)
conn("drop-restart", restart)
conn("idp-down", auth="https://localhost:" + idp_down)
for mode in ("slow", "garbage200", "truncated", "http500"):
    conn("idp-" + mode)
s = s.replace("  ms-cert:", extra + "  ms-cert:", 1)
s = s.replace("senders:\n", users + "senders:\n  - {sender: \"trusted-drop@contoso.test\", connection: drop-greeting, "
              "mailbox: erp@contoso.test}\n", 1)
s = s.replace("connections:\n", '  - {name: flood, protocol: smtp, bind: "127.0.0.1:%s", tls: none, '
              'max_sessions: %s, max_sessions_per_client: %s}\nconnections:\n' % (flood, n, n), 1)
s = s.replace("tokens: {backoff: 100ms}", 'tokens: {backoff: 100ms, http_timeout: 2s, max_attempts: 2}\n'
              'admin: {bind: "127.0.0.1:%s"}' % admin, 1)
open(p, "w").write(s)
PYEOF
"$PROXY_BIN" --check --config "$WORK/proxy.yaml" >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out"; echo "FAIL: config"; exit 1; }
proxy_start

smtp() {  # smtp NAME PORT LOGIN FROM TO SUBJECT -> the RESULT line (the message file is kept for a resend)
  local msg="$WORK/$1.eml"
  [ -f "$msg" ] || $PY "$SRC/tests/clients/make_message.py" "$msg" "$4" "$5" "$6"
  XO_PASSWORD=$PW timeout 120 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$2" "$3" - "$4" "$5" "$msg" \
    >"$WORK/$1.out" 2>&1 || true
  grep -E '^(AUTH|RESULT)' "$WORK/$1.out" | tail -1
}
expect() {  # expect NAME PATTERN ACTUAL
  if [[ "$3" =~ $2 ]]; then pass "$1: $3"; else fail "$1: expected /$2/, got: $3"; fi
}
healthy() {  # healthy PART: the daemon alive, /healthz 200, /status JSON that parses
  check "$1: the daemon is alive" kill -0 "$PROXY_PID"
  local code
  code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PROXY_ADMIN/healthz" 2>/dev/null || true)
  check "$1: /healthz answers 200 (got ${code:-nothing})" test "$code" = 200
  check "$1: /status is JSON" bash -c "curl -sS -m 5 http://127.0.0.1:$PROXY_ADMIN/status | $PY -c 'import json,sys; json.load(sys.stdin)'"
}
# resend NAME SUBJECT: the client sends the message it was told 4xx for again, through a healthy
# connection (login erp), and it is then in the Maildir exactly once.
resend() {
  local r n
  r=$(smtp "$1" "$PROXY_SMTP" erp erp@contoso.test alice@contoso.test "$2")
  expect "$1: the client's retry of the same message: 250" '^RESULT 250' "$r"
  if maildir_find alice@contoso.test "Subject: $2" >/dev/null; then
    sleep 1
    n=$(count_marker "Subject: $2")
    check "$1: delivered exactly once after the retry ($n)" test "$n" -eq 1
  else
    fail "$1: not delivered after the retry"
  fi
}

echo "== a. the upstream closes the TCP connection at each SMTP step"
for step in "${STEPS[@]}"; do
  subj="fault-$step-$run"
  case $step in
    greeting|ehlo|starttls|auth) want='^RESULT 454 4\.7\.0'; said="454 4.7.0 at AUTH" ;;
    *) want='^RESULT 451 4\.4\.2'; said="451 4.4.2" ;;
  esac
  r=$(smtp "close-$step" "$PROXY_SMTP" "drop-$step" erp@contoso.test alice@contoso.test "$subj")
  expect "a. upstream closes at $step: $said, never 250" "$want" "$r"
  check "a. $step: the upstream did close at that step" wait_grep "closing the connection at $step" "$WORK/dropper-$step.log"
  if [ "$step" = mail ]; then   # closed before its reply to MAIL: sent once more on a fresh session first
    n=$(grep -c "closing the connection at mail" "$WORK/dropper-mail.log" || true)
    check "a. mail: the MAIL went once more to a fresh session before the 451 (closes: $n)" test "$n" -eq 2
  fi
  resend "close-$step" "$subj"
done
# The same closes with MAIL, RCPT and DATA pipelined in one write (RFC 2920): one reply per
# command, in order, a 451 for each command the upstream did not answer.
for spec in mail:451,451,451 rcpt:250,451,451 data:250,250,451; do
  step=${spec%%:*} codes=${spec#*:}
  check "a. pipelined MAIL/RCPT/DATA, upstream closes at $step: $codes" \
    timeout 60 $PY "$SRC/tests/clients/pipeline_check.py" "$PROXY_SMTP" "drop-$step" "$PW" erp@contoso.test alice@contoso.test "$codes"
done
# The upstream restarts while the proxy keeps an authenticated session to it idle in the pool:
# the next client's MAIL finds that session closed before any reply. Nothing happened upstream,
# so the proxy sends the MAIL again on a fresh session: 250, not 451.
XO_PASSWORD=$PW timeout 60 $FAULTS login-only "$PROXY_SMTP" drop-restart >"$WORK/restart-1.out" 2>&1 || true
check "a. restart: a login left an idle upstream session in the pool" \
  bash -c "grep -q '^PASS: login-only' '$WORK/restart-1.out' && grep -q 'AUTH XOAUTH2 user=erp@contoso.test' '$WORK/dropper-restart.log'"
kill "$RESTART_PID" 2>/dev/null || true
wait "$RESTART_PID" 2>/dev/null || true
start_restart_dropper
XO_PASSWORD=$PW timeout 60 $FAULTS mail-rcpt "$PROXY_SMTP" drop-restart erp@contoso.test alice@contoso.test \
  >"$WORK/restart-2.out" 2>&1 || true
sed 's/^/  /' "$WORK/restart-2.out"
check "a. upstream restarted while the pooled session was idle: the next client's MAIL and RCPT get 250 (a fresh session)" \
  bash -c "! grep -q '^FAIL' '$WORK/restart-2.out' && grep -q '^PASS: mail-rcpt: RCPT 250' '$WORK/restart-2.out'"
check "a. restart: log: the MAIL was retried on another session" \
  grep -qE 'upstream lost before its reply to MAIL.*retrying on another session' "$WORK/proxy.log"
grep -E 'connection=drop-(greeting|auth) .*failure' "$WORK/proxy.log" | head -2 | sed 's/^/  log: /'
check "a. end of data: the session is logged tempfail with the upstream lost before its final reply" \
  grep -qE 'result=tempfail reason="upstream lost before its final reply' "$WORK/proxy.log"
subj="fault-trusted-greeting-$run"
$PY "$SRC/tests/clients/make_message.py" "$WORK/trusted-drop.eml" trusted-drop@contoso.test alice@contoso.test "$subj"
r=$(timeout 60 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_TRUSTED" - - trusted-drop@contoso.test \
      alice@contoso.test "$WORK/trusted-drop.eml" 2>&1 | tail -1 || true)
expect "a. trusted sender, upstream closes at the greeting: 451 4.7.0 at MAIL" '^RESULT 451 4\.7\.0' "$r"
check "a. the trusted sender's message (told 451) was not delivered" \
  bash -c "! grep -rqs 'fault-trusted-greeting-$run' '$MAIL_DIR'"
healthy "a"

echo "== e. an upstream certificate signed by an unknown CA"
r=$(smtp badca "$PROXY_SMTP" badca erp@contoso.test alice@contoso.test "badca-$run")
expect "e. certificate from an unknown CA: 454 4.7.0 at AUTH" '^RESULT 454 4\.7\.0' "$r"
check "e. log: connection=badca tls failure naming the unverifiable certificate" \
  grep -qE 'connection=badca .*tls failure: .*(unable to get local issuer certificate|certificate verify failed|self.signed)' "$WORK/proxy.log"
grep -E 'connection=badca .*tls failure' "$WORK/proxy.log" | head -1 | cut -c1-300 | sed 's/^/  log: /'
check "e. the dropper never got past the handshake (no AUTH seen)" bash -c "! grep -q 'AUTH XOAUTH2 user=' '$WORK/dropper-badca.log'"
healthy "e"

echo "== b. the identity provider down, slow, answering garbage"
for mode in down slow garbage200 truncated http500; do
  case $mode in
    down) ;;
    slow) idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"slow\", \"delay\": 5}" ;;
    *) idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"$mode\"}" ;;
  esac
  t0=$(date +%s.%N)
  r=$(smtp "idp-$mode" "$PROXY_SMTP" "idp-$mode" erp@contoso.test alice@contoso.test "idp-$mode-$run")
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
  [ "$mode" = down ] || idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"none\"}"
  expect "b. identity provider $mode: 454 4.7.0 at AUTH (after ${took}s)" '^RESULT 454 4\.7\.0' "$r"
  check "b. $mode: a log line names the connection (connection=idp-$mode ... token failure)" \
    grep -qE "connection=idp-$mode .*token failure" "$WORK/proxy.log"
  grep -E "connection=idp-$mode .*token failure" "$WORK/proxy.log" | head -1 | cut -c1-260 | sed 's/^/  log: /'
  st=$(curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/status" | $PY -c '
import json, sys
c = json.load(sys.stdin)["connections"].get(sys.argv[1], {})
errs = [t.get("last_error", {}).get("description", "") for t in c.get("tokens", []) if t.get("last_error")]
print(c.get("state", "?"), "|", (errs[0] if errs else "no last_error")[:120])' "idp-$mode" 2>&1 || true)
  expect "b. $mode: /status shows connection idp-$mode failing" '^failing \|' "$st"
  check "b. $mode: the daemon is alive" kill -0 "$PROXY_PID"
done
healthy "b"

echo "== c. a client vanishing mid-DATA"
lost_before=$(grep -cE 'lost connection after (RCPT|DATA)' "$POSTFIX_LOG" || true)
XO_PASSWORD=$PW timeout 60 $FAULTS vanish "$PROXY_SMTP" erp erp@contoso.test alice@contoso.test "vanish-$run" \
  >"$WORK/vanish.out" 2>&1 || true
sed 's/^/  /' "$WORK/vanish.out"
check "c. the vanishing client's transaction reached DATA and half the message was sent" \
  bash -c "! grep -q '^FAIL' '$WORK/vanish.out' && grep -q '^PASS: vanish: half' '$WORK/vanish.out'"
check "c. log: the session ended aborted, client lost during DATA" \
  wait_grep -E 'result=aborted reason="client lost during DATA' "$WORK/proxy.log"
if wait_metric xoauth2_sessions_active 0 15; then pass "c. sessions_active back to 0"
else fail "c. sessions_active back to 0 (got '$(metric xoauth2_sessions_active)')"; fi
r=$(smtp after-vanish "$PROXY_SMTP" erp erp@contoso.test alice@contoso.test "after-vanish-$run")
expect "c. the next client of the same mailbox relays: 250" '^RESULT 250' "$r"
check "c. and its message is delivered" delivered alice@contoso.test "Subject: after-vanish-$run"
# (A client in lockstep: the proxy holds its message for one BDAT, so Postfix saw MAIL and RCPT only.)
lost_more() { [ "$(grep -cE 'lost connection after (RCPT|DATA)' "$POSTFIX_LOG" || true)" -gt "$lost_before" ]; }
for _ in $(seq 1 150); do lost_more && break; sleep 0.1; done
check "c. Postfix saw the upstream session end inside the transaction (lost connection after RCPT or DATA), not reused" \
  lost_more
sleep 2
n=$(count_marker "vanish-$run@faults.test")
check "c. the half message was not delivered ($n found)" test "$n" -eq 0
n=$(count_marker "Subject: after-vanish-$run")
check "c. the next message was delivered once ($n)" test "$n" -eq 1

echo "== c. a client leaving an open transaction (QUIT; closed after ten errors; QUIT after every recipient was refused): the pooled upstream is not reused mid-transaction"
for how in quit errors rejected; do
  XO_PASSWORD=$PW timeout 60 $FAULTS "$how-midtxn" "$PROXY_SMTP" erp erp@contoso.test alice@contoso.test \
    >"$WORK/$how-midtxn.out" 2>&1 || true
  sed 's/^/  /' "$WORK/$how-midtxn.out"
  check "c. $how: the transaction was open upstream when the client left" \
    bash -c "! grep -q '^FAIL' '$WORK/$how-midtxn.out' && grep -q '^PASS: $how:' '$WORK/$how-midtxn.out'"
  r=$(smtp "after-$how" "$PROXY_SMTP" erp erp@contoso.test alice@contoso.test "after-$how-midtxn-$run")
  expect "c. $how: the next client of the same mailbox relays: 250 (not 503 nested MAIL)" '^RESULT 250' "$r"
  check "c. $how: and its message is delivered" delivered alice@contoso.test "Subject: after-$how-midtxn-$run"
done
if wait_metric xoauth2_sessions_active 0 15; then pass "c. sessions_active back to 0"
else fail "c. sessions_active back to 0 (got '$(metric xoauth2_sessions_active)')"; fi

echo "== d. $FLOOD_N sessions opened at once (max_sessions $FLOOD_N, max_sessions_per_client $FLOOD_N)"
rss_before=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY_PID/status")
timeout 120 $FAULTS flood "$PROXY_FLOOD" "$FLOOD_N" "$PROXY_PID" >"$WORK/flood.out" 2>&1 || true
sed 's/^/  /' "$WORK/flood.out"
check "d. every connection greeted 220 or refused 421 4.3.2; all $FLOOD_N fit; the next one 421" \
  bash -c "! grep -q '^FAIL' '$WORK/flood.out' && grep -q '^PASS: flood: every' '$WORK/flood.out'"
check "d. the daemon is alive" kill -0 "$PROXY_PID"
check "d. no descriptor ran out (no 'Too many open files' in the log)" bash -c "! grep -qi 'too many open files' '$WORK/proxy.log'"
if wait_metric xoauth2_sessions_active 0 60; then pass "d. sessions_active back to 0"
else fail "d. sessions_active back to 0 (got '$(metric xoauth2_sessions_active)')"; fi
r=$(smtp after-flood "$PROXY_FLOOD" erp erp@contoso.test alice@contoso.test "after-flood-$run")
expect "d. afterwards a message relays through the same listener: 250" '^RESULT 250' "$r"
check "d. and it is delivered" delivered alice@contoso.test "Subject: after-flood-$run"
rss_after=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY_PID/status")
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status")
echo "MEASURE d. proxy RSS ${rss_before} kB before, ${rss_after} kB after, peak (VmHWM) ${hwm} kB"
check "d. RSS bounded: peak ${hwm} kB below 256 MB" test "$hwm" -lt 262144
check "d. RSS after the flood (${rss_after} kB) within 64 MB of before (${rss_before} kB)" \
  test "$rss_after" -lt $((rss_before + 65536))
healthy "d"
finish
