#!/bin/bash
# Issue 11: what an attacker sends, over raw sockets, against the real proxy and
# the test world; one check per defect, named by its number, each looking at the
# reply AND the effect (Maildirs, the proxy log, /status and /metrics):
#   1 SMTP smuggling (<LF>.<CR><LF>, <CR><LF>.<LF>, <LF>.<LF>) on a trusted listener:
#     550 5.6.0, no smuggled second message; bare_newline: normalize: one message
#     (Dovecot stores LF line ends, so the Maildir shows the lines, not the CRLFs)
#   2 MAIL FROM:<\xff0@...>: 553 5.6.7; relaying, /status and sessions_active intact
#   4 EHLO, HELO, RSET inside a transaction: the next transaction is delivered
#   5 IMAP {9000+} literal full of commands: BAD, BYE, closed, no embedded command run
#   6 a LF in a login name (AUTH PLAIN, IMAP literal) forges no log line
#   7 max_sessions per listener; max_sessions_per_client
#   8 90 concurrent wrong passwords do not hold a valid login for more than 3 s
# The clients are tests/clients/hostile.py. Checks of the second proxy (bare_newline,
# max_sessions_per_client) need config keys that issue 11 added.
source "$(dirname "$0")/lib.sh"
HOSTILE="$PY $SRC/tests/clients/hostile.py"
PROXY_SMTP4=$((PORT_BASE + 27))      # smtp, max_sessions: 4 (defect 7)
PROXY_NORMALIZE=$((PORT_BASE + 28))  # trusted smtp, bare_newline: normalize (defect 1), second proxy
PROXY_PERCLIENT=$((PORT_BASE + 29))  # smtp, max_sessions_per_client: 2 (defect 7), second proxy
PW='erp-pass word"1'
COLD_PW="cold-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"   # never printed

world_start
proxy_config
h_cold=$(hash_password "$COLD_PW")
# A listener with max_sessions 4; the admin listener; a user whose password the
# proxy has never checked (a cold login for defect 8); *@fabrikam.test mapped to
# Google's service account, whose token is per mailbox (the JWT's sub is the sender).
$PY - "$WORK/proxy.yaml" "$PROXY_SMTP4" "$PROXY_ADMIN" "$h_cold" <<'PYEOF'
import sys
p, smtp4, admin, h_cold = sys.argv[1:5]
s = open(p).read()
s = s.replace("connections:\n", '  - {name: smtp4, protocol: smtp, bind: "127.0.0.1:%s", tls: none, max_sessions: 4}\nconnections:\n' % smtp4, 1)
s = s.replace("senders:\n", '  - {login: cold, password_hash: "%s", connection: ms-secret, mailbox: erp@contoso.test}\nsenders:\n' % h_cold, 1)
s = s.replace('  - {sender: "printer@fabrikam.test", connection: google, mailbox: alice@fabrikam.test}\n',
              '  - {sender: "printer@fabrikam.test", connection: google, mailbox: alice@fabrikam.test}\n'
              '  - {sender: "*@fabrikam.test", connection: google}\n', 1)
s = s.replace("tokens: {backoff: 100ms}", 'tokens: {backoff: 100ms}\nadmin: {bind: "127.0.0.1:%s"}' % admin, 1)
open(p, "w").write(s)
PYEOF
proxy_start

# hostile CHECK ARGS...: runs one client check, shows its lines, counts its FAILs.
hostile() {
  local out="$WORK/hostile-$1-$RANDOM.out" rc=0
  timeout 120 $HOSTILE "$@" >"$out" 2>&1 || rc=$?
  sed 's/^/  /' "$out" | grep -E 'PASS|FAIL|INFO|MEASURE|Error|Traceback' || true
  local n
  n=$(grep -c '^FAIL' "$out" || true)
  if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then n=1; echo "  FAIL: hostile.py $1 exited $rc"; fi
  FAILS=$((FAILS + n))
  return 0
}
# hostile_check NAME CHECK ARGS...: the same, as one named check.
hostile_check() {
  local name=$1 before=$FAILS; shift
  hostile "$@"
  if [ "$FAILS" -eq "$before" ]; then pass "$name"; else FAILS=$before; fail "$name"; fi
}
# relay_trusted NAME FROM TO SUBJECT: one ordinary message through the trusted listener
relay_trusted() {
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$1.eml" "$2" "$3" "$4"
  timeout 30 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_TRUSTED" - - "$2" "$3" "$WORK/$1.eml" 2>&1 | tail -1 || true
}
no_bare_cr() { $PY -c 'import re, sys; sys.exit(1 if re.search(rb"\r(?!\n)", open(sys.argv[1], "rb").read()) else 0)' "$1"; }
# smuggled_lines FILE: the smuggled end of data became a line "." followed by the MAIL FROM line
smuggled_lines() {
  $PY -c 'import sys; b = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n"); sys.exit(0 if b"\n.\nMAIL FROM:<alice@contoso.test>\n" in b else 1)' "$1"
}
expect() {  # expect NAME PATTERN ACTUAL
  if [[ "$3" =~ $2 ]]; then pass "$1: $3"; else fail "$1: expected /$2/, got: $3"; fi
}

echo "== defect 1: SMTP smuggling on the trusted listener (bare_newline: reject, the default)"
run_id=$RANDOM$RANDOM
for v in lf-dot-crlf crlf-dot-lf lf-dot-lf; do
  hostile_check "defect 1: $v: 550 5.6.0 for the message, smuggled commands not run" \
    smuggle "$PROXY_TRUSTED" "$v" "rej-$v-$run_id" erp@contoso.test alice@contoso.test alice@contoso.test reject
done

echo "== defect 2: an address that is not UTF-8 on the trusted listener"
hostile_check "defect 2: MAIL FROM:<\\xff0@contoso.test> (connection ms-secret): 553 5.6.7" eightbit "$PROXY_TRUSTED" contoso.test
hostile_check "defect 2: MAIL FROM:<\\xff0@fabrikam.test> (per-mailbox Google token): 553 5.6.7" eightbit "$PROXY_TRUSTED" fabrikam.test
subj="after-8bit-$run_id"
r=$(relay_trusted after8bit bob@fabrikam.test alice@contoso.test "$subj")
expect "defect 2: afterwards a message from bob@fabrikam.test (Google, per mailbox) still relays" '^RESULT 250' "$r"
check "defect 2: and it is delivered" delivered alice@contoso.test "$subj"
subj2="after-8bit-ms-$run_id"
r=$(relay_trusted after8bit-ms erp@contoso.test alice@contoso.test "$subj2")
expect "defect 2: afterwards a message from erp@contoso.test (ms-secret) still relays" '^RESULT 250' "$r"
code=$(curl -sS -m 5 -o "$WORK/status.json" -w '%{http_code}' "http://127.0.0.1:$PROXY_ADMIN/status" 2>"$WORK/status.err" || true)
check "defect 2: /status answers 200 (got ${code:-nothing})" test "$code" = 200
check "defect 2: /status is JSON that parses" $PY -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$WORK/status.json"
if wait_metric xoauth2_sessions_active 0 5; then pass "defect 2: /metrics xoauth2_sessions_active is 0 after the sockets closed"
else fail "defect 2: /metrics xoauth2_sessions_active is 0 after the sockets closed (got '$(metric xoauth2_sessions_active)')"; fi

echo "== defect 1: the effect: no smuggled message delivered"
# The control messages of defect 2 went in after the smuggling attempts: once they are
# delivered, give the queue two more seconds for anything sent before them.
maildir_find alice@contoso.test "$subj2" >/dev/null || true
sleep 2
for v in lf-dot-crlf crlf-dot-lf lf-dot-lf; do
  n2=$(count_marker "smuggle-rej-$v-$run_id-second")
  n1=$(count_marker "first part rej-$v-$run_id")
  check "defect 1: $v: the smuggled second message (MAIL FROM:<alice@contoso.test>) was not delivered ($n2 found)" test "$n2" -eq 0
  check "defect 1: $v: the refused message was not delivered either ($n1 found)" test "$n1" -eq 0
done

echo "== defect 4: EHLO, HELO, RSET inside a transaction"
for verb in EHLO HELO RSET; do
  subj="midtxn-$verb-$run_id"
  XO_PASSWORD=$PW hostile midtxn "$PROXY_SMTP" erp "$verb" erp@contoso.test alice@contoso.test "$subj"
  check "defect 4: $verb after MAIL+RCPT: the second transaction is delivered" delivered alice@contoso.test "$subj"
done

echo "== defect 5: an over-limit IMAP LITERAL+ full of commands"
hostile_check "defect 5: {9000+}: a1 BAD, * BYE, closed, nothing inside the literal run" imap-literal "$PROXY_IMAP"

echo "== defect 6: a LF in a login name"
hostile smtp-lf "$PROXY_SMTP" 127.0.0.3 "smtp session deadbeef end client=127.0.0.1:1 login=ceo result=ok"
hostile imap-lf "$PROXY_IMAP" 127.0.0.4 "imap session cafebabe end client=127.0.0.1:1 login=ceo result=ok"
sleep 0.5
check "defect 6: no forged log line from the AUTH PLAIN login" bash -c "! grep -q '^smtp session deadbeef' '$WORK/proxy.log'"
check "defect 6: no forged log line from the IMAP literal login" bash -c "! grep -q '^imap session cafebabe' '$WORK/proxy.log'"
check "defect 6: the AUTH PLAIN login is logged escaped (evil\\x0asmtp session deadbeef)" grep -qF 'evil\x0asmtp session deadbeef' "$WORK/proxy.log"
check "defect 6: the IMAP login is logged escaped (evil\\x0aimap session cafebabe)" grep -qF 'evil\x0aimap session cafebabe' "$WORK/proxy.log"
grep -aE 'deadbeef|cafebabe' "$WORK/proxy.log" | head -4 | sed 's/^/  log: /'

echo "== defect 7: max_sessions counted per listener"
hostile_check "defect 7: 4 idle IMAP clients leave the SMTP listener (max_sessions 4) open; its 5th client gets 421 4.3.2" \
  max-sessions "$PROXY_IMAP" "$PROXY_SMTP4"

echo "== defect 8: 90 concurrent wrong passwords, then a valid cold login"
XO_PASSWORD=$COLD_PW hostile_check "defect 8: a valid login is answered within 3 s during 90 wrong-password attempts" \
  throttle "$PROXY_SMTP" erp cold

# --- a second proxy: listeners with keys issue 11 added (bare_newline, max_sessions_per_client)
proxy_stop
cat > "$WORK/proxy2.yaml.head" <<YAML
listeners:
  - {name: submission, protocol: smtp, bind: "127.0.0.1:$PROXY_SMTP", tls: none}
  - {name: normalize, protocol: smtp, bind: "127.0.0.1:$PROXY_NORMALIZE", tls: none, trusted_networks: [127.0.0.1/32], bare_newline: normalize}
  - {name: perclient, protocol: smtp, bind: "127.0.0.1:$PROXY_PERCLIENT", tls: none, max_sessions_per_client: 2}
YAML
{ cat "$WORK/proxy2.yaml.head"; sed -n '/^connections:/,$p' "$WORK/proxy.yaml" | grep -v '^admin:'; } > "$WORK/proxy2.yaml"
echo "== second proxy (bare_newline: normalize, max_sessions_per_client: 2)"
"$PROXY_BIN" --config "$WORK/proxy2.yaml" >>"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
if wait_port "$PROXY_NORMALIZE" 10 && wait_port "$PROXY_PERCLIENT" 5; then
  second=yes
else
  second=no
  fail "defect 1/7: the proxy refuses a config with bare_newline / max_sessions_per_client:"
  tail -3 "$WORK/proxy.log" | sed 's/^/  log: /'
fi

echo "== defect 1: bare_newline: normalize"
for v in lf-dot-crlf crlf-dot-lf lf-dot-lf; do
  name="defect 1: normalize: $v: one message delivered once, with the smuggled lines as its text"
  if [ $second = no ]; then fail "$name (no proxy)"; continue; fi
  mark="norm-$v-$run_id"
  hostile_check "defect 1: normalize: $v: 250 for one message, smuggled commands not run" \
    smuggle "$PROXY_NORMALIZE" "$v" "$mark" erp@contoso.test alice@contoso.test alice@contoso.test normalize
  if f=$(maildir_find alice@contoso.test "first part $mark"); then
    sleep 1
    n=$(count_marker "$mark")
    check "defect 1: normalize: $v: delivered once, no second message ($n message(s) hold the marker)" test "$n" -eq 1
    check "defect 1: normalize: $v: no bare CR in the delivered message" no_bare_cr "$f"
    check "defect 1: normalize: $v: the lone dot and the smuggled MAIL FROM are lines of its text" smuggled_lines "$f"
  else
    fail "$name: not delivered"
  fi
done

echo "== defect 7: max_sessions_per_client"
if [ $second = yes ]; then
  hostile_check "defect 7: max_sessions_per_client 2: a third client from 127.0.0.1 gets 421, 127.0.0.2 is taken" per-client "$PROXY_PERCLIENT"
else
  fail "defect 7: max_sessions_per_client (no proxy)"
fi
finish
