#!/bin/bash
# `xoauth2-proxy test`: against the healthy world every connection kind
# (Microsoft secret, certificate, Google service account, generic, and a
# device-code refresh token) passes over SMTP, IMAP and POP3 with exit 0 and
# an OK verdict; when the identity provider or the mail server fails a known
# way (AADSTS7000215, 7000222, 65001, 700027; 535 5.7.139, 535 5.7.3 and
# 550 5.7.60 from an Exchange played by dropper.py) it exits 1 and names the
# cause and the fix. Credential expiry warnings: secret_expires shows in
# status, /status, /metrics and the daemon's log. Never prints a token.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
CFG=$WORK/proxy.yaml
# A device-code connection (refresh token in the store) and an admin listener.
interactive_connections "$CFG" ms-device
echo "admin: {bind: \"127.0.0.1:$PROXY_ADMIN\"}" >> "$CFG"

DROP_PIDS=()
extra_cleanup() { local p; for p in "${DROP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }

run_test() {  # run_test OUT [CONFIG] -- ARGS... : exit status of `test`, output in OUT
  local out=$1 cfg=$CFG; shift
  if [ "$1" != "--" ]; then cfg=$1; shift; fi
  shift
  timeout 60 "$PROXY_BIN" --config "$cfg" test "$@" >"$out" 2>&1
}
last_is_ok() { tail -1 "$1" | grep -q '^verdict: OK: connection '; }

# --- device code: sign in once so the connection has a refresh token
rm -f "$WORK/stdin.fifo"; mkfifo "$WORK/stdin.fifo"
"$PROXY_BIN" --config "$CFG" authorize ms-device --mailbox bob@contoso.test --device >"$WORK/auth.out" 2>&1 <"$WORK/stdin.fifo" &
AUTH_PID=$!
exec 7>"$WORK/stdin.fifo"   # keep the fifo open: authorize may read stdin
end=$((SECONDS + 20))
until grep -qE 'enter the code [A-Z0-9]+' "$WORK/auth.out" 2>/dev/null || [ $SECONDS -ge $end ]; do sleep 0.1; done
code=$(grep -oE 'enter the code [A-Z0-9]+' "$WORK/auth.out" | awk '{print $4}' || true)
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"approve\", \"mailbox\": \"bob@contoso.test\"}}"
end=$((SECONDS + 60))
while kill -0 "$AUTH_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
kill "$AUTH_PID" 2>/dev/null || true
wait "$AUTH_PID" && rc=0 || rc=$?
exec 7>&-
check "device code authorized for ms-device (code $code)" test "$rc" -eq 0

# --- healthy world: every connection kind, every protocol
for kind in "ms-secret:erp@contoso.test" "ms-cert:scanner@contoso.test" "google:alice@fabrikam.test" \
            "generic:alice@contoso.test" "ms-device:bob@contoso.test"; do
  c=${kind%%:*} mb=${kind#*:}
  for proto in smtp imap pop3; do
    out=$WORK/ok-$c-$proto.out
    run_test "$out" -- "$c" --mailbox "$mb" "--$proto" && rc=0 || rc=$?
    check "$c $proto: exit 0 and an OK verdict ($(tail -1 "$out"))" bash -c "[ $rc -eq 0 ] && tail -1 '$out' | grep -q '^verdict: OK: connection $c works for $mb over $proto'"
    check "$c $proto: every step timed, no token printed" bash -c \
      "grep -qE '^ +[0-9]+ ms  token +ok' '$out' && grep -qE '^ +[0-9]+ ms  $proto authenticate +ok' '$out' && ! grep -qE '$TOKEN_SHAPE' '$out'"
  done
done
sed 's/^/  /' "$WORK/ok-ms-secret-smtp.out"
check "smtp: MAIL FROM, RCPT TO and RSET ran, TLS verified" bash -c \
  "grep -q 'smtp tls .*ok .*STARTTLS TLSv1.[23], certificate verified for localhost' '$WORK/ok-ms-secret-smtp.out' && grep -q 'smtp MAIL FROM .*ok' '$WORK/ok-ms-secret-smtp.out' && grep -q 'smtp RCPT TO .*ok' '$WORK/ok-ms-secret-smtp.out' && grep -q 'smtp RSET .*ok .*nothing was sent' '$WORK/ok-ms-secret-smtp.out'"
check "imap: SELECT INBOX and LOGOUT ran" bash -c "grep -q 'imap SELECT INBOX .*ok' '$WORK/ok-google-imap.out' && grep -q 'imap LOGOUT .*ok' '$WORK/ok-google-imap.out'"
check "pop3: STAT ran" grep -qE 'pop3 STAT +ok +\+OK' "$WORK/ok-generic-pop3.out"
run_test "$WORK/ok-all.out" -- ms-secret --smtp --imap --pop3 && rc=0 || rc=$?
check "all three protocols at once, mailbox from users: ($(tail -1 "$WORK/ok-all.out"))" bash -c \
  "[ $rc -eq 0 ] && tail -1 '$WORK/ok-all.out' | grep -q 'works for erp@contoso.test over smtp, imap, pop3'"
check "no mail was sent by test" bash -c "! ls '$MAIL_DIR'/contoso.test/erp/Maildir/new/* >/dev/null 2>&1"

# --- a mailbox the app may not use: the world's server refuses the token
run_test "$WORK/bob.out" -- ms-secret --mailbox bob@contoso.test --imap && rc=0 || rc=$?
check "app without access to the mailbox: exit 1, cause and fix named" bash -c \
  "[ $rc -eq 1 ] && grep -q 'cause: the server refused the token for this mailbox' '$WORK/bob.out' && grep -q 'fix:   Microsoft: New-ServicePrincipal' '$WORK/bob.out' && tail -1 '$WORK/bob.out' | grep -q '^verdict: FAILED at imap authenticate'"

# --- identity provider failures
expect_fail() {  # expect_fail NAME OUT CAUSE FIX
  local rc=$4
  check "$1: exit 1" test "$rc" -eq 1
  check "$1: cause named" grep -qF "cause: $2" "$WORK/$1.out"
  check "$1: fix named" grep -qF "$3" "$WORK/$1.out"
  check "$1: verdict last ($(tail -1 "$WORK/$1.out"))" bash -c "tail -1 '$WORK/$1.out' | grep -q '^verdict: FAILED at '"
  check "$1: no token or secret printed" no_token_in "$WORK/$1.out"
}
printf 'not-the-secret' > "$WORK/wrong-secret"; chmod 600 "$WORK/wrong-secret"
sed "s#client_secret: {file: $MS_SECRET_FILE}#client_secret: {file: $WORK/wrong-secret}#" "$CFG" > "$WORK/wrong-secret.yaml"
run_test "$WORK/bad-secret.out" "$WORK/wrong-secret.yaml" -- ms-secret && rc=0 || rc=$?
expect_fail bad-secret "the client secret is wrong: often the secret's ID was pasted instead of its Value" \
  "New client secret; copy the Value column (not the Secret ID)" $rc
check "bad-secret: the AADSTS code is shown" grep -q 'AADSTS7000215' "$WORK/bad-secret.out"
sed 's/^/  /' "$WORK/bad-secret.out"
check "bad-secret: the secret's value is not printed" bash -c "! grep -qF 'not-the-secret' '$WORK/bad-secret.out' && ! grep -qF \"\$(cat '$MS_SECRET_FILE')\" '$WORK/bad-secret.out'"

idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"expired_secret\"}"
run_test "$WORK/expired-secret.out" -- ms-secret && rc=0 || rc=$?
expect_fail expired-secret "the client secret has expired" "set secret_expires: to its expiry date" $rc
idp_reset
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"no_consent\"}"
run_test "$WORK/no-consent.out" -- ms-secret && rc=0 || rc=$?
expect_fail no-consent "no admin consent" "Grant admin consent for <tenant>" $rc
idp_reset
sed -e "s#certificate: $MS_CERT_FILE#certificate: $MS_OTHER_CERT_FILE#" -e "s#private_key: $MS_CERT_KEY_FILE#private_key: $MS_OTHER_KEY_FILE#" \
  "$CFG" > "$WORK/wrong-cert.yaml"
run_test "$WORK/wrong-cert.out" "$WORK/wrong-cert.yaml" -- ms-cert && rc=0 || rc=$?
expect_fail wrong-cert "the client assertion's signature does not match a certificate registered" "Upload certificate" $rc
idp_control '{"clock_skew": 7200}'
run_test "$WORK/clock-skew.out" -- google --mailbox alice@fabrikam.test && rc=0 || rc=$?
expect_fail clock-skew "clock skew" "timedatectl set-ntp true" $rc
idp_reset

# --- Exchange's refusals, played by dropper.py
drop() {  # drop PORT ARGS... : a dropper answering as told
  $PY "$SRC/tests/world/dropper.py" "$1" "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" "${@:2}" \
    </dev/null >>"$WORK/dropper-$1.log" 2>&1 &
  DROP_PIDS+=($!)
  wait_port "$1" 10 || { echo "dropper on $1 did not start"; cat "$WORK/dropper-$1.log"; exit 1; }
}
P139=$((PORT_BASE + 30)) P573=$((PORT_BASE + 31)) P760=$((PORT_BASE + 32)) PSEC=$((PORT_BASE + 33))
drop "$P139" --auth-reply "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
drop "$PSEC" --auth-reply "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator."
drop "$P573" --auth-reply "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0012.namprd06.prod.outlook.com]"
drop "$P760" --mail-reply "550 5.7.60 SMTP; Client does not have permissions to send as this sender [BN8PR04MB6211.namprd04.prod.outlook.com]"
exchange() {  # exchange NAME PORT : the config with ms-secret's SMTP at PORT
  sed "s#smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}#smtp: {host: localhost, port: $2, tls: starttls}#" "$CFG" > "$WORK/$1.yaml"
  run_test "$WORK/$1.out" "$WORK/$1.yaml" -- ms-secret --mailbox erp@contoso.test --smtp
}
exchange smtp-auth-disabled "$P139" && rc=0 || rc=$?
expect_fail smtp-auth-disabled "SMTP AUTH is disabled for the tenant or the mailbox" \
  'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false' $rc
check "smtp-auth-disabled: fails at authenticate with the server's words" \
  grep -qE 'smtp authenticate +FAILED .*535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled' "$WORK/smtp-auth-disabled.out"
sed 's/^/  /' "$WORK/smtp-auth-disabled.out"
exchange security-defaults "$PSEC" && rc=0 || rc=$?
expect_fail security-defaults "the sign-in was blocked by the tenant's security defaults" "Manage security defaults" $rc
exchange mailbox-permission "$P573" && rc=0 || rc=$?
expect_fail mailbox-permission "Exchange refused the token for this mailbox: the app has no access to it" "Add-MailboxPermission" $rc
check "mailbox-permission: says a new permission takes up to 30 minutes" grep -q 'up to 30 minutes' "$WORK/mailbox-permission.out"
exchange sendas "$P760" && rc=0 || rc=$?
expect_fail sendas "SendAs denied" "Add-RecipientPermission -Identity <From address> -Trustee <mailbox> -AccessRights SendAs" $rc
check "sendas: fails at MAIL FROM after a good AUTH" bash -c \
  "grep -qE 'smtp authenticate +ok' '$WORK/sendas.out' && grep -qE 'smtp MAIL FROM +FAILED .*550 5.7.60' '$WORK/sendas.out' && tail -1 '$WORK/sendas.out' | grep -q 'FAILED at smtp MAIL FROM'"
sed 's/^/  /' "$WORK/sendas.out"

# --- usage
run_test "$WORK/usage.out" -- no-such && rc=0 || rc=$?
check "unknown connection: exit 2" test "$rc" -eq 2

# --- device code for a Google connection is refused up front, with the reason
sed "s#^  google:#  google-device:\n    provider: google\n    flow: device_code\n    client_id: $GOOGLE_CLIENT_ID\n  google:#" "$CFG" > "$WORK/google-device.yaml"
"$PROXY_BIN" --config "$WORK/google-device.yaml" --check >"$WORK/google-device.out" 2>&1 && rc=0 || rc=$?
check "device code for Google: --check refuses it with the reason" bash -c \
  "[ $rc -eq 1 ] && grep -q 'flow device_code cannot be used with provider google: Google does not allow the device code flow' '$WORK/google-device.out' && grep -q 'use flow: authorization_code' '$WORK/google-device.out'"

# --- expiry warnings: a client secret that expires in 10 days
soon=$(date -u -d '+10 days' +%Y-%m-%d)
sed "s#client_secret: {file: $MS_SECRET_FILE}#client_secret: {file: $MS_SECRET_FILE}\n    secret_expires: $soon#" "$CFG" > "$WORK/expiring.yaml"
"$PROXY_BIN" --config "$WORK/expiring.yaml" status ms-secret >"$WORK/status.out" 2>&1 || true
check "status: the secret's expiry with a warning and the fix" bash -c \
  "grep -q 'client secret of connection ms-secret expires $soon (in [0-9]* days)' '$WORK/status.out' && grep -q 'WARNING: the client secret expires soon' '$WORK/status.out'"
check "status: the certificate's expiry read from the file" grep -q "certificate $MS_CERT_FILE of connection ms-cert expires" \
  <("$PROXY_BIN" --config "$WORK/expiring.yaml" status ms-cert 2>&1)
proxy_start "$WORK/expiring.yaml"
wait_port "$PROXY_ADMIN" 10 || true
curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/status" >"$WORK/status.json" || true
curl -sS -m 5 "http://127.0.0.1:$PROXY_ADMIN/metrics" >"$WORK/metrics.txt" || true
check "/status: a warning for the secret" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
c = [e for e in j["connections"]["ms-secret"]["credentials"] if e["kind"] == "secret"][0]
assert 8 * 86400 < c["expires_in"] <= 10 * 86400 and "expires" in c["warning"] and "New client secret" in c["advice"], c
assert any("client secret of connection ms-secret" in w for w in j["warnings"]), j["warnings"]
cert = [e for e in j["connections"]["ms-cert"]["credentials"] if e["kind"] == "certificate"][0]
assert cert["expires_in"] > 0 and ("warning" in cert) == (cert["expires_in"] <= 30 * 86400), cert
rt = [e for e in j["connections"]["ms-device"]["credentials"] if e["kind"] == "refresh_token"][0]
assert rt["mailbox"] == "bob@contoso.test" and 89 * 86400 < rt["expires_in"] <= 90 * 86400, rt
' "$WORK/status.json"
check "/metrics: xoauth2_credential_expiry_seconds for secret, certificate and refresh token" bash -c \
  "grep -qE '^xoauth2_credential_expiry_seconds\{connection=\"ms-secret\",kind=\"secret\"\} [0-9]+$' '$WORK/metrics.txt' && grep -qE '^xoauth2_credential_expiry_seconds\{connection=\"ms-cert\",kind=\"certificate\"\} [0-9]+$' '$WORK/metrics.txt' && grep -qE '^xoauth2_credential_expiry_seconds\{connection=\"ms-device\",kind=\"refresh_token\"\} [0-9]+$' '$WORK/metrics.txt'"
grep '^xoauth2_credential_expiry_seconds' "$WORK/metrics.txt" | sed 's/^/  /'
check "without admin.password_hash there is no web console (GET / 404, POST /login 405)" bash -c \
  "[ \$(curl -s -o /dev/null -w '%{http_code}' -m 5 'http://127.0.0.1:$PROXY_ADMIN/') = 404 ] && [ \$(curl -s -o /dev/null -w '%{http_code}' -m 5 -d password=x 'http://127.0.0.1:$PROXY_ADMIN/login') = 405 ]"
check "daemon log: the warning at start, with the fix" grep -q "credential expiry: client secret of connection ms-secret expires $soon .*; fix: the client secret expires soon" "$WORK/proxy.log"
proxy_stop
finish
