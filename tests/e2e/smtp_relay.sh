#!/bin/bash
# A legacy client sends with a username and password through the proxy; the
# message arrives through real Postfix (STARTTLS + XOAUTH2 via Dovecot) in the
# mapped mailbox, byte for byte. For each connection kind: Microsoft client
# secret, Microsoft certificate, Google service account, generic; with swaks
# (AUTH LOGIN and AUTH PLAIN) and Python smtplib.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
# Two more ways upstream: implicit TLS (465 style) and OAUTHBEARER instead of XOAUTH2.
$PY - "$WORK/proxy.yaml" <<PYEOF
import sys, re
p = sys.argv[1]; s = open(p).read()
block = s[s.index("  ms-secret:"):s.index("  ms-cert:")]
extra = block.replace("ms-secret:", "ms-implicit:").replace("port: $SMTP_STARTTLS_PORT, tls: starttls", "port: $SMTP_IMPLICIT_PORT, tls: implicit")
extra += block.replace("ms-secret:", "ms-bearer:").replace("    ca_file:", "    sasl: oauthbearer\n    ca_file:")
s = s.replace("  ms-cert:", extra + "  ms-cert:")
h = re.search(r'login: erp, password_hash: "([^"]+)"', s).group(1)
s = s.replace("senders:", '  - {login: implicit, password_hash: "%s", connection: ms-implicit, mailbox: alice@contoso.test}\n'
              '  - {login: bearer, password_hash: "%s", connection: ms-bearer, mailbox: alice@contoso.test}\nsenders:' % (h, h))
open(p, "w").write(s)
PYEOF
# Local TLS towards the legacy client: STARTTLS and implicit TLS with the admin's certificate.
LOCAL_STARTTLS=$((PORT_BASE + 23)) LOCAL_IMPLICIT=$((PORT_BASE + 24))
sed -i "s#^connections:#  - {name: tls, protocol: smtp, bind: \"127.0.0.1:$LOCAL_STARTTLS\", tls: starttls, cert_file: $WORLD_ROOT/tls/localhost.pem, key_file: $WORLD_ROOT/tls/localhost.key}\n  - {name: tls-implicit, protocol: smtp, bind: \"127.0.0.1:$LOCAL_IMPLICIT\", tls: implicit, cert_file: $WORLD_ROOT/tls/localhost.pem, key_file: $WORLD_ROOT/tls/localhost.key}\nconnections:#" "$WORK/proxy.yaml"
proxy_start

send_swaks() {  # send_swaks LOGIN PASSWORD MECH FROM TO FILE
  # swaks ends the data with CRLF . CRLF after the file's content: give it the
  # message without its last CRLF, so that what it sends is the message itself.
  head -c -2 "$6" > "$6.swaks"
  swaks --server 127.0.0.1 --port "$PROXY_SMTP" --auth "$3" --auth-user "$1" --auth-password "$2" --auth-hide-password \
    --from "$4" --to "$5" --data "@$6.swaks" --timeout 60 >"$WORK/swaks-$1-$3.out" 2>&1
}

relay_case() {  # relay_case NAME LOGIN PASSWORD MAILBOX CLIENT
  local name=$1 login=$2 password=$3 mailbox=$4 client=$5
  local tag="relay-$name-$client-$RANDOM$RANDOM"
  local msg="$WORK/$tag.eml"
  $PY "$SRC/tests/clients/make_message.py" "$msg" "$mailbox" "$mailbox" "$tag"
  case $client in
    swaks-login) send_swaks "$login" "$password" LOGIN "$mailbox" "$mailbox" "$msg" ;;
    swaks-plain) send_swaks "$login" "$password" PLAIN "$mailbox" "$mailbox" "$msg" ;;
    smtplib) XO_PASSWORD=$password $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$login" - \
               "$mailbox" "$mailbox" "$msg" >"$WORK/$tag.out" 2>&1 ;;
  esac || { fail "$name/$client: client refused ($(tail -3 "$WORK"/*"$login"*.out "$WORK/$tag.out" 2>/dev/null | tr '\n' ' '))"; return; }
  local f
  if ! f=$(maildir_find "$mailbox" "Subject: $tag"); then fail "$name/$client: not delivered to $mailbox"; return; fi
  check "$name/$client: delivered to $mailbox byte-identical" $PY "$SRC/tests/clients/compare_delivered.py" "$msg" "$f"
}

for client in swaks-login swaks-plain smtplib; do
  relay_case ms-secret erp 'erp-pass word"1' erp@contoso.test $client
  relay_case ms-cert scanner scanner-pass scanner@contoso.test $client
  relay_case google gmail gmail-pass alice@fabrikam.test $client
done
relay_case generic generic generic-pass alice@contoso.test smtplib
relay_case ms-implicit implicit 'erp-pass word"1' alice@contoso.test smtplib
relay_case ms-bearer bearer 'erp-pass word"1' alice@contoso.test smtplib

for mode in starttls implicit; do
  port=$LOCAL_STARTTLS; flag=--tls
  [ $mode = implicit ] && { port=$LOCAL_IMPLICIT; flag=--tls-on-connect; }
  swaks --server 127.0.0.1 --port $port $flag --auth LOGIN --auth-user erp --auth-password 'erp-pass word"1' \
    --auth-hide-password --from erp@contoso.test --to alice@contoso.test --header "Subject: local-$mode" \
    --timeout 60 >"$WORK/local-$mode.out" 2>&1
  check "local $mode: TLS with the client, then relayed" bash -c "grep -q 'TLS started' '$WORK/local-$mode.out' && grep -qE '^<~  250 2.0.0 Ok: ([0-9]+ bytes )?queued' '$WORK/local-$mode.out'"
done
check "local STARTTLS offered only before TLS" bash -c "grep -c '250-STARTTLS' '$WORK/local-starttls.out' | grep -qx 1"

# The upstream saw STARTTLS and XOAUTH2 for each mapped mailbox (Postfix may
# still be writing its log: each check waits for its line, bounded).
for mb in erp@contoso.test scanner@contoso.test alice@fabrikam.test; do
  check "upstream log: XOAUTH2 for $mb" wait_grep "sasl_method=XOAUTH2, sasl_username=$mb" "$POSTFIX_LOG"
done
check "upstream log: OAUTHBEARER for the ms-bearer connection" wait_grep "sasl_method=OAUTHBEARER, sasl_username=alice@contoso.test" "$POSTFIX_LOG"
check "upstream log: implicit TLS port used" wait_grep "world/smtps/smtpd.*sasl_method=XOAUTH2, sasl_username=alice@contoso.test" "$POSTFIX_LOG"
check "proxy log: implicit TLS upstream" wait_grep -E "open for alice@contoso.test \(implicit TLS TLSv1.3, (AUTH )?XOAUTH2\)" "$WORK/proxy.log"
check "upstream log: TLS established for the proxy's sessions" wait_grep -E "TLS connection established from localhost" "$POSTFIX_LOG"
check "proxy log: one end line per session with result ok" wait_grep 'session .* end client=127.0.0.1:.* login=erp connection=ms-secret mailbox=erp@contoso.test .*messages=1 .*result=ok' "$WORK/proxy.log"
check "proxy log: upstream opened with STARTTLS and XOAUTH2" wait_grep -E 'open for erp@contoso.test \(STARTTLS TLSv1.3, (AUTH )?XOAUTH2\)' "$WORK/proxy.log"
finish
