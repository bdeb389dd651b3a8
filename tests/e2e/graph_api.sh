#!/bin/bash
# Delivery through Microsoft Graph sendMail and the Gmail API (send_via), against
# the test identity provider's API endpoints, which check the bearer token and
# hand the message to the world's Dovecot LMTP. A message with To, Cc and an
# envelope-only recipient reaches all three Maildirs byte-identical apart from
# trace headers, with no Bcc header anywhere; the APIs' failures (503, 429, 401,
# 403) give the expected replies, nothing lost or sent twice; a message over
# Graph's limit is refused (552), never 250; send_via: auto moves to Graph on
# 535 5.7.139.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
AUTO_DROP=$((PORT_BASE + 30))   # an "Exchange" that answers AUTH with 535 5.7.139
$PY "$SRC/tests/world/dropper.py" "$AUTO_DROP" "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" \
  --auth-reply "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant." \
  </dev/null >>"$WORK/dropper-auto.log" 2>&1 &
DROP_PID=$!
extra_cleanup() { kill "$DROP_PID" 2>/dev/null || true; wait "$DROP_PID" 2>/dev/null || true; }
wait_port "$AUTO_DROP" 10 || { echo "FAIL: dropper did not start"; exit 1; }

$PY - "$WORK/proxy.yaml" <<PYEOF
import sys, re
p = sys.argv[1]; s = open(p).read()
ms = s[s.index("  ms-secret:"):s.index("  ms-cert:")]
g = s[s.index("  google:"):s.index("  generic:")]
extra = ms.replace("ms-secret:", "ms-graph:").replace("    ca_file:", "    send_via: graph\n    graph_url: $IDP_URL\n    upstream_wait: 8s\n    ca_file:")
extra += g.replace("google:", "google-api:").replace("    ca_file:", "    send_via: gmail_api\n    gmail_api_url: $IDP_URL/\n    ca_file:")
auto = ms.replace("ms-secret:", "ms-auto:").replace("    ca_file:", "    send_via: auto\n    graph_url: $IDP_URL\n    ca_file:")
auto = auto.replace("port: $SMTP_STARTTLS_PORT, tls: starttls", "port: $AUTO_DROP, tls: starttls")
s = s.replace("  ms-cert:", extra + auto + "  ms-cert:")
h = re.search(r'login: erp, password_hash: "([^"]+)"', s).group(1)
s = s.replace("tokens: {backoff: 100ms}", 'admin: {bind: "127.0.0.1:$PROXY_ADMIN"}\ntokens: {backoff: 100ms}')
s = s.replace("senders:", '  - {login: graph, password_hash: "%s", connection: ms-graph, mailbox: erp@contoso.test}\n'
              '  - {login: gapi, password_hash: "%s", connection: google-api, mailbox: alice@fabrikam.test}\n'
              '  - {login: auto, password_hash: "%s", connection: ms-auto, mailbox: alice@contoso.test}\nsenders:' % (h, h, h))
open(p, "w").write(s)
PYEOF
PW='erp-pass word"1'
check "--check explains what Graph and the Gmail API need" bash -c \
  "'$PROXY_BIN' --config '$WORK/proxy.yaml' --check > '$WORK/check.out' 2>&1 && grep -q 'ms-graph: send_via graph .*Mail.Send.*admin consent.*application access policy' '$WORK/check.out' && grep -q 'google-api: send_via gmail_api .*Gmail API enabled' '$WORK/check.out'"
check "test ms-graph: the Graph token, nothing sent" bash -c \
  "'$PROXY_BIN' --config '$WORK/proxy.yaml' test ms-graph > '$WORK/test-graph.out' 2>&1 && grep -q 'api token .*ok .*scope https://graph.microsoft.com/.default for $IDP_URL/v1.0/users/erp@contoso.test/sendMail' '$WORK/test-graph.out' && grep -q '^verdict: OK' '$WORK/test-graph.out'"
proxy_start

api_stats() { curl -sS -m 5 "$IDP_CONTROL/_stats"; }
sent_count() {  # sent_count MESSAGE_ID_FILE: how often the API handed this message on
  local id
  id=$(grep -m1 -i '^Message-ID:' "$1" | cut -d' ' -f2 | tr -d '\r')
  api_stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_sent"].count(sys.argv[1]))' "$id"
}
# new_message NAME FROM TO CC [SIZE]: a message file with To and Cc headers
new_message() {
  local f="$WORK/$1.eml"
  $PY "$SRC/tests/clients/make_message.py" "$f" "$2" "$3" "$1" "${5:-0}"
  $PY - "$f" "$4" <<'PY'
import sys
p, cc = sys.argv[1], sys.argv[2]
b = open(p, "rb").read()
i = b.index(b"\r\nTo: ") + 2
j = b.index(b"\r\n", i) + 2
open(p, "wb").write(b[:j] + b"Cc: Bob Example <" + cc.encode() + b">\r\n" + b[j:])
PY
  echo "$f"
}
send() {  # send LOGIN FROM RCPTS FILE -> prints the RESULT (a multi-line reply joined by spaces)
  XO_PASSWORD=$PW $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$1" - "$2" "$3" "$4" 2>&1 |
    sed -n '/^RESULT/,$p' | tr '\n' ' ' || true
}

# ---- three recipients through each API: To, Cc and one only in the envelope
three_way() {  # three_way NAME LOGIN FROM DOMAIN
  local name=$1 login=$2 from=$3 d=$4 tag="$1-$RANDOM$RANDOM"
  local msg
  msg=$(new_message "$tag" "$from" "to-$name@$d" "cc-$name@$d")
  local out
  out=$(send "$login" "$from" "to-$name@$d,cc-$name@$d,hidden-$name@$d" "$msg")
  check "$name: 250 after the API's success ($out)" grep -q "^RESULT 250 .*sent through" <<<"$out"
  for who in to cc hidden; do
    local f
    if ! f=$(maildir_find "$who-$name@$d" "Subject: $tag"); then fail "$name: not delivered to $who-$name@$d"; continue; fi
    check "$name: $who-$name@$d got it byte-identical" $PY "$SRC/tests/clients/compare_delivered.py" "$msg" "$f"
    check "$name: no Bcc header at $who-$name@$d" bash -c "! grep -qi '^Bcc:' '$f'"
  done
  check "$name: handed on once" test "$(sent_count "$msg")" = 1
}
three_way graph graph erp@contoso.test contoso.test
three_way gmail gapi alice@fabrikam.test fabrikam.test
check "proxy log: Graph path used for erp@contoso.test" grep -q "sending for erp@contoso.test through Microsoft Graph sendMail" "$WORK/proxy.log"
check "idp log: Graph and Gmail requests checked and sent" bash -c "grep -q 'POST /v1.0/users/erp%40contoso.test/sendMail .* 202 graph sent' '$IDP_LOG' && grep -q 'messages/send .* 200 gmail sent' '$IDP_LOG'"

# ---- a large message through the Gmail API (spooled to a file) arrives whole
big=$(new_message "big-$RANDOM" alice@fabrikam.test big@fabrikam.test bigcc@fabrikam.test 5000000)
out=$(send gapi alice@fabrikam.test big@fabrikam.test,bigcc@fabrikam.test "$big")
check "gmail: 5 MB message accepted ($out)" grep -q "^RESULT 250" <<<"$out"
f=$(maildir_find big@fabrikam.test "Subject: $(basename "$big" .eml)") && \
  check "gmail: 5 MB message byte-identical" $PY "$SRC/tests/clients/compare_delivered.py" "$big" "$f" || fail "gmail: 5 MB message not delivered"

# ---- failures: the client's reply, and the message sent once or not at all
api_case() {  # api_case graph|gmail NAME CONTROL_JSON EXPECT_REGEX EXPECTED_SENT_COUNT
  local kind=$1 login=graph from=erp@contoso.test domain=contoso.test p=f tag=fail msg out; shift
  [ "$kind" = gmail ] && { login=gapi; from=alice@fabrikam.test; domain=fabrikam.test; p=g; tag=gfail; }
  idp_control '{"api_fail": "none"}'
  idp_control "$2"
  msg=$(new_message "$tag-$1-$RANDOM" "$from" "$p-$1@$domain" "${p}cc-$1@$domain")
  out=$(send "$login" "$from" "$p-$1@$domain" "$msg")
  check "$kind $1: reply ($out)" grep -Eq "$3" <<<"$out"
  check "$kind $1: handed on $4 time(s)" test "$(sent_count "$msg")" = "$4"
  idp_control '{"api_fail": "none"}'
}
api_case graph 503-then-ok '{"api_fail": "503", "count": 1, "retry_after": 1}' '^RESULT 250 ' 1
api_case graph 429-too-long '{"api_fail": "429", "count": 1, "retry_after": 100}' '^RESULT 451 4\.4\.5 .*throttling' 0
api_case graph 503-always '{"api_fail": "503", "retry_after": 3}' '^RESULT 451 4\.4\.5 ' 0
before=$(idp_requests "$MS_SECRET_CLIENT_ID")
api_case graph 401-once '{"api_fail": "401", "count": 1}' '^RESULT 250 ' 1
check "graph 401: one fresh token fetched" test "$(idp_requests "$MS_SECRET_CLIENT_ID")" -gt "$before"
api_case graph 401-always '{"api_fail": "401"}' '^RESULT 451 4\.7\.0 .*refused twice' 0
api_case graph 403 '{"api_fail": "403"}' '^RESULT 451 4\.7\.1 .*ErrorAccessDenied.*Mail\.Send.*Grant admin consent' 0
api_case graph 403send '{"api_fail": "403send"}' '^RESULT 550 5\.7\.60 .*Add-RecipientPermission' 0
# Sent, then no answer: never retried, never a 4xx (the client would send it again).
api_case graph drop-after-send '{"api_fail": "drop", "count": 1}' '^RESULT 554 5\.4\.7 Delivery status unknown.*not retried.*Sent Items of erp@contoso.test' 1
check "proxy log: outcome unknown, not retried" grep -q "no answer after the message was sent .*outcome unknown, not retried" "$WORK/proxy.log"
api_case graph 413 '{"api_fail": "413"}' '^RESULT 552 5\.3\.4 .*Microsoft Graph sendMail \(3145728 bytes' 0
# The Gmail API's own failures.
api_case gmail api-disabled '{"api_fail": "gmail_disabled"}' '^RESULT 451 4\.7\.1 .*accessNotConfigured.*Gmail API > Enable' 0
api_case gmail scopes '{"api_fail": "403"}' '^RESULT 451 4\.7\.1 .*insufficientPermissions.*Domain-wide delegation' 0
api_case gmail 429-then-ok '{"api_fail": "429", "count": 1, "retry_after": 1}' '^RESULT 250 .*Gmail API' 1
check "proxy log: Retry-After honoured" grep -q "HTTP 503 ServiceUnavailable: Service unavailable., retrying in 1 s" "$WORK/proxy.log"

# ---- Graph's 4 concurrent requests per mailbox: 8 clients at once, at most 4 requests in flight
idp_control '{"api_delay": 1}'
senders=()
for i in $(seq 1 8); do
  msg=$(new_message "conc-$i-$RANDOM" erp@contoso.test "conc@contoso.test" "conccc@contoso.test")
  send graph erp@contoso.test conc@contoso.test "$msg" > "$WORK/conc-$i.out" &
  senders+=($!)
done
wait "${senders[@]}"   # (not a bare wait: the dropper runs in the background too)
idp_control '{"api_delay": 0}'
check "graph: 8 clients at once all get 250" test "$(cat "$WORK"/conc-*.out | grep -o 'RESULT 250' | wc -l)" = 8
# Under load the 8 clients may not all be there at once: the bound is what matters (at most 4),
# and that requests did overlap (at least 2).
inflight=$(api_stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_max_inflight"].get("erp@contoso.test", 0))')
check "graph: at most 4 requests at once for the mailbox (most at once: $inflight)" test "$inflight" -le 4 -a "$inflight" -ge 2

# ---- the client vanishes in the middle of a large message: nothing sent, the spool gone
before=$(api_stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_requests"])')
$PY - "$PROXY_SMTP" "$PW" "$PROXY_PID" > "$WORK/vanish.out" 2>&1 <<'PY' || true
import base64, os, socket, sys, time
port, pw, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def links(pid):   # an fd may close between listdir and readlink
    out = []
    for fd in os.listdir("/proc/%s/fd" % pid):
        try:
            out.append(os.readlink("/proc/%s/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
def cmd(line):
    s.sendall(line + b"\r\n")
    while True:
        r = f.readline()
        if r[3:4] != b"-":
            return r
f.readline()
cmd(b"EHLO c.test")
cmd(b"AUTH PLAIN " + base64.b64encode(b"\0graph\0" + pw.encode()))
cmd(b"MAIL FROM:<erp@contoso.test>"); cmd(b"RCPT TO:<vanish@contoso.test>"); print(cmd(b"DATA").decode().strip())
s.sendall(b"Subject: vanish\r\n\r\n" + (b"v" * 76 + b"\r\n") * 20000)   # 1.5 MB: past the memory threshold
time.sleep(1)
spool = links(pid)
print("during:", sum("xoauth2-proxy-spool" in l for l in spool))
f.close()
s.shutdown(socket.SHUT_RDWR)
s.close()
for _ in range(100):   # at most 10 s for the proxy to notice
    time.sleep(0.1)
    spool = links(pid)
    if not any("xoauth2-proxy-spool" in l for l in spool):
        break
print("after:", sum("xoauth2-proxy-spool" in l for l in spool))
PY
check "vanishing client: the message was being spooled to an (unlinked) file" grep -q "^during: 1" "$WORK/vanish.out"
check "vanishing client: the spool file is gone with the session" grep -q "^after: 0" "$WORK/vanish.out"
check "vanishing client: no API request" test "$(api_stats | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_requests"])')" = "$before"
check "vanishing client: logged as aborted" wait_grep "client lost during DATA" "$WORK/proxy.log"

# ---- over Graph's limit: refused up front (MAIL SIZE=) and at the end of data, never 250
$PY - "$PROXY_SMTP" "$PW" > "$WORK/size.out" 2>&1 <<'PY' || true
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.ehlo("c.test"); s.login("graph", sys.argv[2]); s.ehlo("c.test")
print("SIZE", s.esmtp_features.get("size"))
print("MAIL", *s.mail("erp@contoso.test", ["SIZE=4000000"]))
s.rset()
s.mail("erp@contoso.test"); s.rcpt("x-big@contoso.test")   # no SIZE=: the end of data must refuse it
code, msg = s.data(b"Subject: big\r\n\r\n" + b"y" * 998 + b"\r\n" + (b"z" * 76 + b"\r\n") * 45000)
print("DATA", code, msg.decode())
PY
check "graph: SIZE 3145728 advertised after login" grep -q "^SIZE 3145728" "$WORK/size.out"
check "graph: MAIL SIZE=4000000 refused with 552 5.3.4 naming the limit" grep -q "^MAIL 552 b'5.3.4 .*Microsoft Graph sendMail: 3145728 bytes" "$WORK/size.out"
check "graph: 3.5 MB message refused at end of data with 552 5.3.4" grep -q "^DATA 552 5.3.4" "$WORK/size.out"

# ---- send_via auto: 535 5.7.139 from SMTP moves the connection to Graph, said once
for i in 1 2; do
  msg=$(new_message "auto-$i-$RANDOM" alice@contoso.test "auto-to@contoso.test" "auto-cc@contoso.test")
  out=$(send auto alice@contoso.test auto-to@contoso.test "$msg")
  check "auto #$i: delivered through Graph ($out)" grep -q "^RESULT 250 .*Microsoft Graph" <<<"$out"
  maildir_find auto-to@contoso.test "Subject: $(basename "$msg" .eml)" >/dev/null || fail "auto #$i: not delivered"
done
switches() { grep -c 'connection ms-auto: the upstream refused SMTP AUTH .*5.7.139.*Microsoft Graph sendMail from now on' "$WORK/proxy.log"; }
check "auto: the switch is logged once with its reason" test "$(switches)" = 1
# /status: the path each connection uses, the auto switch, the Graph token among the connection's.
curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/status" > "$WORK/status.json"
check "/status: send_via, the auto switch and the Graph token" $PY - "$WORK/status.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["connections"]
assert c["ms-graph"]["send_via"] == "graph", c["ms-graph"]
assert c["ms-graph"]["state"] == "active", c["ms-graph"]
assert any(t.get("for") == "api" and t["state"] == "active" for t in c["ms-graph"]["tokens"]), c["ms-graph"]["tokens"]
assert c["google-api"]["send_via"] == "gmail_api"
assert c["ms-auto"]["switched_to_graph"] is True, c["ms-auto"]
assert c["ms-secret"]["send_via"] == "smtp" and "switched_to_graph" not in c["ms-secret"]
PY
# Until the next reload: then SMTP is tried again (and refused again here).
kill -HUP "$PROXY_PID"
check "auto: reloaded" wait_grep "configuration reloaded from" "$WORK/proxy.log"
msg=$(new_message "auto-3-$RANDOM" alice@contoso.test "auto-to@contoso.test" "auto-cc@contoso.test")
out=$(send auto alice@contoso.test auto-to@contoso.test "$msg")
check "auto after reload: SMTP tried again, then Graph ($out)" bash -c "grep -q '^RESULT 250 .*Microsoft Graph' <<<'$out' && test \"\$(grep -c 'connection ms-auto: the upstream refused SMTP AUTH' '$WORK/proxy.log')\" = 2"
finish
