#!/bin/bash
# No 250 for what the upstream did not accept, and the right 4xx/5xx for each
# failure: upstream rejects at RCPT and at end of data, drops mid-DATA; wrong
# password and unknown login (same 535); identity provider failing (454 and a
# log line naming the connection and AADSTS code); upstream without STARTTLS
# and with a certificate for another host (refused); a mailbox the app was not
# granted (454, log shows the upstream's refusal); trusted-sender mapping.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
# Extra connections pointing at the misbehaving upstreams of the test world.
$PY - "$WORK/proxy.yaml" <<PYEOF
import sys, re
p = sys.argv[1]; s = open(p).read()
block = s[s.index("  ms-secret:"):s.index("  ms-cert:")]
extra = ""
for name, port in (("ms-notls", "$SMTP_NOTLS_PORT"), ("ms-wronghost", "$SMTP_WRONGHOST_PORT"), ("ms-drop", "$SMTP_DROP_PORT")):
    extra += block.replace("ms-secret:", name + ":").replace("port: $SMTP_STARTTLS_PORT", "port: " + port)
s = s.replace("  ms-cert:", extra + "  ms-cert:")
users = ""
h = re.search(r'login: erp, password_hash: "([^"]+)"', s).group(1)
for login, conn, mb in (("notls", "ms-notls", "erp@contoso.test"), ("wronghost", "ms-wronghost", "erp@contoso.test"),
                        ("drop", "ms-drop", "erp@contoso.test"), ("bob", "ms-secret", "bob@contoso.test")):
    users += '  - {login: %s, password_hash: "%s", connection: %s, mailbox: %s}\n' % (login, h, conn, mb)
s = s.replace("senders:", users + "senders:")
open(p, "w").write(s)
PYEOF
proxy_start
PW='erp-pass word"1'

smtp() {  # smtp NAME LOGIN PASSWORD FROM TO SUBJECT [SIZE] -> prints the RESULT line
  local msg="$WORK/$1.eml"
  $PY "$SRC/tests/clients/make_message.py" "$msg" "$4" "$5" "$6" "${7:-0}"
  XO_PASSWORD=$3 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$2" - "$4" "$5" "$msg" \
    >"$WORK/$1.out" 2>&1 || true
  grep -E '^(AUTH|RESULT)' "$WORK/$1.out" | tail -1
}
expect() {  # expect NAME PATTERN ACTUAL
  if [[ "$3" =~ $2 ]]; then pass "$1: $3"; else fail "$1: expected /$2/, got: $3"; fi
}

r=$(smtp rcpt erp "$PW" erp@contoso.test reject@contoso.test "rcpt reject")
expect "upstream rejects at RCPT: client sees its 550" '^RESULT 550 5\.1\.1' "$r"

r=$(smtp eod erp "$PW" erp@contoso.test alice@contoso.test "REJECT-AT-DATA please")
expect "upstream rejects at end of data: client sees its 5xx" '^RESULT 5[0-9][0-9] ' "$r"
check "no delivery of the rejected message" bash -c "! grep -rqs 'REJECT-AT-DATA' '$MAIL_DIR'"

r=$(smtp drop drop "$PW" erp@contoso.test alice@contoso.test "dropped mid data" 2000000)
expect "upstream drops mid-DATA: client gets 451 4.4.x" '^RESULT 451 4\.4\.' "$r"

# PIPELINING: MAIL, RCPTs and DATA in one write; one reply each, in order, rejections included.
check "pipelined: a rejected and an accepted recipient, then the message" \
  $PY "$SRC/tests/clients/pipeline_check.py" "$PROXY_SMTP" erp "$PW" erp@contoso.test reject@contoso.test,alice@contoso.test 250,550,250,354
check "pipelined: every recipient rejected, DATA refused by the upstream" \
  $PY "$SRC/tests/clients/pipeline_check.py" "$PROXY_SMTP" erp "$PW" erp@contoso.test reject@contoso.test 250,550,554

r1=$(smtp badpw erp "wrong password" erp@contoso.test alice@contoso.test x)
r2=$(smtp nouser nobody "$PW" erp@contoso.test alice@contoso.test x)
expect "wrong password: 535 5.7.8" '^RESULT 535 5\.7\.8' "$r1"
expect "unknown login: 535 5.7.8" '^RESULT 535 5\.7\.8' "$r2"
check "wrong password and unknown login get the same reply" test "${r1#RESULT }" = "${r2#RESULT }"

r=$(smtp notls notls "$PW" erp@contoso.test alice@contoso.test x)
expect "upstream without STARTTLS: 454 4.7.0" '^RESULT 454 4\.7\.0' "$r"
check "log: refused for missing STARTTLS" grep -q 'does not offer STARTTLS; refusing to authenticate in clear' "$WORK/proxy.log"

r=$(smtp wronghost wronghost "$PW" erp@contoso.test alice@contoso.test x)
expect "upstream certificate for the wrong host: 454 4.7.0" '^RESULT 454 4\.7\.0' "$r"
check "log: host name verification failed" grep -qiE 'connection=ms-wronghost .*(hostname mismatch|certificate verify failed)' "$WORK/proxy.log"

r=$(smtp notgranted bob "$PW" bob@contoso.test alice@contoso.test x)
expect "mailbox the app was not granted: 454 4.7.0" '^RESULT 454 4\.7\.0' "$r"
check "log: upstream refused XOAUTH2 for bob@contoso.test" grep -qE 'connection=ms-secret mailbox=bob@contoso.test .*auth failure: .*AUTH XOAUTH2 for bob@contoso.test refused: 535' "$WORK/proxy.log"
grep -E 'mailbox=bob@contoso.test .*auth failure' "$WORK/proxy.log" | head -1 | sed 's/^/  log: /'

# Identity provider failing: the cached token would hide it, so restart the proxy.
proxy_stop
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"invalid_secret\"}"
proxy_start
r=$(smtp idpfail erp "$PW" erp@contoso.test alice@contoso.test x)
expect "identity provider refuses the secret: 454 4.7.0" '^RESULT 454 4\.7\.0' "$r"
check "log: names the connection and AADSTS7000215 with advice" \
  grep -qE 'connection=ms-secret .*AADSTS7000215 invalid_client.*fix: the client secret is wrong' "$WORK/proxy.log"
grep -E 'connection=ms-secret .*AADSTS7000215' "$WORK/proxy.log" | tail -1 | sed 's/^/  log: /'
idp_reset

# Trusted senders: no AUTH, mapped by envelope sender; unmapped -> 550 5.7.1.
msg="$WORK/trusted.eml"
$PY "$SRC/tests/clients/make_message.py" "$msg" alice@contoso.test alice@contoso.test "trusted-$RANDOM"
out=$($PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_TRUSTED" - - alice@contoso.test alice@contoso.test "$msg" 2>&1 || true)
expect "trusted sender *@contoso.test relayed" '^RESULT 250' "$out"
check "trusted message delivered" maildir_find alice@contoso.test "Subject: $(grep -m1 '^Subject:' "$msg" | cut -d' ' -f2 | tr -d '\r')"
out=$($PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_TRUSTED" - - someone@elsewhere.test alice@contoso.test "$msg" 2>&1 || true)
expect "unmapped trusted sender: 550 5.7.1" '^RESULT 550 5\.7\.1' "$out"
out=$($PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" - - alice@contoso.test alice@contoso.test "$msg" 2>&1 || true)
expect "no AUTH on the AUTH listener: 530 (never an open relay)" '^RESULT 530 5\.7\.0' "$out"
finish
