#!/bin/bash
# Open-relay test (issue 12): from an untrusted address (the client bound to 127.0.0.2,
# outside the trusted listener's trusted_networks 127.0.0.1/32) every trick is refused
# with its reply, on the AUTH listener and on the trusted listener:
#   no AUTH (530 5.7.0), RCPT/DATA before MAIL (503 5.5.1), the percent hack
#   RCPT TO:<a%b@other.test>, source routes <@hop:a@b>, an AUTH= parameter, XCLIENT and
#   XFORWARD, HELO instead of EHLO, a whole transaction pipelined in one write;
#   after AUTH, a sender other than the login's mailbox: the upstream session stays the
#   login's mailbox and the upstream (an Exchange-like dropper that refuses SendAs)
#   answers 550 5.7.60, which the client gets.
# From 127.0.0.1 (trusted) senders the senders: map does not match are refused 550 5.7.1.
# Nothing is delivered anywhere (the Maildirs hold no new message afterwards).
source "$(dirname "$0")/lib.sh"
FAULTS="$PY $SRC/tests/clients/faults.py"
EXCHANGE_PORT=$((PORT_BASE + 40))    # dropper.py --mail-reply-other: Exchange's SendAs refusal
PW='erp-pass word"1'
SENDAS='550 5.7.60 SMTP; Client does not have permissions to send as this sender'
DROPPER_PID=""
extra_cleanup() {
  [ -n "$DROPPER_PID" ] || return 0
  kill "$DROPPER_PID" 2>/dev/null || true
  wait "$DROPPER_PID" 2>/dev/null || true
}

world_start
$PY "$SRC/tests/world/dropper.py" "$EXCHANGE_PORT" "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" \
  --mail-reply-other "$SENDAS" >"$WORK/exchange-sendas.log" 2>&1 &
DROPPER_PID=$!
wait_port "$EXCHANGE_PORT" 10 || { echo "FAIL: the SendAs dropper did not start"; exit 1; }
proxy_config
$PY - "$WORK/proxy.yaml" "$EXCHANGE_PORT" <<'PYEOF'
import re, sys
p, port = sys.argv[1:3]
s = open(p).read()
block = s[s.index("  ms-secret:"):s.index("  ms-cert:")]
world_port = re.search(r"smtp: \{host: localhost, port: (\d+), tls: starttls\}", block).group(1)
s = s.replace("  ms-cert:", block.replace("ms-secret:", "exchange:").replace("port: %s," % world_port, "port: %s," % port)
              + "  ms-cert:", 1)
h = re.search(r'login: erp, password_hash: "([^"]+)"', s).group(1)
s = s.replace("senders:\n", '  - {login: sendas, password_hash: "%s", connection: exchange, mailbox: erp@contoso.test}\n'
              "senders:\n" % h, 1)
open(p, "w").write(s)
PYEOF
proxy_start

delivered_count() { find "$MAIL_DIR" -path '*/new/*' -type f 2>/dev/null | wc -l; }
before=$(delivered_count)

# faults CHECK ARGS...: one client run; its PASS/FAIL lines are this test's checks.
faults() {
  local out="$WORK/faults-$1-$RANDOM.out" rc=0
  XO_PASSWORD=$PW timeout 120 $FAULTS "$@" >"$out" 2>&1 || rc=$?
  grep -E '^(PASS|FAIL|  INFO)' "$out" || true
  local n
  n=$(grep -c '^FAIL' "$out" || true)
  if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then fail "faults.py $1 exited $rc"; tail -3 "$out"; fi
  FAILS=$((FAILS + n))
}

echo "== from 127.0.0.2 on the AUTH listener (127.0.0.1:$PROXY_SMTP)"
faults relay "$PROXY_SMTP" 127.0.0.2
echo "== from 127.0.0.2 on the trusted listener (trusted_networks 127.0.0.1/32)"
faults relay "$PROXY_TRUSTED" 127.0.0.2
# Two runs of 7 sessions each: wait (bounded) for their end lines.
ended() { grep -cE 'smtp session [0-9a-f]+ end client=127\.0\.0\.2:' "$WORK/proxy.log" || true; }
end_wait=$((SECONDS + 30))
while [ "$(ended)" -lt 14 ] && [ $SECONDS -lt $end_wait ]; do sleep 0.1; done
n=$(ended)
m=$(grep -E 'smtp session [0-9a-f]+ end client=127\.0\.0\.2:' "$WORK/proxy.log" | grep -cvE ' connection=- ' || true)
check "log: $n sessions from 127.0.0.2 ended, none of them with an upstream connection ($m)" \
  bash -c "[ $n -ge 10 ] && [ $m -eq 0 ]"

echo "== from 127.0.0.2 after AUTH: a sender other than the login's mailbox"
faults relay "$PROXY_SMTP" 127.0.0.2 sendas ceo@contoso.test
check "the upstream saw MAIL FROM:<ceo@contoso.test> from a session authenticated as the login's mailbox (erp@contoso.test)" \
  wait_grep -F 'MAIL FROM:<ceo@contoso.test> as user=erp@contoso.test' "$WORK/exchange-sendas.log"
check "no upstream session was ever authenticated as the envelope sender's mailbox" \
  bash -c "! grep -q 'user=ceo@contoso.test' '$WORK/exchange-sendas.log'"
grep -E 'MAIL FROM|user=' "$WORK/exchange-sendas.log" | head -3 | sed 's/^/  upstream: /'

echo "== from 127.0.0.1 (trusted): senders the map does not match"
faults unmapped "$PROXY_TRUSTED" 127.0.0.1 someone@elsewhere.test 'alice%contoso.test@elsewhere.test' \
  x@contoso.test.elsewhere.test x@sub.contoso.test '"x@contoso.test"@elsewhere.test' '@contoso.test:x@elsewhere.test'

sleep 2   # anything accepted by mistake would be in the Maildirs by now (deliveries take < 1 s here)
after=$(delivered_count)
check "nothing delivered anywhere ($before messages before, $after after)" test "$after" -eq "$before"
check "Postfix queued nothing from the proxy (no sasl_username line)" bash -c "! grep -q 'sasl_username=' '$POSTFIX_LOG'"
# The control: the same Maildir count sees a message that is allowed (a mapped trusted sender).
subj="open-relay-control-$RANDOM$RANDOM"
$PY "$SRC/tests/clients/make_message.py" "$WORK/control.eml" alice@contoso.test alice@contoso.test "$subj"
r=$(timeout 60 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_TRUSTED" - - alice@contoso.test alice@contoso.test \
      "$WORK/control.eml" 2>&1 | tail -1 || true)
if [[ "$r" =~ ^RESULT\ 250 ]]; then pass "control: a mapped sender from 127.0.0.1 relays: $r"
else fail "control: a mapped sender from 127.0.0.1 relays: got $r"; fi
wait_count() { local end=$((SECONDS + 15)); while [ $SECONDS -lt $end ]; do [ "$(delivered_count)" -eq "$1" ] && return 0; sleep 0.1; done; return 1; }
check "control: and the same count sees it ($((after + 1)))" wait_count $((after + 1))
finish
