#!/bin/bash
# The interactive flows end to end against the test identity provider:
# authorization code with PKCE (Microsoft and Google; the "browser" is curl
# following the redirect to the loopback listener), device code (approved
# through the IdP's test hook), then SMTP and IMAP with the stored tokens
# after a daemon restart. Also: slow_down, declined and expired device codes,
# a wrong state, a PKCE mismatch, an expired refresh token (status says
# "needs authorization" and names the command; SMTP gets 454), a corrupt store
# file, a store file with open permissions, and no refresh token in clear.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
interactive_connections "$WORK/proxy.yaml" ms-delegated ms-device gmail-user
$PY - "$WORK/proxy.yaml" <<PYEOF
import sys
p = sys.argv[1]; s = open(p).read()
h = s.split('login: erp, password_hash: "')[1].split('"')[0]
s = s.replace("senders:", """  - {login: alice-deleg, password_hash: "%s", connection: ms-delegated, mailbox: alice@contoso.test}
  - {login: bob-device, password_hash: "%s", connection: ms-device, mailbox: bob@contoso.test}
  - {login: gmail-user, password_hash: "%s", connection: gmail-user, mailbox: alice@fabrikam.test}
senders:""" % (h, h, h))
open(p, "w").write(s)
PYEOF
PW='erp-pass word"1'
AUTH_PID=""
authorize_bg() {  # authorize_bg OUT ARGS... : runs authorize in the background, stdin from a fifo
  local out=$1; shift
  rm -f "$WORK/stdin.fifo"; mkfifo "$WORK/stdin.fifo"
  "$PROXY_BIN" --config "$WORK/proxy.yaml" authorize "$@" <"$WORK/stdin.fifo" >"$out" 2>&1 &
  AUTH_PID=$!
  exec 7>"$WORK/stdin.fifo"   # keep the fifo open: authorize reads stdin for a pasted answer
}
authorize_wait() {  # -> exit status of the background authorize (bounded)
  local end=$((SECONDS + 60)) rc
  while kill -0 "$AUTH_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  kill "$AUTH_PID" 2>/dev/null || true
  wait "$AUTH_PID"; rc=$?
  exec 7>&-
  return $rc
}
wait_for() {  # wait_for FILE PATTERN
  local end=$((SECONDS + 20))
  until grep -qE "$2" "$1" 2>/dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}
browser() {  # follows the authorize URL printed in FILE like a browser would (to the loopback redirect)
  wait_for "$1" '^  https://' || return 1
  curl -sS -m 20 --cacert "$CA_FILE" -L -o "$WORK/browser.html" "$(grep -m1 -E '^  https://' "$1" | sed 's/^  //')"
}
device_code_of() { wait_for "$1" 'enter the code' && grep -oE 'enter the code [A-Z0-9]+' "$1" | awk '{print $4}'; }

# --- authorization code + PKCE, Microsoft
authorize_bg "$WORK/auth-ms.out" ms-delegated --mailbox alice@contoso.test
browser "$WORK/auth-ms.out"
authorize_wait; rc=$?
check "authorization code (Microsoft) exits 0 ($(tail -1 "$WORK/auth-ms.out"))" test $rc -eq 0
check "the URL carries PKCE S256 and state" grep -qE 'code_challenge_method=S256.*login_hint|state=.*code_challenge=' "$WORK/auth-ms.out"
check "the browser was told it worked" grep -q 'authorized' "$WORK/browser.html"

# --- authorization code, Google (access_type=offline, prompt=consent)
authorize_bg "$WORK/auth-google.out" gmail-user
browser "$WORK/auth-google.out"
authorize_wait; rc=$?
check "authorization code (Google): authorized ($(tail -1 "$WORK/auth-google.out"))" test $rc -eq 0
check "Google URL asks for offline access with consent" grep -q 'access_type=offline&prompt=consent' "$WORK/auth-google.out"

# --- device code, approved at the provider (with one slow_down on the way)
idp_control '{"device_slow_down": 1}'
authorize_bg "$WORK/auth-device.out" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/auth-device.out")
check "device code printed with the page and expiry" grep -qE 'open https://localhost:[0-9]+/devicelogin and enter the code [A-Z0-9]+' "$WORK/auth-device.out"
grep -E 'enter the code|expires' "$WORK/auth-device.out" | sed 's/^/  /'
# Approve only after the slow_down was seen (not after a guessed delay).
wait_for "$WORK/auth-device.out" "slow_down from the provider" || true
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"approve\", \"mailbox\": \"bob@contoso.test\"}}"
authorize_wait; rc=$?
check "device code: slow_down honoured (interval raised by 5 s)" grep -q 'slow_down from the provider: polling every 6 s' "$WORK/auth-device.out"
check "device code approved: authorized ($(tail -1 "$WORK/auth-device.out"))" test $rc -eq 0

# --- the store: encrypted, private
check "store file is mode 0600" test "$(stat -c %a "$STORE")" = 600
check "store key file is mode 0600" test "$(stat -c %a "$STORE.key")" = 600
leaks=0
while read -r rt; do case $rt in 0.AX*) grep -qF "$rt" "$STORE" && leaks=$((leaks + 1));; esac; done < "$WORLD_ROOT/idp/issued-tokens"
check "the store file holds no refresh token in clear" test $leaks -eq 0

# --- the daemon uses the stored tokens after a restart: SMTP and IMAP
proxy_start; proxy_stop; proxy_start
for who in "alice-deleg:alice@contoso.test" "bob-device:bob@contoso.test" "gmail-user:alice@fabrikam.test"; do
  login=${who%%:*} mailbox=${who#*:}
  tag="deleg-$login-$RANDOM"
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$tag.eml" "$mailbox" "$mailbox" "$tag"
  XO_PASSWORD=$PW $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" "$login" - "$mailbox" "$mailbox" "$WORK/$tag.eml" >"$WORK/$tag.out" 2>&1 || true
  check "SMTP as $login with the stored refresh token: $(tail -1 "$WORK/$tag.out")" grep -q '^RESULT 250' "$WORK/$tag.out"
  check "$tag arrived in $mailbox" maildir_find "$mailbox" "Subject: $tag"
  $PY "$SRC/tests/clients/imap_pop3_checks.py" imap-login "$PROXY_IMAP" "$login" "$PW" >"$WORK/imap-$login.out" 2>&1
  check "IMAP LOGIN + SELECT as $login with the stored token" grep -q 'PASS: IMAP SELECT' "$WORK/imap-$login.out"
done
check "refresh tokens were rotated and saved (store rewritten)" test "$STORE" -nt "$WORK/auth-device.out"

# --- status
"$PROXY_BIN" --config "$WORK/proxy.yaml" status ms-delegated >"$WORK/status-ok.out" 2>&1
check "status: active, with the refresh token's age" grep -qE 'alice@contoso.test: refresh token obtained .* ago' "$WORK/status-ok.out"
sed 's/^/  /' "$WORK/status-ok.out"

# --- failures of the device flow
idp_reset
authorize_bg "$WORK/declined.out" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/declined.out")
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"decline\"}}"
authorize_wait && fail "declined device code accepted" || true
check "declined device code: clear message" grep -q 'the sign-in was declined' "$WORK/declined.out"
authorize_bg "$WORK/expired.out" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/expired.out")
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"expire\"}}"
authorize_wait && fail "expired device code accepted" || true
check "expired device code: clear message" grep -q 'the code expired before anyone signed in' "$WORK/expired.out"

# --- a wrong state (pasted redirect from another attempt) and a PKCE mismatch
authorize_bg "$WORK/state.out" ms-delegated --mailbox alice@contoso.test
wait_for "$WORK/state.out" '^  https://'
echo "http://127.0.0.1:1/callback?code=stolen-code&state=not-the-one-we-sent" >&7
authorize_wait && fail "wrong state accepted" || true
check "wrong state: refused" grep -q "state does not match this authorization: refused" "$WORK/state.out"
idp_control '{"pkce_mismatch": true}'
authorize_bg "$WORK/pkce.out" ms-delegated --mailbox alice@contoso.test
browser "$WORK/pkce.out"
authorize_wait && fail "PKCE mismatch accepted" || true
check "PKCE mismatch: AADSTS501481 reported" grep -q 'AADSTS501481' "$WORK/pkce.out"
idp_reset

# --- the refresh token expires: status says what to run, SMTP clients get 454
idp_control '{"refresh_fail": "expired"}'
proxy_stop; proxy_start
$PY "$SRC/tests/clients/make_message.py" "$WORK/expired-rt.eml" alice@contoso.test alice@contoso.test expired-rt
XO_PASSWORD=$PW $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" alice-deleg - alice@contoso.test alice@contoso.test \
  "$WORK/expired-rt.eml" >"$WORK/expired-rt.out" 2>&1 || true
check "expired refresh token: SMTP client gets 454 4.7.0" grep -q '^RESULT 454 4.7.0' "$WORK/expired-rt.out"
"$PROXY_BIN" --config "$WORK/proxy.yaml" status ms-delegated >"$WORK/status-expired.out" 2>&1 && fail "status exit 0 with an expired refresh token" || true
check "status: needs authorization, names the command" \
  grep -q "alice@contoso.test: needs authorization: run 'xoauth2-proxy authorize ms-delegated --mailbox alice@contoso.test'" "$WORK/status-expired.out"
check "status: shows AADSTS700082" grep -q 'AADSTS700082' "$WORK/status-expired.out"
sed 's/^/  /' "$WORK/status-expired.out"
idp_reset

# --- a store file with open permissions, and a corrupt one: refused, never replaced
chmod 644 "$STORE"
"$PROXY_BIN" --config "$WORK/proxy.yaml" status ms-delegated >"$WORK/status-perm.out" 2>&1 || true
check "store readable by others: refused with a clear message" grep -q "has mode 0644: it must not be readable by group or others; chmod 600" "$WORK/status-perm.out"
chmod 600 "$STORE"
cp "$STORE" "$WORK/store.orig"
printf 'garbage' | dd of="$STORE" bs=1 seek=40 conv=notrunc 2>/dev/null
sum=$(sha256sum < "$STORE")
"$PROXY_BIN" --config "$WORK/proxy.yaml" authorize ms-device --mailbox bob@contoso.test --device </dev/null >"$WORK/corrupt.out" 2>&1 && fail "corrupt store accepted" || true
check "corrupt store: reported" grep -q "cannot be decrypted: it is corrupt, or was written with another key" "$WORK/corrupt.out"
check "corrupt store: left as it was" test "$(sha256sum < "$STORE")" = "$sum"
head -2 "$WORK/corrupt.out" | sed 's/^/  /'
finish
