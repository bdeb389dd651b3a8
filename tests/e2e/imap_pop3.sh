#!/bin/bash
# Legacy readers through the proxy against Dovecot (IMAPS and POP3S upstream,
# XOAUTH2 checked by the test identity provider): imaplib LOGIN with literals,
# SELECT, APPEND and a 20 MB FETCH compared byte for byte (with the proxy's RSS
# growth measured), IDLE woken by a delivery; poplib USER/PASS and RETR; curl
# IMAP and POP3 URLs; fetchmail through the proxy into a local SMTP listener;
# each connection kind; the failure replies; upstream closing mid-session;
# TLS sessions towards the upstream resumed after the first of a connection.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
# fetchmail's login: erp's mailbox, with a password fetchmail's rc syntax takes as it is.
sed -i "s#^senders:#  - {login: fetch, password_hash: \"$(hash_password fetch-pass)\", connection: ms-secret, mailbox: erp@contoso.test}\nsenders:#" "$WORK/proxy.yaml"
proxy_start
C="$PY $SRC/tests/clients/imap_pop3_checks.py"
PW='erp-pass word"1'
run() { local name=$1; shift; if "$@" >"$WORK/$name.out" 2>&1; then :; else FAILS=$((FAILS + 1)); fi; sed 's/^/  /' "$WORK/$name.out" | grep -E 'PASS|FAIL|REPLY'; }

run literal $C login-literal "$PROXY_IMAP" erp "$PW"
for kind in "erp:$PW:ms-secret" "scanner:scanner-pass:ms-cert" "gmail:gmail-pass:google"; do
  IFS=: read -r login pw conn <<<"$kind"
  run "imap-$conn" $C imap-login "$PROXY_IMAP" "$login" "$pw"
done

# 20 MB through the proxy: APPEND then FETCH, RSS growth measured.
$PY "$SRC/tests/clients/make_message.py" "$WORK/big.eml" erp@contoso.test erp@contoso.test "big-imap-$RANDOM" 20971520
idle_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY_PID/status")
echo 5 > "/proc/$PROXY_PID/clear_refs" 2>/dev/null || true   # reset VmHWM to the current RSS
run fetch-big $C fetch-big "$PROXY_IMAP" erp "$PW" "$WORK/big.eml"
peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status")
echo "MEASURE imap 20MB APPEND+FETCH: idle RSS ${idle_rss} kB, peak RSS (VmHWM) ${peak} kB, growth $((peak - idle_rss)) kB"
# Under AddressSanitizer freed memory sits in its quarantine: RSS says nothing there.
if [ "${XO_SANITIZED:-0}" = 1 ]; then
  echo "SKIP: RSS bound (sanitizer build)"
else
  check "proxy RSS grew by less than 5 MB during the 20 MB FETCH ($((peak - idle_rss)) kB)" test $((peak - idle_rss)) -lt 5120
fi

run idle $C idle "$PROXY_IMAP" gmail gmail-pass "$PROXY_SMTP" gmail gmail-pass alice@fabrikam.test

# POP3: a message delivered through the proxy's SMTP side, read back with poplib, for each kind.
for kind in "erp:$PW:erp@contoso.test" "scanner:scanner-pass:scanner@contoso.test" "gmail:gmail-pass:alice@fabrikam.test"; do
  IFS=: read -r login pw mailbox <<<"$kind"
  tag="pop3-$login-$RANDOM"
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$tag.eml" "$mailbox" "$mailbox" "$tag"
  XO_PASSWORD=$pw $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$login" - "$mailbox" "$mailbox" "$WORK/$tag.eml" >/dev/null 2>&1 || true
  maildir_find "$mailbox" "Subject: $tag" >/dev/null || fail "$tag not delivered"
  run "$tag" $C pop3-retr "$PROXY_POP3" "$login" "$pw" "$tag" "$WORK/$tag.eml"
done

# curl speaks IMAP and POP3 URLs with a user and password.
printf 'machine 127.0.0.1 login scanner password scanner-pass\n' > "$WORK/netrc"; chmod 600 "$WORK/netrc"
check "curl imap:// STATUS through the proxy" bash -c "curl -sS -m 30 --netrc-file '$WORK/netrc' 'imap://127.0.0.1:$PROXY_IMAP/INBOX' -X 'STATUS INBOX (MESSAGES)' >'$WORK/curl-imap.out' 2>&1 && grep -q 'MESSAGES' '$WORK/curl-imap.out'"
check "curl pop3:// lists the mailbox through the proxy" bash -c "curl -sS -m 30 --netrc-file '$WORK/netrc' 'pop3://127.0.0.1:$PROXY_POP3/' >'$WORK/curl-pop3.out' 2>&1 && grep -qE '^1 [0-9]+' '$WORK/curl-pop3.out'"

# fetchmail: erp's mailbox over POP3 through the proxy, handed to a local SMTP listener (the
# proxy's trusted one: envelope sender erp@contoso.test maps to ms-secret) -> alice@contoso.test.
cat > "$WORK/fetchmailrc" <<RC
set no syslog
set logfile "$WORK/fetchmail.log"
poll 127.0.0.1 service $PROXY_POP3 protocol pop3 auth password timeout 60:
  user "fetch" password "fetch-pass" is "alice@contoso.test" here
  keep fetchall no rewrite
  smtphost 127.0.0.1/$PROXY_TRUSTED smtpname alice@contoso.test
  sslproto ''
RC
chmod 600 "$WORK/fetchmailrc"
count_alice() { ls "$MAIL_DIR/contoso.test/alice/Maildir/new" 2>/dev/null | wc -l || true; }
before=$(count_alice)
timeout 120 fetchmail -f "$WORK/fetchmailrc" -i "$WORK/fetchmail.ids" --nodetach --pidfile "$WORK/fetchmail.pid" \
  >"$WORK/fetchmail.out" 2>&1 || true
end=$((SECONDS + 30))   # the hand-over may still be on its way: wait for it, bounded
while [ "$(count_alice)" -le "$before" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
after=$(count_alice)
check "fetchmail fetched through the proxy and handed over to the SMTP listener ($before -> $after in alice's mailbox)" test "$after" -gt "$before"
grep -E 'message|reading' "$WORK/fetchmail.out" "$WORK/fetchmail.log" 2>/dev/null | head -2 | sed 's/^/  fetchmail: /' || true

# Failures.
run badpw-imap $C imap-fail "$PROXY_IMAP" erp "wrong password" "[AUTHENTICATIONFAILED] Authentication failed."
run nouser-imap $C imap-fail "$PROXY_IMAP" nobody "$PW" "[AUTHENTICATIONFAILED] Authentication failed."
check "IMAP: unknown login and wrong password get the same reply" \
  test "$(grep REPLY "$WORK/badpw-imap.out")" = "$(grep REPLY "$WORK/nouser-imap.out")"
run badpw-pop3 $C pop3-fail "$PROXY_POP3" erp "wrong password" "-ERR [AUTH] Authentication failed."
run nouser-pop3 $C pop3-fail "$PROXY_POP3" nobody "$PW" "-ERR [AUTH] Authentication failed."
proxy_stop
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"invalid_secret\"}"
proxy_start
run idpfail-imap $C imap-fail "$PROXY_IMAP" erp "$PW" "[UNAVAILABLE]"
run idpfail-pop3 $C pop3-fail "$PROXY_POP3" erp "$PW" "-ERR [SYS/TEMP]"
check "log: IMAP token failure names the connection and AADSTS7000215" \
  grep -qE 'imap session .* connection=ms-secret .*token failure: AADSTS7000215' "$WORK/proxy.log"
idp_reset

# The upstream closes mid-session: the client side is closed cleanly.
$PY - "$PROXY_IMAP" <<'PYEOF' >"$WORK/midsession.out" 2>&1 &
import imaplib, sys, time
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1])); M.login("gmail", "gmail-pass"); M.select("INBOX")
print("logged in", flush=True)
try:
    for _ in range(100):
        M.noop(); time.sleep(0.1)
    print("still connected")
except (imaplib.IMAP4.abort, OSError) as e:
    print("closed cleanly:", type(e).__name__)
PYEOF
mid=$!
# TLS session resumption towards the upstream: every IMAPS and POP3S session
# after the first of its connection offers a ticket of an earlier one, and Dovecot takes it.
imap_opens=$(grep -cE 'imap session .* upstream [^ ]+ open for .*\(implicit TLS TLSv1.3' "$WORK/proxy.log" || true)
imap_resumed=$(grep -cE 'imap session .* upstream [^ ]+ open for .*\(implicit TLS TLSv1.3 resumed' "$WORK/proxy.log" || true)
check "upstream TLS resumed: $imap_resumed of $imap_opens IMAPS opens resumed a session (all but one per connection)" \
  test "$imap_opens" -ge 5 -a "$imap_resumed" -ge $((imap_opens - 3))
pop_resumed=$(grep -cE 'pop3 session .* upstream [^ ]+ open for .*\(implicit TLS TLSv1.3 resumed' "$WORK/proxy.log" || true)
check "upstream TLS resumed for POP3S too ($pop_resumed)" test "$pop_resumed" -ge 1
wait_grep "logged in" "$WORK/midsession.out" || true   # a fresh key derivation, token and TLS handshake (slow under ASan)
pkill -KILL -P "$(cat "$WORLD_ROOT/run/dovecot/master.pid")"   # every Dovecot child, the upstream's imap process among them
wait $mid || true
check "upstream gone mid-session: the client sees the connection closed" grep -q "closed cleanly" "$WORK/midsession.out"
check "log: the session ended with the upstream closing" wait_grep -E 'imap session .* login=gmail .*reason="upstream (closed|idle timeout)"' "$WORK/proxy.log"
finish
