#!/bin/bash
# SIGHUP reloads the configuration without dropping sessions: during SMTP
# traffic, a good file (a new user works at once, a removed user is refused,
# an SMTP and an IMAP session opened before the reload finish their work with
# the old configuration), then a broken file (refused with FILE:LINE in the
# log, the previous configuration still serving), and the daemon alive after
# both; daemon.io_threads is read at start only (a reload warns); the token cache of a
# connection the reload does not change is kept
# (no new token request). At start the open files limit is raised to the hard limit, and a hard
# limit below what max_sessions needs is warned about.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
proxy_start
PW='erp-pass word"1'
CFG=$WORK/proxy.yaml
cp "$CFG" "$WORK/proxy-start.yaml"

wait_log() {  # wait_log PATTERN [seconds]: until the proxy log has PATTERN
  local end=$((SECONDS + ${2:-30}))
  until grep -qE -- "$1" "$WORK/proxy.log"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}
send() {  # send NAME LOGIN PASSWORD FROM: one message, "RESULT ..." in $WORK/NAME.out
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$1.eml" "$4" alice@contoso.test "reload-$1"
  XO_PASSWORD=$3 timeout 60 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$2" - "$4" \
    alice@contoso.test "$WORK/$1.eml" >"$WORK/$1.out" 2>&1
}

if [ "$(ulimit -Sn)" != "$(ulimit -Hn)" ]; then
  check "open files limit raised to the hard limit at start" grep -q "open files limit raised from $(ulimit -Sn) to" "$WORK/proxy.log"
fi

# Sessions opened before the reload: SMTP logged in as erp (whom the new file
# removes), IMAP logged in as erp; each waits for $WORK/go, then works.
$PY - 127.0.0.1 "$PROXY_SMTP" "$WORK/go" >"$WORK/old-smtp.out" 2>&1 <<'PY' &
import os, smtplib, sys, time
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, port, timeout=60)
s.ehlo("old-session.test")
s.login("erp", 'erp-pass word"1')
print("LOGGED IN", flush=True)
end = time.time() + 90
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
s.mail("erp@contoso.test")
s.rcpt("alice@contoso.test")
code, msg = s.data(b"Subject: reload-old-session\r\n\r\nsent after two reloads\r\n")
print("RESULT", code, msg.decode(errors="replace"), flush=True)
s.quit()
PY
OLD_SMTP=$!
$PY - 127.0.0.1 "$PROXY_IMAP" "$WORK/go" >"$WORK/old-imap.out" 2>&1 <<'PY' &
import imaplib, os, sys, time
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = imaplib.IMAP4(host, port, timeout=60)
m.login("erp", 'erp-pass word"1')
print("LOGGED IN", flush=True)
end = time.time() + 90
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
typ, data = m.select("INBOX")
print("SELECT", typ, flush=True)
m.logout()
PY
OLD_IMAP=$!
extra_cleanup() { touch "$WORK/go"; kill "$OLD_SMTP" "$OLD_IMAP" "${TRAFFIC:-}" 2>/dev/null || true; }
end=$((SECONDS + 60))
until grep -q "LOGGED IN" "$WORK/old-smtp.out" && grep -q "LOGGED IN" "$WORK/old-imap.out"; do
  [ $SECONDS -lt $end ] || break; sleep 0.1
done
check "SMTP and IMAP sessions logged in before the reload" bash -c "grep -q 'LOGGED IN' '$WORK/old-smtp.out' && grep -q 'LOGGED IN' '$WORK/old-imap.out'"

# Traffic while the signals arrive: ten messages one after the other.
(for i in $(seq 1 10); do send "traffic$i" scanner scanner-pass scanner@contoso.test || true; done) &
TRAFFIC=$!

# Token requests before the reloads: the connections do not change, so their
# cached tokens must survive both reloads (no new request at the IdP).
tokens_before=$(idp_requests "$MS_SECRET_CLIENT_ID")

# 1. A good file: erp removed, newbie added (erp's mailbox).
h_new=$(hash_password 'newbie-pass')
sed -e '/{login: erp,/d' -e "s#^senders:#  - {login: newbie, password_hash: \"$h_new\", connection: ms-secret, mailbox: erp@contoso.test}\nsenders:#" \
  "$WORK/proxy-start.yaml" >"$WORK/proxy-good.yaml"
echo "daemon: {io_threads: 3}" >>"$WORK/proxy-good.yaml"   # read at start only: a warning, the rest applies
cp "$WORK/proxy-good.yaml" "$CFG"
kill -HUP "$PROXY_PID"
check "good file: reloaded" wait_log "configuration reloaded from $CFG"
check "good file: the I/O threads it started with are kept, with a warning" \
  grep -q "reload: daemon.io_threads changed: the number of I/O threads needs a restart" "$WORK/proxy.log"
check "the start line names the I/O threads" grep -qE "ready: .* [0-9]+ I/O thread\(s\)" "$WORK/proxy.log"
send new1 newbie newbie-pass erp@contoso.test
check "good file: the new user relays at once ($(tail -1 "$WORK/new1.out"))" grep -q '^RESULT 250' "$WORK/new1.out"
send gone1 erp "$PW" erp@contoso.test || true
check "good file: the removed user is refused in a new session ($(grep -m1 -E 'AUTH|RESULT|535' "$WORK/gone1.out" | head -c 120))" \
  bash -c "! grep -q '^RESULT 250' '$WORK/gone1.out' && grep -q '535' '$WORK/gone1.out'"

# 2. A broken file: refused, errors with FILE:LINE, the good configuration kept.
cp "$WORK/proxy-good.yaml" "$CFG"
bad_line=$(( $(wc -l <"$CFG") + 1 ))
echo "listners: []" >>"$CFG"
kill -HUP "$PROXY_PID"
check "broken file: refused" wait_log "reload refused: $CFG has 1 error"
check "broken file: the error logged as $CFG:$bad_line" grep -q "reload: $CFG:$bad_line: listners: unknown key" "$WORK/proxy.log"
send new2 newbie newbie-pass erp@contoso.test
check "broken file: the previous (good) configuration still serves the new user ($(tail -1 "$WORK/new2.out"))" grep -q '^RESULT 250' "$WORK/new2.out"
send gone2 erp "$PW" erp@contoso.test || true
check "broken file: the removed user stays refused" bash -c "! grep -q '^RESULT 250' '$WORK/gone2.out'"

# The sessions opened before both reloads finish their work.
touch "$WORK/go"
wait "$OLD_SMTP" || true
wait "$OLD_IMAP" || true
check "SMTP session from before the reloads relays ($(tail -1 "$WORK/old-smtp.out"))" grep -q '^RESULT 250' "$WORK/old-smtp.out"
check "IMAP session from before the reloads selects INBOX" grep -q '^SELECT OK' "$WORK/old-imap.out"
wait "$TRAFFIC" || true
ok=$(grep -l '^RESULT 250' "$WORK"/traffic*.out 2>/dev/null | wc -l)
check "traffic during both reloads: $ok/10 relayed" test "$ok" -eq 10
check "daemon alive after both signals" kill -0 "$PROXY_PID"
tokens_after=$(idp_requests "$MS_SECRET_CLIENT_ID")
check "the cached token of the unchanged connection survived the reloads (IdP token requests $tokens_before -> $tokens_after)" \
  test "$tokens_after" -eq "$tokens_before"
check "no session dropped by a reload" bash -c "! grep -qE 'result=(error|aborted)' '$WORK/proxy.log'"

# A hard limit below what max_sessions needs (4 listeners x 2000 sessions x 2) is warned about.
proxy_stop
cp "$WORK/proxy-good.yaml" "$CFG"
bash -c 'ulimit -n 1024; exec "$0" --config "$1"' "$PROXY_BIN" "$CFG" >>"$WORK/proxy-lowfd.log" 2>&1 &
PROXY_PID=$!
wait_port "$PROXY_SMTP" 20 || true
check "open files limit below what max_sessions needs: warned" \
  grep -q "open files limit 1024 is below the 16064 that max_sessions needs" "$WORK/proxy-lowfd.log"
finish
