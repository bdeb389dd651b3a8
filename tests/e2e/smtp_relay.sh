#!/bin/bash
# A legacy client sends with a username and password through the proxy; the
# message arrives through real Postfix (STARTTLS + XOAUTH2 via Dovecot) in the
# mapped mailbox, byte for byte. For each connection kind: Microsoft client
# secret, Microsoft certificate, Google service account, generic; with swaks
# (AUTH LOGIN and AUTH PLAIN) and Python smtplib.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
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

# The upstream saw STARTTLS and XOAUTH2 for each mapped mailbox.
sleep 0.5
for mb in erp@contoso.test scanner@contoso.test alice@fabrikam.test; do
  check "upstream log: XOAUTH2 for $mb" grep -q "sasl_method=XOAUTH2, sasl_username=$mb" "$POSTFIX_LOG"
done
check "upstream log: TLS established for the proxy's sessions" grep -qE "TLS connection established from localhost" "$POSTFIX_LOG"
check "proxy log: one end line per session with result ok" grep -q 'session .* end client=127.0.0.1:.* login=erp connection=ms-secret mailbox=erp@contoso.test .*messages=1 .*result=ok' "$WORK/proxy.log"
check "proxy log: upstream opened with STARTTLS and XOAUTH2" grep -q 'open for erp@contoso.test (STARTTLS TLSv1.3, AUTH XOAUTH2)' "$WORK/proxy.log"
finish
