#!/bin/bash
# One check per row of the diagnosis table (proxy/diagnose/diagnose.cpp): the
# test identity provider answers exactly what Microsoft or Google answer
# (wrong settings it refuses by itself, or its control API's failure modes),
# or the test world's Postfix/Dovecot, or dropper.py playing Exchange/Gmail,
# answers that reply at that step; `xoauth2-proxy test` (or `authorize`,
# `status`, `--check` where the row belongs there) must exit 1 and name the
# row's cause and fix, and print no token. The list of rows and where each is
# tested is docs/troubleshooting.md; a row no check below reaches is named
# there with the reason.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
CFG=$WORK/proxy.yaml
# The interactive connections: device code and authorization code (Microsoft),
# authorization code (Google), their refresh tokens in a file store.
interactive_connections "$CFG" ms-device ms-delegated gmail-user

PIDS=()
extra_cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
ROWS=0
run_test() {  # run_test NAME CONFIG ARGS... : `test` into $WORK/NAME.out, exit status in RC
  local name=$1 cfg=$2; shift 2
  timeout 60 "$PROXY_BIN" --config "$cfg" test "$@" >"$WORK/$name.out" 2>&1 && RC=0 || RC=$?
}
# row NAME STEP CAUSE FIX: the last `test` (NAME.out, RC) failed at STEP with the row's cause and fix.
row() {
  local n=$1 out=$WORK/$1.out
  ROWS=$((ROWS + 1))
  if [ "$RC" -eq 1 ] && grep -E '^ +cause: ' "$out" | grep -qF -- "$3" && grep -E '^ +fix: ' "$out" | grep -qF -- "$4" \
     && tail -1 "$out" | grep -F "verdict: FAILED at $2: " | grep -qF -- "$3" && no_token_in "$out"; then
    pass "row $n: exit 1, FAILED at $2, cause and fix named"
  else
    fail "row $n: expected exit 1 (got $RC), 'FAILED at $2', cause '$3', fix '$4'"; sed 's/^/    /' "$out"
  fi
}
# advice NAME CAUSE FIX: a command's "what to do: CAUSE; to fix: FIX" in NAME.out, exit 1.
advice() {
  local n=$1 out=$WORK/$1.out
  ROWS=$((ROWS + 1))
  if [ "$RC" -eq 1 ] && grep -F "what to do: $2" "$out" | grep -qF -- "; to fix: " && grep -F "what to do: $2" "$out" | grep -qF -- "$3" \
     && no_token_in "$out"; then
    pass "row $n: exit 1, cause and fix named"
  else
    fail "row $n: expected exit 1 (got $RC), 'what to do: $2' with fix '$3'"; sed 's/^/    /' "$out"
  fi
}
variant() {  # variant NAME SED-ARGS... : $WORK/NAME.yaml = the config edited by sed
  local n=$1; shift
  sed "$@" "$CFG" > "$WORK/$n.yaml"
}
SMTP_LINE="smtp: {host: localhost, port: $SMTP_STARTTLS_PORT, tls: starttls}"
IMAP_LINE="imap: {host: localhost, port: $IMAPS_PORT, tls: implicit}"
NEXT_PORT=$((PORT_BASE + 30))
play() {  # play NAME DROPPER-ARGS... : a dropper on the next free port; $WORK/NAME.yaml points every smtp: (or,
          # with --imap-auth-reply, imap:) at it
  local n=$1 port=$NEXT_PORT; shift
  NEXT_PORT=$((NEXT_PORT + 1))
  $PY "$SRC/tests/world/dropper.py" "$port" "$WORLD_ROOT/tls/localhost.pem" "$WORLD_ROOT/tls/localhost.key" "$@" \
    </dev/null >>"$WORK/dropper-$n.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" 10 || { echo "dropper $n did not start"; cat "$WORK/dropper-$n.log"; exit 1; }
  if [ "$1" = "--imap-auth-reply" ]; then
    variant "$n" "s#$IMAP_LINE#imap: {host: localhost, port: $port, tls: implicit}#"
  else
    variant "$n" "s#$SMTP_LINE#smtp: {host: localhost, port: $port, tls: starttls}#"
  fi
}

# ---------------------------------------------------------------- sign in once
rm -f "$WORK/stdin.fifo"; mkfifo "$WORK/stdin.fifo"
authorize_bg() {  # authorize_bg OUT CONFIG ARGS...
  local out=$1 cfg=$2; shift 2
  rm -f "$WORK/stdin.fifo"; mkfifo "$WORK/stdin.fifo"
  "$PROXY_BIN" --config "$cfg" authorize "$@" <"$WORK/stdin.fifo" >"$out" 2>&1 &
  AUTH_PID=$!
  exec 7>"$WORK/stdin.fifo"
}
authorize_wait() {  # -> RC: exit status of the background authorize (bounded)
  local end=$((SECONDS + 60))
  while kill -0 "$AUTH_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  kill "$AUTH_PID" 2>/dev/null || true
  wait "$AUTH_PID" && RC=0 || RC=$?
  exec 7>&-
}
wait_for() {  # wait_for FILE PATTERN
  local end=$((SECONDS + 20))
  until grep -qE "$2" "$1" 2>/dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}
browser() {  # follows the authorize URL printed in FILE like a browser (to the loopback redirect)
  wait_for "$1" '^  https://' || return 1
  curl -sS -m 20 --cacert "$CA_FILE" -L -o "$WORK/browser.html" "$(grep -m1 -E '^  https://' "$1" | sed 's/^  //')" || true
}
device_code_of() { wait_for "$1" 'enter the code' && grep -oE 'enter the code [A-Z0-9]+' "$1" | awk '{print $4}'; }

authorize_bg "$WORK/auth-device.out" "$CFG" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/auth-device.out")
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"approve\", \"mailbox\": \"bob@contoso.test\"}}"
authorize_wait
check "setup: device code authorized for ms-device" test "$RC" -eq 0
authorize_bg "$WORK/auth-google.out" "$CFG" gmail-user --mailbox alice@fabrikam.test
browser "$WORK/auth-google.out"
authorize_wait
check "setup: authorization code (Google) for gmail-user" test "$RC" -eq 0
run_test healthy "$CFG" gmail-user --mailbox alice@fabrikam.test --smtp --imap
check "setup: gmail-user works before its rows ($(tail -1 "$WORK/healthy.out"))" test "$RC" -eq 0

# ------------------------------------------- Microsoft identity platform (token endpoint)
printf 'not-the-secret' > "$WORK/wrong-secret"; chmod 600 "$WORK/wrong-secret"
variant wrong-secret "s#client_secret: {file: $MS_SECRET_FILE}#client_secret: {file: $WORK/wrong-secret}#"
run_test AADSTS7000215 "$WORK/wrong-secret.yaml" ms-secret
row AADSTS7000215 token "the client secret is wrong: often the secret's ID was pasted" "copy the Value column (not the Secret ID)"
check "AADSTS7000215: the secret is not printed" bash -c "! grep -qF not-the-secret '$WORK/AADSTS7000215.out' && ! grep -qF \"\$(cat '$MS_SECRET_FILE')\" '$WORK/AADSTS7000215.out'"

idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"expired_secret\"}"
run_test AADSTS7000222 "$CFG" ms-secret
row AADSTS7000222 token "the client secret has expired" "set secret_expires: to its expiry date"
idp_reset

variant unknown-app "s#client_id: $MS_SECRET_CLIENT_ID#client_id: 99999999-9999-9999-9999-999999999999#"
run_test AADSTS700016 "$WORK/unknown-app.yaml" ms-secret
row AADSTS700016 token "no application with this client_id exists in the tenant" "Application (client) ID on the app's Overview page"

idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"no_consent\"}"
run_test AADSTS65001 "$CFG" ms-secret
row AADSTS65001 token "no admin consent" "Grant admin consent for <tenant>"
idp_reset

variant wrong-cert -e "s#certificate: $MS_CERT_FILE#certificate: $MS_OTHER_CERT_FILE#" -e "s#private_key: $MS_CERT_KEY_FILE#private_key: $MS_OTHER_KEY_FILE#"
run_test AADSTS700027 "$WORK/wrong-cert.yaml" ms-cert
row AADSTS700027 token "the client assertion's signature does not match a certificate registered" "Upload certificate"

idp_control '{"clock_skew": 7200}'     # the provider's clock 2 h ahead: the assertion is in its past
run_test AADSTS700024 "$CFG" ms-cert
row AADSTS700024 token "clock skew: the client assertion is outside its valid time range" "timedatectl set-ntp true"
idp_reset

idp_control "{\"client_id\": \"$MS_CERT_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": 700021}"
run_test AADSTS700021 "$CFG" ms-cert
row AADSTS700021 token "the client assertion names another application than client_id" "the certificate is registered for"
idp_reset

# The same server under another name: the assertion's audience is that URL, not the provider's.
sed -n '/^  ms-cert:/,/^  google:/p' "$CFG" | grep -q "authority: $IDP_URL" || fail "ms-cert has no authority line"
variant other-audience "/^  ms-cert:/,/^  google:/s#authority: $IDP_URL#authority: ${IDP_URL/localhost/127.0.0.1}#"
run_test AADSTS700023 "$WORK/other-audience.yaml" ms-cert
row AADSTS700023 token "the client assertion's audience is wrong" "the audience is the token endpoint URL"

idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": 7000218}"
run_test AADSTS7000218 "$CFG" ms-secret
row AADSTS7000218 token "the request carried neither a client secret nor a client assertion" "Allow public client flows"
idp_reset

variant no-tenant "s#tenant: $MS_TENANT_ID#tenant: nosuch.onmicrosoft.test#"
run_test AADSTS90002 "$WORK/no-tenant.yaml" ms-secret
row AADSTS90002 token "the tenant was not found" "Directory (tenant) ID"

variant common-tenant "/^  ms-secret:/,/^  ms-device:/s#tenant: $MS_TENANT_ID#tenant: common#"
"$PROXY_BIN" --config "$WORK/common-tenant.yaml" --check >"$WORK/common-check.out" 2>&1 && rc=0 || rc=$?
check "tenant common with client credentials: --check refuses it first, naming AADSTS9001023" bash -c \
  "[ $rc -ne 0 ] && grep -q 'ms-secret.tenant: .*AADSTS9001023' '$WORK/common-check.out'"
# The row itself (a tenant name Microsoft does not take for app-only tokens, which the check cannot know)
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": 9001023}"
run_test AADSTS9001023 "$CFG" ms-secret
row AADSTS9001023 token "client credentials need one tenant, not common/consumers/organizations" "set tenant to the tenant id"
idp_reset

variant bad-scope "/^  ms-secret:/,/^  ms-device:/s#^    flow: client_secret#    flow: client_secret\n    scope: https://outlook.office.com/SMTP.Send#"
run_test AADSTS70011 "$WORK/bad-scope.yaml" ms-secret
row AADSTS70011 token "the scope was refused" "https://outlook.office365.com/.default"

idp_control '{"refresh_fail": "expired"}'
run_test AADSTS700082 "$CFG" ms-device --mailbox bob@contoso.test
row AADSTS700082 token "the refresh token expired: it was not used for 90 days" "xoauth2-proxy authorize CONNECTION --mailbox M"
idp_reset

for code in 70008 50173 530035; do
  idp_control "{\"client_id\": \"$MS_PUBLIC_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": $code}"
  run_test "AADSTS$code" "$CFG" ms-device --mailbox bob@contoso.test
  case $code in
    70008) row AADSTS70008 token "the refresh token or authorization code has expired" "xoauth2-proxy authorize CONNECTION --mailbox M" ;;
    50173) row AADSTS50173 token "the grant was revoked (password change" "xoauth2-proxy authorize CONNECTION --mailbox M" ;;
    530035) row AADSTS530035 token "blocked by security defaults" "Manage security defaults" ;;
  esac
  idp_reset
done
for code in 53003 50196; do
  idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": $code}"
  run_test "AADSTS$code" "$CFG" ms-secret
  case $code in
    53003) row AADSTS53003 token "blocked by Conditional Access" "Protection > Conditional Access" ;;
    50196) row AADSTS50196 token "Microsoft detected a request loop" "tokens must be cached" ;;
  esac
  idp_reset
done
run_test ms-device-ok "$CFG" ms-device --mailbox bob@contoso.test
check "ms-device still works after its rows (the refresh token was kept)" test "$RC" -eq 0

# Authorization code and device code: rows `authorize` meets.
idp_control '{"pkce_mismatch": true}'
authorize_bg "$WORK/AADSTS501481.out" "$CFG" ms-delegated --mailbox alice@contoso.test
browser "$WORK/AADSTS501481.out"
authorize_wait
advice AADSTS501481 "the PKCE code_verifier did not match the authorization request" "finish it in one go"
idp_reset
idp_control '{"authorize_deny": true}'
authorize_bg "$WORK/AADSTS65004.out" "$CFG" ms-delegated --mailbox alice@contoso.test
browser "$WORK/AADSTS65004.out"
authorize_wait
advice AADSTS65004 "the user declined consent" "accept the permissions"
idp_reset
authorize_bg "$WORK/authorization_declined.out" "$CFG" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/authorization_declined.out")
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"decline\"}}"
authorize_wait
advice authorization_declined "the user declined the sign-in on the device code page" "--device' again and approve"
authorize_bg "$WORK/expired_token.out" "$CFG" ms-device --mailbox bob@contoso.test --device
code=$(device_code_of "$WORK/expired_token.out")
idp_control "{\"device\": {\"user_code\": \"$code\", \"action\": \"expire\"}}"
authorize_wait
advice expired_token "the device code expired before anyone signed in" "sign in sooner"
authorize_bg "$WORK/bad_verification_code.out" "$CFG" ms-device --mailbox bob@contoso.test --device
device_code_of "$WORK/bad_verification_code.out" >/dev/null
idp_control "{\"client_id\": \"$MS_PUBLIC_CLIENT_ID\", \"fail\": \"aadsts\", \"code\": 70019}"
authorize_wait
advice bad_verification_code "the device code was not recognised" "--device' again"
idp_reset

# ------------------------------------------------------- Google and every provider's OAuth errors
mkgkey() {  # mkgkey NAME FIELD VALUE : a copy of the service account's key file with FIELD changed
  $PY - "$GOOGLE_KEY_FILE" "$WORK/$1.json" "$2" "$3" <<'PYEOF'
import json, os, sys
k = json.load(open(sys.argv[1])); k[sys.argv[3]] = sys.argv[4]
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, json.dumps(k).encode()); os.close(fd)
PYEOF
  variant "$1" "s#key_file: $GOOGLE_KEY_FILE#key_file: $WORK/$1.json#"
}
mkgkey g-signature private_key_id 0000000000000000000000000000000000000000
run_test google-signature "$WORK/g-signature.yaml" google --mailbox alice@fabrikam.test
row google-signature token "Google rejected the assertion's signature" "Keys > Add key > JSON"
run_test google-sub "$CFG" google --mailbox alice@elsewhere.test
row google-sub token "Google does not know the impersonated mailbox" "a user of the Workspace domain"
idp_control '{"clock_skew": 7200}'
run_test google-clock "$CFG" google --mailbox alice@fabrikam.test
row google-clock token "clock skew: Google rejected the assertion's times" "timedatectl set-ntp true"
idp_reset
mkgkey g-account client_email deleted@fabrikam-proj.iam.gserviceaccount.com
run_test google-account "$WORK/g-account.yaml" google --mailbox alice@fabrikam.test
row google-account token "Google does not know the service account" "download a new JSON key"
mkgkey g-audience token_uri "${IDP_URL/localhost/127.0.0.1}/google/token"
run_test google-other "$WORK/g-audience.yaml" google --mailbox alice@fabrikam.test
row google-other token "the grant was refused" "the provider's description above"
check "google-other: Google's own words are shown" grep -q 'Failed audience check' "$WORK/google-other.out"
idp_control "{\"client_id\": \"$GOOGLE_SA_EMAIL\", \"fail\": \"no_consent\"}"
run_test unauthorized_client "$CFG" google --mailbox alice@fabrikam.test
row unauthorized_client token "the service account is not allowed to impersonate users" "Manage Domain Wide Delegation"
idp_reset
# An app whose consent screen is in "Testing": 8 days later its refresh token is dead.
idp_control '{"google_consent_screen": "testing", "clock_skew": 691200}'
run_test google-testing "$CFG" gmail-user --mailbox alice@fabrikam.test
row google-testing token "apps whose OAuth consent screen is in 'Testing' status get refresh tokens that die after 7 days" "Publish app (In production)"
check "google-testing: Google's words are shown" grep -q 'Token has been expired or revoked' "$WORK/google-testing.out"
idp_reset
# A refresh token refused without a reason of its own: a spent one (the IdP rotates them).
cp -p "$STORE" "$WORK/state/tokens-old.db"
run_test rotate "$CFG" ms-device --mailbox bob@contoso.test        # rotates: the copy now holds a spent token
cp -p "$WORK/state/tokens-old.db" "$STORE"
run_test spent-refresh "$CFG" ms-device --mailbox bob@contoso.test
row spent-refresh token "the refresh token no longer works" "xoauth2-proxy authorize CONNECTION --mailbox M"

printf 'wrong' > "$WORK/wrong-generic"; chmod 600 "$WORK/wrong-generic"
variant generic-secret "s#client_secret: {file: $GENERIC_SECRET_FILE}#client_secret: {file: $WORK/wrong-generic}#"
run_test invalid_client "$WORK/generic-secret.yaml" generic
row invalid_client token "the client credentials were refused" "check client_id and the secret"
variant generic-scope "s#scope: $GENERIC_SCOPE#scope: mail.read#"
run_test invalid_scope "$WORK/generic-scope.yaml" generic
row invalid_scope token "the scope was refused" "check 'scope'"
run_test needs_authorization "$CFG" ms-device --mailbox carol@contoso.test
row needs_authorization token "this mailbox has not been authorized yet" "xoauth2-proxy authorize CONNECTION --mailbox M"

# the token store
cp "$STORE" "$WORK/state/open.db"; cp "$STORE.key" "$WORK/state/open.db.key" 2>/dev/null || true
chmod 644 "$WORK/state/open.db"
variant open-store "s#store: $STORE#store: $WORK/state/open.db#"
run_test token-store-file "$WORK/open-store.yaml" ms-device --mailbox bob@contoso.test
row token-store-file token "the token store cannot be used" "0600"
REDIS_PORT=$((PORT_BASE + 60))
variant redis-down "s#store: $STORE#store: redis://127.0.0.1:$REDIS_PORT/0#"
XOAUTH2_PROXY_STORE_KEY=$(openssl rand -base64 32) run_test token-store-redis "$WORK/redis-down.yaml" ms-device --mailbox bob@contoso.test
row token-store-redis token "the shared Redis token store cannot be reached" "redis-server"
if command -v redis-server >/dev/null; then
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsave ""\nappendonly no\nlogfile %s\ndaemonize no\n' \
    "$REDIS_PORT" "$WORK/state" "$WORK/redis.log" > "$WORK/redis.conf"
  redis-server "$WORK/redis.conf" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$REDIS_PORT" 10 || fail "redis-server did not start"
  # "another replica" holds the refresh lock of bob's token for a minute
  timeout 10 redis-cli -p "$REDIS_PORT" SET "xoauth2:lock:ms-device:bob@contoso.test" other-replica PX 60000 >/dev/null
  variant redis-locked "s#store: $STORE#store: redis://127.0.0.1:$REDIS_PORT/0, redis_lock_timeout: 1s#"
  XOAUTH2_PROXY_STORE_KEY=$(openssl rand -base64 32) run_test token-store-lock "$WORK/redis-locked.yaml" ms-device --mailbox bob@contoso.test
  row token-store-lock token "another replica holds the refresh lock of this mailbox" "redis_lock_timeout"
else
  fail "redis-server is not installed (Debian package redis-server)"
fi

variant no-idp "s#authority: $IDP_URL#authority: https://localhost:$((PORT_BASE + 61))#"
run_test network "$WORK/no-idp.yaml" ms-secret
row network token "the token endpoint could not be reached" "check DNS, the firewall"
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"http500\"}"
run_test server_error "$CFG" ms-secret
row server_error token "the identity provider failed; this is usually temporary" "service health page"
idp_reset
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"http403\"}"
run_test http_error "$CFG" ms-secret
row http_error token "the identity provider failed" "service health page"
idp_reset

# ---------------------------------------------------------------- mail server replies
# 432 4.3.2: the world's Exchange front already holds 3 sessions of erp@contoso.test.
( umask 077
  curl -sS -m 10 --cacert "$CA_FILE" "$MS_TOKEN_URL" -d grant_type=client_credentials -d client_id="$MS_SECRET_CLIENT_ID" \
    --data-urlencode client_secret@"$MS_SECRET_FILE" --data-urlencode scope="$MS_SCOPE" \
    | $PY -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' > "$WORK/erp.token" )
for i in 1 2 3; do
  XO_TOKEN=$(cat "$WORK/erp.token") timeout 60 $PY "$SRC/tests/world/sasl_client.py" smtp "$SMTP_EXCHANGE_PORT" starttls \
    xoauth2 erp@contoso.test --ca "$CA_FILE" --hold 25 >"$WORK/holder$i.out" 2>&1 &
  PIDS+=($!)
done
wait_grep 'OPEN erp@contoso.test count=3' "$EXCHANGE_LOG" || fail "the Exchange front did not open 3 sessions for erp"
variant exchange-front "s#$SMTP_LINE#smtp: {host: localhost, port: $SMTP_EXCHANGE_PORT, tls: starttls}#"
run_test 432-concurrency "$WORK/exchange-front.yaml" ms-secret --mailbox erp@contoso.test --smtp
row 432-concurrency "smtp authenticate" "concurrency: Exchange allows 3 SMTP connections per mailbox" "default_destination_concurrency_limit"
check "432-concurrency: the front's words are shown" grep -q '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' "$WORK/432-concurrency.out"

# Exchange Online / Gmail, played by dropper.py at the step they answer at
play 554-5.2.0 --rcpt-reply "554 5.2.0 STOREDRV.Submission.Exception:RecipientRateLimitExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData]"
run_test 554-5.2.0 "$WORK/554-5.2.0.yaml" ms-secret --smtp
row 554-5.2.0 "smtp RCPT TO" "the mailbox hit Exchange's recipient rate limit" "wait 24 hours"
play 554-5.2.2 --mail-reply "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception"
run_test 554-5.2.2 "$WORK/554-5.2.2.yaml" ms-secret --smtp
row 554-5.2.2 "smtp MAIL FROM" "the mailbox is full" "empty Sent Items"
play 550-5.7.60 --mail-reply "550 5.7.60 SMTP; Client does not have permissions to send as this sender [BN8PR04MB6211.namprd04.prod.outlook.com]"
run_test 550-5.7.60 "$WORK/550-5.7.60.yaml" ms-secret --smtp
row 550-5.7.60 "smtp MAIL FROM" "SendAs denied: the mailbox may not send as this From address" "-AccessRights SendAs (takes up to 30 minutes)"
play 554-5.2.252 --mail-reply "554 5.2.252 SendAsDenied; erp@contoso.test not allowed to send as ceo@contoso.test; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message."
run_test 554-5.2.252 "$WORK/554-5.2.252.yaml" ms-secret --smtp
row 554-5.2.252 "smtp MAIL FROM" "SendAs denied (SendAsDenied)" "align the From address with the mailbox"
play 430-4.2.0 --mail-reply "430 4.2.0 STOREDRV; mailbox logon failure; Failed to process message due to a transient exception with message [BeginDiagnosticData]Cannot open mailbox.[EndDiagnosticData]"
run_test 430-4.2.0 "$WORK/430-4.2.0.yaml" ms-secret --smtp
row 430-4.2.0 "smtp MAIL FROM" "mailbox logon failure" "New-ServicePrincipal -AppId <app id>"
play 550-5.7.30 --auth-reply "550 5.7.30 Basic authentication is not supported for Client Submission"
run_test 550-5.7.30 "$WORK/550-5.7.30.yaml" ms-secret --smtp
row 550-5.7.30 "smtp authenticate" "basic authentication (a password) was refused" "point the client at this proxy"
play 535-5.7.139-sd --auth-reply "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator."
run_test 535-5.7.139-security-defaults "$WORK/535-5.7.139-sd.yaml" ms-secret --smtp
row 535-5.7.139-security-defaults "smtp authenticate" "the sign-in was blocked by the tenant's security defaults" "Manage security defaults"
play 535-5.7.139-ca --auth-reply "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator."
run_test 535-5.7.139-conditional-access "$WORK/535-5.7.139-ca.yaml" ms-secret --smtp
row 535-5.7.139-conditional-access "smtp authenticate" "blocked by a Conditional Access policy" "Sign-in logs"
play 535-5.7.139 --auth-reply "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
run_test 535-5.7.139 "$WORK/535-5.7.139.yaml" ms-secret --smtp
row 535-5.7.139 "smtp authenticate" "SMTP AUTH is disabled for the tenant or the mailbox" 'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'
play 501-5.5.127 --auth-reply "501 5.5.127 Authentication unsuccessful. Token will expire soon"
run_test 501-5.5.127 "$WORK/501-5.5.127.yaml" ms-secret --smtp
row 501-5.5.127 "smtp authenticate" "smtp-hve refuses tokens within 10 minutes" "refresh_window: 11m"
play 550-5.5.105 --rcpt-reply "550 5.5.105 Sending to external recipients is not allowed from the High Volume Email service"
run_test 550-5.5.105 "$WORK/550-5.5.105.yaml" ms-secret --smtp --to someone@example.test
row 550-5.5.105 "smtp RCPT TO" "the High Volume Email endpoint takes internal recipients only" "smtp.office365.com"
play 550-5.4.5 --mail-reply "550 5.4.5 Daily user sending limit exceeded. For more information on Gmail's sending limits go to https://support.google.com/a/answer/166852 - gsmtp"
run_test 550-5.4.5 "$WORK/550-5.4.5.yaml" google --mailbox alice@fabrikam.test --smtp
row 550-5.4.5 "smtp MAIL FROM" "Google's daily sending limit was reached" "spread the mail over more users"
play 535-5.7.3 --auth-reply "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0012.namprd06.prod.outlook.com]"
run_test 535-5.7.3 "$WORK/535-5.7.3.yaml" ms-secret --smtp
row 535-5.7.3 "smtp authenticate" "Exchange refused the token for this mailbox: the app has no access to it" "wait up to 30 minutes"
# the world's Postfix: the app was never granted bob's mailbox
run_test 535-5.7.8 "$CFG" ms-secret --mailbox bob@contoso.test --smtp
row 535-5.7.8 "smtp authenticate" "the server refused the token for this mailbox" "New-ServicePrincipal, Add-MailboxPermission"
play 454-4.7.0 --auth-reply "454 4.7.0 Cannot authenticate due to a temporary system problem. Try again later. - gsmtp"
run_test 454-4.7.0 "$WORK/454-4.7.0.yaml" google --mailbox alice@fabrikam.test --smtp
row 454-4.7.0 "smtp authenticate" "the server could not check the token just now" "retry"
play 530-5.7.57 --mail-reply "530 5.7.57 Client not authenticated to send mail. [DM6PR10CA0021.namprd10.prod.outlook.com]"
run_test 530-5.7.57 "$WORK/530-5.7.57.yaml" ms-secret --smtp
row 530-5.7.57 "smtp MAIL FROM" "the server wants authentication before MAIL FROM" "report this as a bug"

# IMAP and POP3: the world's Dovecot, and Exchange's IMAP played by dropper.py
idp_control '{"check_down": true}'
run_test imap-unavailable "$CFG" ms-secret --imap
row imap-unavailable "imap authenticate" "the server could not check the token just now" "check the provider's service health"
check "imap-unavailable: Dovecot's words are shown" grep -q 'UNAVAILABLE' "$WORK/imap-unavailable.out"
run_test pop3-sys-temp "$CFG" ms-secret --pop3
row pop3-sys-temp "pop3 authenticate" "the server could not check the token just now" "check the provider's service health"
check "pop3-sys-temp: Dovecot's words are shown" grep -q 'SYS/TEMP' "$WORK/pop3-sys-temp.out"
idp_reset
run_test imap-authenticationfailed "$CFG" ms-secret --mailbox bob@contoso.test --imap
row imap-authenticationfailed "imap authenticate" "the server refused the token for this mailbox" "End User Access"
play imap-exchange --imap-auth-reply "NO AUTHENTICATE failed."
run_test imap-authenticate-failed "$WORK/imap-exchange.yaml" ms-secret --imap
row imap-authenticate-failed "imap authenticate" "Exchange refused the token for this mailbox (or a new permission is not active yet" "-ImapEnabled \$true"
run_test pop3-auth "$CFG" ms-secret --mailbox bob@contoso.test --pop3
row pop3-auth "pop3 authenticate" "the server refused the token for this mailbox" "POP.AccessAsApp consented"

# ---------------------------------------------------------------- conditions found here
sed "s#^  google:#  google-device:\n    provider: google\n    flow: device_code\n    client_id: $GOOGLE_CLIENT_ID\n  google:#" "$CFG" > "$WORK/google-device.yaml"
timeout 60 "$PROXY_BIN" --config "$WORK/google-device.yaml" test google-device --mailbox alice@fabrikam.test >"$WORK/device_code_google.out" 2>&1 && RC=0 || RC=$?
ROWS=$((ROWS + 1))
check "row device_code_google: test refuses it up front (exit $RC) with the reason and the other flow" bash -c \
  "[ $RC -ne 0 ] && grep -q \"Google does not allow the device code flow for the Gmail scope\" '$WORK/device_code_google.out' && grep -q 'use flow: authorization_code' '$WORK/device_code_google.out'"
# certificates and secrets that expire soon: status warns with the fix
openssl req -x509 -newkey rsa:2048 -nodes -days 10 -subj /CN=expiring -keyout "$WORK/expiring.key" -out "$WORK/expiring.crt" >/dev/null 2>&1
soon=$(date -u -d '+10 days' +%Y-%m-%d)
variant expiring -e "s#certificate: $MS_CERT_FILE#certificate: $WORK/expiring.crt#" -e "s#private_key: $MS_CERT_KEY_FILE#private_key: $WORK/expiring.key#" \
  -e "s#client_secret: {file: $MS_SECRET_FILE}#client_secret: {file: $MS_SECRET_FILE}\n    secret_expires: $soon#"
"$PROXY_BIN" --config "$WORK/expiring.yaml" status ms-cert >"$WORK/certificate_expiring.out" 2>&1 || true
ROWS=$((ROWS + 1))
check "row certificate_expiring: status warns with the cause and fix" bash -c \
  "grep -q 'certificate $WORK/expiring.crt of connection ms-cert expires [0-9-]* (in [0-9]* days)' '$WORK/certificate_expiring.out' && grep -q 'WARNING: the app.s certificate expires soon.*; to fix: make a new certificate' '$WORK/certificate_expiring.out'"
"$PROXY_BIN" --config "$WORK/expiring.yaml" status ms-secret >"$WORK/secret_expiring.out" 2>&1 || true
ROWS=$((ROWS + 1))
check "row secret_expiring: status warns with the cause and fix" bash -c \
  "grep -q 'client secret of connection ms-secret expires $soon' '$WORK/secret_expiring.out' && grep -q 'WARNING: the client secret expires soon.*; to fix: Azure portal' '$WORK/secret_expiring.out'"
# the mail server's side
variant closed "s#$SMTP_LINE#smtp: {host: localhost, port: $((PORT_BASE + 62)), tls: starttls}#"
run_test connect "$WORK/closed.yaml" ms-secret --smtp
row connect "smtp connect" "the mail server could not be reached" "the firewall allows outbound"
variant wronghost "s#$SMTP_LINE#smtp: {host: localhost, port: $SMTP_WRONGHOST_PORT, tls: starttls}#"
run_test tls "$WORK/wronghost.yaml" ms-secret --smtp
row tls "smtp tls" "the TLS handshake failed or the server's certificate was not accepted" "it must match the certificate"
variant notls "s#$SMTP_LINE#smtp: {host: localhost, port: $SMTP_NOTLS_PORT, tls: starttls}#"
run_test no_starttls "$WORK/notls.yaml" ms-secret --smtp
row no_starttls "smtp tls" "the server does not offer STARTTLS" "587/143/110 STARTTLS"
play no-xoauth2 --auth-mechs "PLAIN LOGIN"
run_test no_mechanism "$WORK/no-xoauth2.yaml" ms-secret --smtp
row no_mechanism "smtp authenticate" "the server does not offer XOAUTH2" "Set-CASMailbox"

echo "rows checked: $ROWS"
check "no token in any output of this test" no_token_in "$WORK"/*.out
finish
