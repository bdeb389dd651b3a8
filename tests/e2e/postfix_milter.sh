#!/bin/bash
# The site's own Postfix relays through the proxy and asks xoauth2-milter
# before queueing: SMTP and the sendmail command both arrive in the test
# world's mailbox; an unmapped sender is rejected at MAIL FROM; with the
# identity provider failing the milter tempfails (the client sees 451); From
# alignment rewrites From and keeps the original in Reply-To; /metrics parses
# with prometheus_client and its counters move; 50 concurrent sessions pass
# the milter without a failed callback.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_site_mta.sh"
world_start
proxy_config
cat >> "$WORK/proxy.yaml" <<YAML
admin: {bind: "127.0.0.1:$PROXY_ADMIN"}
milter: {socket: "inet:$MILTER_PORT@127.0.0.1", unmapped: reject, proxy_unreachable: tempfail, align_from: true, status_refresh: 1s}
YAML
sed -i 's/^senders:$/senders:\n  - {sender: "noreply@contoso.test", connection: ms-secret, mailbox: erp@contoso.test}/' "$WORK/proxy.yaml"
proxy_start
milter_start "$WORK/proxy.yaml"
site_mta_start "[127.0.0.1]:$PROXY_TRUSTED"

to_site() {  # to_site NAME FROM TO SUBJECT -> RESULT line of smtplib against the site MTA
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$1.eml" "$2" "$3" "$4"
  $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$SITE_PORT" - - "$2" "$3" "$WORK/$1.eml" >"$WORK/$1.out" 2>&1 || true
  grep '^RESULT' "$WORK/$1.out" | tail -1
}
expect() { if [[ "$3" =~ $2 ]]; then pass "$1: $3"; else fail "$1: expected /$2/, got: $3"; fi; }
metric() {  # metric NAME [LABEL=VALUE] -> value, parsed by prometheus_client
  curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/metrics" | $PY -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
name, want = sys.argv[1], dict(kv.split("=", 1) for kv in sys.argv[2:])
total = 0.0
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in want.items()):
            total += s.value
print(int(total))' "$@"
}

relayed0=$(metric xoauth2_messages_relayed_total)
r=$(to_site smtp alice@contoso.test alice@contoso.test "site-smtp-$RANDOM")
expect "site MTA accepts a mapped sender over SMTP" '^RESULT 250' "$r"
check "relayed through the proxy into alice@contoso.test" maildir_find alice@contoso.test "Subject: site-smtp-"
f=$(maildir_find alice@contoso.test "Subject: site-smtp-") && check "trace header X-XOAUTH2-Connection added" grep -q '^X-XOAUTH2-Connection: ms-secret' "$f"

$PY "$SRC/tests/clients/make_message.py" "$WORK/sendmail.eml" erp@contoso.test alice@contoso.test "site-sendmail-$RANDOM"
sendmail -C "$SITE/etc" -f erp@contoso.test alice@contoso.test < "$WORK/sendmail.eml"
check "the sendmail command's message passes the milter and arrives" maildir_find alice@contoso.test "Subject: site-sendmail-"

r=$(to_site unmapped someone@elsewhere.test alice@contoso.test "unmapped")
expect "unmapped sender rejected at MAIL FROM" '^RESULT 550 5\.7\.1 .*not mapped' "$r"

# From alignment: noreply@ maps to mailbox erp@; the message keeps its author in Reply-To.
r=$(to_site align noreply@contoso.test alice@contoso.test "site-align-$RANDOM")
expect "aligned sender accepted" '^RESULT 250' "$r"
if f=$(maildir_find alice@contoso.test "Subject: site-align-"); then
  check "From rewritten to the mailbox" grep -q '^From: <erp@contoso.test>' "$f"
  check "original From kept in Reply-To" grep -q '^Reply-To: <noreply@contoso.test>' "$f"
  check "envelope sender rewritten (Return-Path)" grep -q '^Return-Path: <erp@contoso.test>' "$f"
  check "upstream authenticated as the mailbox" grep -q 'sasl_username=erp@contoso.test' "$POSTFIX_LOG"
else
  fail "aligned message not delivered"
fi

relayed1=$(metric xoauth2_messages_relayed_total)
check "/metrics parses and messages_relayed moved ($relayed0 -> $relayed1)" test "$relayed1" -ge $((relayed0 + 3))
check "/metrics token requests for ms-secret counted" test "$(metric xoauth2_token_requests_total connection=ms-secret)" -ge 1

# 50 concurrent sessions through the milter.
before=$(grep -c 'milter .* -> connection=' "$WORK/milter.log" || true)
pids=()
for i in $(seq 1 50); do
  swaks --server 127.0.0.1 --port "$SITE_PORT" --from alice@contoso.test --to alice@contoso.test \
    --header "Subject: burst-$i" --timeout 60 >"$WORK/burst-$i.out" 2>&1 &
  pids+=($!)
done
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
after=$(grep -c 'milter .* -> connection=' "$WORK/milter.log" || true)
echo "MEASURE milter: 50 concurrent sessions, $ok accepted, $((after - before)) milter MAIL FROM callbacks logged"
check "50 concurrent sessions accepted by the site MTA ($ok/50)" test "$ok" -eq 50
check "50 milter callbacks, none failed" test $((after - before)) -eq 50
check "Postfix saw no milter failure" bash -c "! grep -qiE 'milter.*(timeout|error|unavailable)' '$SITE/log/postfix.log'"

# The identity provider fails: a fresh proxy cannot get a token, /status shows
# the connection failing, and the milter tempfails the next message.
proxy_stop
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"invalid_secret\"}"
proxy_start
$PY "$SRC/tests/clients/make_message.py" "$WORK/probe.eml" erp@contoso.test alice@contoso.test probe
XO_PASSWORD='erp-pass word"1' $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" erp - erp@contoso.test \
  alice@contoso.test "$WORK/probe.eml" >"$WORK/probe.out" 2>&1 || true
check "/status shows ms-secret failing with AADSTS7000215" \
  bash -c "curl -sS -m 5 http://127.0.0.1:$PROXY_ADMIN/status | grep -q AADSTS7000215"
# The milter polls /status every second: wait until it has seen the failure.
check "milter saw ms-secret failing" wait_grep "proxy status: connection ms-secret is failing" "$WORK/milter.log"
r=$(to_site tempfail alice@contoso.test alice@contoso.test "while failing")
expect "milter tempfails while the connection is failing: 451" '^RESULT 451 4\.7\.0 .*ms-secret' "$r"
grep 'tempfailed' "$WORK/milter.log" | tail -1 | sed 's/^/  milter log: /'

# The proxy unreachable: the configured default (tempfail).
polls=$(grep -c "proxy status http" "$WORK/milter.log" || true)
proxy_stop
idp_reset
# Until the milter has found the proxy unreachable (a failed poll logs a line).
end=$((SECONDS + 30))
while [ "$(grep -c "proxy status http" "$WORK/milter.log" || true)" -le "$polls" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
r=$(to_site unreachable alice@contoso.test alice@contoso.test "proxy down")
expect "proxy unreachable: tempfail by default" '^RESULT 451 4\.7\.0' "$r"
finish
