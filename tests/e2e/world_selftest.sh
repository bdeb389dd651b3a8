#!/bin/bash
# The test world itself, proved with real clients (curl, tests/world/sasl_client.py)
# and no proxy: the identity provider issues tokens for every fixture identity
# and refuses the wrong ones with the providers' error shapes; Postfix and
# Dovecot accept exactly the tokens the IdP says may open a mailbox; the
# control API injects failures and counts; no log holds a secret or a token.
set -uo pipefail
SRC=${XO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PORT_BASE=${XO_PORT_BASE:-29000}
WORK=${XO_WORK:-/tmp/xo-world-selftest}
PY=/usr/bin/python3
MKA="$PY $SRC/tests/idp/mkassertion.py"
SASL="$PY $SRC/tests/world/sasl_client.py"
FAILS=0
rm -rf "$WORK"; mkdir -p "$WORK"     # (not 0700: Postfix and Dovecot users must reach $WORK/world)
trap 'bash "$SRC/tests/world/stop" "$WORK/world" >/dev/null 2>&1' EXIT

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }

t0=$SECONDS
if ! bash "$SRC/tests/world/start" "$WORK/world" "$PORT_BASE" >"$WORK/start.out" 2>&1; then
  cat "$WORK/start.out"; echo "FAIL: the test world did not start"; exit 1
fi
cat "$WORK/start.out"
source "$WORK/world/world.env"
export CA_FILE
TOKENS=$WORK/tokens            # every token and assertion this test saw (0600): for the leak check
(umask 077; : > "$TOKENS")

# post NAME URL [curl args...]: POST to the IdP; body to $WORK/NAME.json, prints the HTTP status
post() { local n=$1 u=$2; shift 2; curl -sS -m 10 --cacert "$CA_FILE" -o "$WORK/$n.json" -w '%{http_code}' "$@" "$u"; }
field() { jq -r "$2 // empty" "$WORK/$1.json" 2>/dev/null; }
keep() { local t; t=$(field "$1" .access_token); [ -n "$t" ] && echo "$t" >> "$TOKENS"; echo "$t"; }
has() { grep -qF -- "$2" "$WORK/$1.json"; }
ctl() { curl -sS -m 5 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$1" "$IDP_CONTROL/_control"; }
reset() { curl -sS -m 5 -X POST "$IDP_CONTROL/_reset" >/dev/null; }
ms_secret() {  # ms_secret NAME [secret-file] [tenant]
  post "$1" "$IDP_URL/${3:-$MS_TENANT_ID}/oauth2/v2.0/token" -d grant_type=client_credentials \
    -d client_id="$MS_SECRET_CLIENT_ID" --data-urlencode client_secret@"${2:-$MS_SECRET_FILE}" \
    --data-urlencode scope="$MS_SCOPE"
}
ms_cert() {  # ms_cert NAME ASSERTION [tenant]
  echo "$2" >> "$TOKENS"
  post "$1" "$IDP_URL/${3:-$MS_TENANT_ID}/oauth2/v2.0/token" -d grant_type=client_credentials \
    -d client_id="$MS_CERT_CLIENT_ID" --data-urlencode scope="$MS_SCOPE" \
    -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer --data-urlencode client_assertion="$2"
}
assertion() {  # assertion [mkassertion ms options...]
  $MKA ms --cert "$MS_CERT_FILE" --key "$MS_CERT_KEY_FILE" --client-id "$MS_CERT_CLIENT_ID" --aud "$MS_TOKEN_URL" "$@"
}
google() {  # google NAME SUB [mkassertion google options...]
  local n=$1 a; a=$($MKA google --key-file "$GOOGLE_KEY_FILE" --sub "$2" "${@:3}"); echo "$a" >> "$TOKENS"
  post "$n" "$GOOGLE_TOKEN_URL" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer --data-urlencode assertion="$a"
}
expect() {  # expect WHAT STATUS-GOT STATUS-WANT NAME NEEDLE...
  local what=$1 got=$2 want=$3 n=$4; shift 4
  if [ "$got" != "$want" ]; then fail "$what: HTTP $got, want $want: $(head -c 300 "$WORK/$n.json")"; return; fi
  for needle in "$@"; do has "$n" "$needle" || { fail "$what: no '$needle' in $(head -c 300 "$WORK/$n.json")"; return; }; done
  pass "$what"
}

echo "== a) tokens from the identity provider"
s=$(ms_secret ms-secret); T_MS=$(keep ms-secret)
expect "secret app: token (client secret)" "$s" 200 ms-secret '"token_type": "Bearer"' '"expires_in": 3599' '"ext_expires_in": 3599'
check "secret app: the token is a JWT with tid, appid, roles and no email" $PY -c '
import jwt, sys; c = jwt.decode(sys.argv[1], options={"verify_signature": False})
assert c["tid"] == sys.argv[2] and c["appid"] == sys.argv[3] and "SMTP.SendAsApp" in c["roles"] and "email" not in c' \
  "$T_MS" "$MS_TENANT_ID" "$MS_SECRET_CLIENT_ID"
s=$(ms_secret ms-domain "" "$MS_TENANT_DOMAIN"); keep ms-domain >/dev/null
expect "secret app: tenant given as its domain (contoso.test)" "$s" 200 ms-domain access_token
s=$(ms_cert ms-rs256 "$(assertion --alg RS256)"); T_CERT=$(keep ms-rs256)
expect "cert app: token (RS256 assertion, x5t)" "$s" 200 ms-rs256 access_token
s=$(ms_cert ms-ps256 "$(assertion --alg PS256)"); keep ms-ps256 >/dev/null
expect "cert app: token (PS256 assertion, x5t#S256)" "$s" 200 ms-ps256 access_token
s=$(google g-alice alice@fabrikam.test); T_G=$(keep g-alice)
expect "google: token for alice@fabrikam.test" "$s" 200 g-alice '"expires_in": 3599' '"token_type": "Bearer"'
check "google: answer has no ext_expires_in" bash -c "! grep -q ext_expires_in '$WORK/g-alice.json'"
s=$(post gen-post "$GENERIC_TOKEN_URL" -d grant_type=client_credentials -d client_id="$GENERIC_CLIENT_ID" \
    --data-urlencode client_secret@"$GENERIC_SECRET_FILE" -d scope="$GENERIC_SCOPE"); T_GEN=$(keep gen-post)
expect "generic: token (client_secret_post)" "$s" 200 gen-post '"scope": "mail.send"'
s=$(post gen-basic "$GENERIC_TOKEN_URL" -u "$GENERIC_CLIENT_ID:$(cat "$GENERIC_SECRET_FILE")" -d grant_type=client_credentials \
    -d scope="$GENERIC_SCOPE"); keep gen-basic >/dev/null
expect "generic: token (HTTP Basic)" "$s" 200 gen-basic access_token

printf 'not-the-secret' > "$WORK/wrong-secret"
s=$(ms_secret wrong-secret "$WORK/wrong-secret")
expect "wrong secret: 401 invalid_client AADSTS7000215" "$s" 401 wrong-secret '"error": "invalid_client"' \
  'AADSTS7000215: Invalid client secret provided.' '"error_codes": [7000215]' 'Trace ID: ' '"correlation_id"'
a=$($MKA ms --cert "$MS_OTHER_CERT_FILE" --key "$MS_OTHER_KEY_FILE" --client-id "$MS_CERT_CLIENT_ID" --aud "$MS_TOKEN_URL")
s=$(ms_cert wrong-cert "$a")
expect "wrong certificate: 401 AADSTS700027" "$s" 401 wrong-cert 'AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found.'
a=$(assertion --jti fixed-jti-1); ms_cert replay1 "$a" >/dev/null; s=$(ms_cert replay2 "$a")
expect "replayed assertion (same jti): AADSTS50012" "$s" 401 replay2 'AADSTS50012'
s=$(ms_cert wrong-aud "$(assertion --aud "$IDP_URL/common/oauth2/v2.0/token")")
expect "assertion for another audience: AADSTS700023" "$s" 401 wrong-aud 'AADSTS700023'
s=$(ms_cert expired "$(assertion --offset -3600)")
expect "expired assertion: AADSTS700024" "$s" 401 expired 'AADSTS700024: Client assertion is not within its valid time range.'
s=$(ms_cert too-long "$(assertion --lifetime 86400)")
expect "assertion valid for a day: AADSTS700024" "$s" 401 too-long 'AADSTS700024'
s=$(ms_secret no-tenant "" nosuch.test)
expect "unknown tenant: AADSTS90002" "$s" 400 no-tenant 'AADSTS90002' '"error": "invalid_request"'
s=$(ms_secret common "" common)
expect "client credentials on /common: AADSTS9001023" "$s" 400 common 'AADSTS9001023'
s=$(post bad-scope "$MS_TOKEN_URL" -d grant_type=client_credentials -d client_id="$MS_SECRET_CLIENT_ID" \
    --data-urlencode client_secret@"$MS_SECRET_FILE" --data-urlencode scope=https://outlook.office.com/SMTP.Send)
expect "wrong scope: AADSTS70011 invalid_scope" "$s" 400 bad-scope 'AADSTS70011' '"error": "invalid_scope"'
s=$(google g-foreign bob@contoso.test)
expect "google: sub outside fabrikam.test: invalid_grant" "$s" 400 g-foreign '"error": "invalid_grant"' '"error_description": "Invalid email or User ID"'
s=$(google g-expired alice@fabrikam.test --offset -7200)
expect "google: expired assertion: invalid_grant (iat/exp)" "$s" 400 g-expired 'Check your iat and exp values in the JWT claim.'
s=$(google g-scope alice@fabrikam.test --scope "https://mail.google.com/ https://www.googleapis.com/auth/drive")
expect "google: scope not delegated: unauthorized_client" "$s" 401 g-scope '"error": "unauthorized_client"'
s=$(google g-aud alice@fabrikam.test --aud https://oauth2.googleapis.com/token)
expect "google: wrong aud: invalid_grant" "$s" 400 g-aud '"error": "invalid_grant"'

echo "== b) SMTP submission (Postfix, SASL by Dovecot's Lua passdb asking the IdP)"
id=selftest-$$-$RANDOM
printf 'From: <alice@contoso.test>\r\nTo: <alice@contoso.test>\r\nSubject: %s curl\r\n\r\nhello\r\n' "$id" > "$WORK/msg.eml"
redact() { sed -E 's/^([<>] )[A-Za-z0-9+\/=]{60,}\r?$/\1<SASL data>/'; }
curl -sS -v -m 15 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_STARTTLS_PORT" -u alice@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from alice@contoso.test --mail-rcpt alice@contoso.test -T "$WORK/msg.eml" 2>&1 | redact > "$WORK/smtp-alice.out"
wait_mail() {  # wait_mail DIR NEEDLE: up to 10 s
  local end=$((SECONDS + 10))
  while [ $SECONDS -lt $end ]; do grep -rqsF -- "$2" "$1" && return 0; sleep 0.1; done; return 1
}
check "curl (OAUTHBEARER, STARTTLS): message for alice@contoso.test in her Maildir/new" \
  wait_mail "$MAIL_DIR/contoso.test/alice/Maildir/new" "$id curl"
check "POSTFIX_LOG: STARTTLS session, sasl_method=OAUTHBEARER, sasl_username=alice@contoso.test" bash -c \
  "grep -q 'world/submission/smtpd.*TLS connection established from localhost' '$POSTFIX_LOG' &&
   grep -q 'world/submission/smtpd.*sasl_method=OAUTHBEARER, sasl_username=alice@contoso.test' '$POSTFIX_LOG'"
XO_TOKEN=$T_MS $SASL smtp "$SMTP_STARTTLS_PORT" starttls xoauth2 alice@contoso.test --send alice@contoso.test alice@contoso.test "$id xoauth2" >"$WORK/smtp-xoauth2.out" 2>&1
check "sasl_client (XOAUTH2, two-step): 235, message delivered" wait_mail "$MAIL_DIR/contoso.test/alice/Maildir/new" "$id xoauth2"
check "POSTFIX_LOG: sasl_method=XOAUTH2, sasl_username=alice@contoso.test" grep -q 'sasl_method=XOAUTH2, sasl_username=alice@contoso.test' "$POSTFIX_LOG"
curl -sS -v -m 15 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_STARTTLS_PORT" -u bob@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from bob@contoso.test --mail-rcpt alice@contoso.test -T "$WORK/msg.eml" 2>&1 | redact >"$WORK/smtp-bob.out"
rc=${PIPESTATUS[0]}
check "same token as bob@contoso.test (not granted): refused with 535 (curl rc $rc)" grep -q '^< 535 5.7.8' "$WORK/smtp-bob.out"
XO_TOKEN=$T_MS $SASL smtp "$SMTP_STARTTLS_PORT" starttls xoauth2 bob@contoso.test >"$WORK/smtp-bob-xoauth2.out" 2>&1
check "XOAUTH2 refused: 334 challenge {\"status\":\"401\",...}, then 535 5.7.8" bash -c \
  "grep -q '^S: 334 .*decoded: {\"status\":\"401\",\"schemes\":\"bearer\"' '$WORK/smtp-bob-xoauth2.out' && grep -q '^S: 535 5.7.8' '$WORK/smtp-bob-xoauth2.out'"
XO_TOKEN=$T_CERT $SASL smtp "$SMTP_IMPLICIT_PORT" implicit xoauth2 scanner@contoso.test --send scanner@contoso.test alice@fabrikam.test "$id implicit" >"$WORK/smtp-implicit.out" 2>&1
check "implicit TLS port, cert app token as scanner@contoso.test -> alice@fabrikam.test" \
  wait_mail "$MAIL_DIR/fabrikam.test/alice/Maildir/new" "$id implicit"
XO_TOKEN=$T_GEN $SASL smtp "$SMTP_STARTTLS_PORT" starttls xoauth2 alice@contoso.test >"$WORK/smtp-generic.out" 2>&1
check "generic token as alice@contoso.test (granted): 235" grep -q '^S: 235' "$WORK/smtp-generic.out"
smtp_raw() {  # smtp_raw PORT: EHLO transcript of a plain connection
  $PY - "$1" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5); f = s.makefile("rb")
print(f.readline().decode().strip()); s.sendall(b"EHLO client.test\r\n")
while True:
    l = f.readline().decode().strip(); print(l)
    if l[3:4] != "-": break
s.sendall(b"QUIT\r\n")
PYEOF
}
smtp_raw "$SMTP_NOTLS_PORT" > "$WORK/notls.out" 2>&1
check "no-TLS port: EHLO answers, no STARTTLS offered" bash -c "grep -q '^250 ' '$WORK/notls.out' && ! grep -q STARTTLS '$WORK/notls.out'"
curl -sS -m 10 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_WRONGHOST_PORT" -u alice@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from alice@contoso.test --mail-rcpt alice@contoso.test -T "$WORK/msg.eml" >"$WORK/wronghost.out" 2>&1
rc=$?
check "wrong-host port: curl refuses the certificate (rc $rc = 60)" test "$rc" -eq 60
check "wrong-host port: certificate is for wrong.example.test, signed by the test CA" bash -c \
  "openssl s_client -connect 127.0.0.1:$SMTP_WRONGHOST_PORT -starttls smtp -CAfile '$CA_FILE' -verify_hostname wrong.example.test </dev/null 2>&1 | grep -q 'Verify return code: 0 (ok)'"
curl -sS -v -m 15 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_STARTTLS_PORT" -u alice@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from alice@contoso.test --mail-rcpt reject@contoso.test -T "$WORK/msg.eml" 2>&1 | redact > "$WORK/rcpt.out"
check "reject@contoso.test refused at RCPT: 550 5.1.1" grep -q '^< 550 5.1.1' "$WORK/rcpt.out"
printf 'Subject: please REJECT-AT-DATA %s\r\n\r\nbody\r\n' "$id" > "$WORK/eod.eml"
curl -sS -v -m 15 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_STARTTLS_PORT" -u alice@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from alice@contoso.test --mail-rcpt alice@contoso.test -T "$WORK/eod.eml" 2>&1 | redact > "$WORK/eod.out"
check "Subject REJECT-AT-DATA refused after the final dot: 5xx" bash -c "grep -q '^< 354' '$WORK/eod.out' && grep -q '^< 5[0-9][0-9] 5.7.1' '$WORK/eod.out'"
head -c 100000 /dev/zero | tr '\0' 'x' | fold -w 76 | sed 's/$/\r/' > "$WORK/big.eml"
curl -sS -v -m 15 --ssl-reqd --cacert "$CA_FILE" "smtp://localhost:$SMTP_DROP_PORT" -u alice@contoso.test: \
  --oauth2-bearer "$T_MS" --mail-from alice@contoso.test --mail-rcpt alice@contoso.test -T "$WORK/big.eml" 2>&1 | redact > "$WORK/drop.out"
check "dropper: 235 and 354, then the connection closes without a reply to the data" bash -c \
  "grep -q '^< 235' '$WORK/drop.out' && sed -n '/^< 354/,\$p' '$WORK/drop.out' | grep -c '^< ' | grep -qx 1 &&
   grep -q 'dropping the connection' '$DROPPER_LOG'"

echo "== c) IMAP and POP3 (Dovecot)"
curl -sS -m 10 --cacert "$CA_FILE" "imaps://localhost:$IMAPS_PORT/" -u alice@fabrikam.test: --oauth2-bearer "$T_G" >"$WORK/imaps.out" 2>&1
check "curl imaps (OAUTHBEARER), google token for alice@fabrikam.test: LIST works" grep -q INBOX "$WORK/imaps.out"
curl -sS -m 10 --cacert "$CA_FILE" "imaps://localhost:$IMAPS_PORT/INBOX" -u alice@fabrikam.test: --oauth2-bearer "$T_G" \
  -X 'SEARCH SUBJECT "'"$id"' implicit"' >"$WORK/imaps-search.out" 2>&1
check "imaps: the message sent on the implicit TLS port is in alice@fabrikam.test's INBOX" grep -q '^\* SEARCH [0-9]' "$WORK/imaps-search.out"
curl -sS -m 10 --cacert "$CA_FILE" "pop3s://localhost:$POP3S_PORT/" -u alice@fabrikam.test: --oauth2-bearer "$T_G" >"$WORK/pop3s.out" 2>&1
check "curl pop3s (OAUTHBEARER), google token: LIST works" grep -q '^1 ' "$WORK/pop3s.out"
curl -sS -m 10 --cacert "$CA_FILE" "imaps://localhost:$IMAPS_PORT/" -u alice@fabrikam.test: --oauth2-bearer "${T_G%?????}AAAAA" >"$WORK/imaps-bad.out" 2>&1
rc=$?; check "imaps with a bad token: refused (curl rc $rc = 67)" test "$rc" -eq 67
curl -sS -m 10 --cacert "$CA_FILE" "pop3s://localhost:$POP3S_PORT/" -u alice@fabrikam.test: --oauth2-bearer "${T_G%?????}AAAAA" >"$WORK/pop3s-bad.out" 2>&1
rc=$?; check "pop3s with a bad token: refused (curl rc $rc = 67)" test "$rc" -eq 67
curl -sS -m 10 --cacert "$CA_FILE" "imaps://localhost:$IMAPS_PORT/" -u bob@fabrikam.test: --oauth2-bearer "$T_G" >"$WORK/imaps-other.out" 2>&1
rc=$?; check "imaps: alice's google token for bob@fabrikam.test: refused (rc $rc)" test "$rc" -eq 67
XO_TOKEN=$T_G $SASL imap "$IMAP_STARTTLS_PORT" starttls xoauth2 alice@fabrikam.test >"$WORK/imap-starttls.out" 2>&1
check "IMAP STARTTLS + XOAUTH2: OK" grep -q '^S: a1 OK' "$WORK/imap-starttls.out"
XO_TOKEN=$T_MS $SASL imap "$IMAPS_PORT" implicit xoauth2 bob@contoso.test >"$WORK/imap-refused.out" 2>&1
check "IMAP XOAUTH2 refused: '+ <base64 {\"status\":\"401\"...}>', then NO [AUTHENTICATIONFAILED]" bash -c \
  "grep -q '^S: + .*decoded: {\"status\":\"401\"' '$WORK/imap-refused.out' && grep -q '^S: a1 NO \[AUTHENTICATIONFAILED\]' '$WORK/imap-refused.out'"
XO_TOKEN=$T_MS $SASL imap "$IMAPS_PORT" implicit xoauth2 erp@contoso.test >"$WORK/imap-erp.out" 2>&1
check "IMAP: secret app's app-only token opens erp@contoso.test (granted)" grep -q '^S: a1 OK' "$WORK/imap-erp.out"
XO_TOKEN=$T_G $SASL pop3 "$POP3_STLS_PORT" starttls oauthbearer alice@fabrikam.test >"$WORK/pop3-stls.out" 2>&1
check "POP3 STLS + OAUTHBEARER: +OK" grep -q '^S: +OK Logged in' "$WORK/pop3-stls.out"
XO_TOKEN=$T_G $SASL imap "$IMAP_STARTTLS_PORT" none xoauth2 alice@fabrikam.test >"$WORK/imap-cleartext.out" 2>&1
check "IMAP without STARTTLS: a good token is refused (no token in cleartext)" grep -q '^S: a1 NO' "$WORK/imap-cleartext.out"
XO_TOKEN=$T_G $SASL pop3 "$POP3_STLS_PORT" none xoauth2 alice@fabrikam.test >"$WORK/pop3-cleartext.out" 2>&1
check "POP3 without STLS: a good token is refused" grep -q '^S: -ERR' "$WORK/pop3-cleartext.out"
XO_TOKEN=$T_MS $SASL smtp "$SMTP_NOTLS_PORT" none xoauth2 alice@contoso.test >"$WORK/smtp-cleartext.out" 2>&1
check "SMTP no-TLS port: AUTH offered, but a good token is refused (535)" grep -q '^S: 535' "$WORK/smtp-cleartext.out"

echo "== d) control API"
reset
check "unknown fail mode refused with 400" test "$(ctl '{"client_id": "x", "fail": "bogus"}')" = 400
ctl "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"invalid_secret\", \"count\": 1}" >/dev/null
s=$(ms_secret inj1); expect "invalid_secret injected: next request 401 AADSTS7000215" "$s" 401 inj1 'AADSTS7000215'
s=$(ms_secret inj2); keep inj2 >/dev/null; expect "count 1: the request after it succeeds" "$s" 200 inj2 access_token
for m in expired_secret:7000222 app_not_found:700016 no_consent:65001; do
  ctl "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"${m%%:*}\"}" >/dev/null
  s=$(ms_secret "inj-${m%%:*}"); expect "${m%%:*}: AADSTS${m##*:}" "$s" "$([ "${m%%:*}" = expired_secret ] && echo 401 || echo 400)" "inj-${m%%:*}" "AADSTS${m##*:}"
done
ctl "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"none\"}" >/dev/null
ctl '{"client_id": "*", "fail": "http500", "count": 1}' >/dev/null
s=$(ms_secret inj500); check "http500: HTTP 500 with an HTML body (got $s)" bash -c "[ '$s' = 500 ] && grep -q '<html>' '$WORK/inj500.json'"
ctl "{\"client_id\": \"$GOOGLE_SA_EMAIL\", \"fail\": \"slow\", \"delay\": 1, \"count\": 1}" >/dev/null
t=$(date +%s%N); s=$(google slow alice@fabrikam.test); keep slow >/dev/null; ms=$(( ($(date +%s%N) - t) / 1000000 ))
check "slow: answered normally after the delay (${ms} ms, HTTP $s)" bash -c "[ '$s' = 200 ] && [ $ms -ge 1000 ]"
ctl '{"token_lifetime": 120}' >/dev/null
s=$(ms_secret life); keep life >/dev/null; expect "token_lifetime 120: expires_in 120" "$s" 200 life '"expires_in": 120'
stats=$(curl -sS -m 5 "$IDP_CONTROL/_stats")
n_ms=$(jq -r --arg c "$MS_SECRET_CLIENT_ID" '.token_requests[$c]' <<<"$stats"); n_g=$(jq -r --arg c "$GOOGLE_SA_EMAIL" '.token_requests[$c]' <<<"$stats")
check "/_stats counts since /_reset: secret app 7 (got $n_ms), service account 1 (got $n_g), total 8 ($(jq .total <<<"$stats"))" \
  bash -c "[ '$n_ms' = 7 ] && [ '$n_g' = 1 ] && [ '$(jq .total <<<"$stats")' = 8 ]"
chk() { curl -sS -m 5 --data-urlencode "user=$1" --data-urlencode "token=$2" -d service=smtp "$IDP_CONTROL/_check"; }
check "/_check: secret app token for alice@contoso.test -> ok" bash -c "[[ '$(chk alice@contoso.test "$T_MS")' == *'\"ok\": true'* ]]"
check "/_check: same token for bob@contoso.test -> not ok, with a reason" bash -c "[[ '$(chk bob@contoso.test "$T_MS")' == *'has no access'* ]]"
ctl '{"clock_skew": 7200}' >/dev/null
check "/_check: a token past its expiry (IdP clock +2 h) -> not ok" bash -c "[[ '$(chk alice@contoso.test "$T_MS")' == *expired* ]]"
XO_TOKEN=$T_G $SASL imap "$IMAPS_PORT" implicit xoauth2 alice@fabrikam.test >"$WORK/imap-expired.out" 2>&1
check "IMAP with an expired token: refused" grep -q '^S: a1 NO' "$WORK/imap-expired.out"
reset
ctl "{\"revoke_mailbox\": {\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"mailbox\": \"alice@contoso.test\"}}" >/dev/null
XO_TOKEN=$T_MS $SASL smtp "$SMTP_STARTTLS_PORT" starttls xoauth2 alice@contoso.test >"$WORK/smtp-revoked.out" 2>&1
check "revoke_mailbox: the secret app can no longer open alice@contoso.test" grep -q '^S: 535' "$WORK/smtp-revoked.out"
reset

echo "== the identity provider unreachable: temporary failures"
kill "$(cat "$WORK/world/run/idp.pid")"
end=$((SECONDS + 5)); while ss -ltnH "sport = :$IDP_CONTROL_PORT" | grep -q . && [ $SECONDS -lt $end ]; do sleep 0.05; done
XO_TOKEN=$T_G $SASL imap "$IMAPS_PORT" implicit xoauth2 alice@fabrikam.test >"$WORK/imap-idp-down.out" 2>&1
check "IMAP: NO [UNAVAILABLE] Temporary authentication failure" grep -q '^S: a1 NO \[UNAVAILABLE\]' "$WORK/imap-idp-down.out"
XO_TOKEN=$T_G $SASL pop3 "$POP3S_PORT" implicit xoauth2 alice@fabrikam.test >"$WORK/pop3-idp-down.out" 2>&1
check "POP3: -ERR [SYS/TEMP]" grep -q '^S: -ERR \[SYS/TEMP\]' "$WORK/pop3-idp-down.out"
XO_TOKEN=$T_MS $SASL smtp "$SMTP_STARTTLS_PORT" starttls xoauth2 alice@contoso.test >"$WORK/smtp-idp-down.out" 2>&1
check "SMTP (Postfix): 535 5.7.8, no challenge (Postfix does not pass Dovecot's temporary failure on)" grep -q '^S: 535 5.7.8' "$WORK/smtp-idp-down.out"

echo "== e) no secret, key or token in any log or output"
bash "$SRC/tests/world/stop" "$WORK/world" >/dev/null 2>&1
cat "$WORK/world/idp/issued-tokens" >> "$TOKENS" 2>/dev/null
$PY - "$WORK" "$WORK/world" "$TOKENS" <<'PYEOF' > "$WORK/leaks.out"
import glob, os, sys
work, root, tokens = sys.argv[1:4]
needles = set()
for f in glob.glob(root + "/secrets/*"):
    text = open(f).read()
    if "PRIVATE KEY" in text:
        needles.update(l for l in text.replace("\\n", "\n").splitlines() if len(l) > 40 and "-----" not in l)
    elif not f.endswith(".crt"):
        needles.add(text.strip())
for t in open(tokens):
    t = t.strip()
    if t:
        needles.add(t)
        if t.count(".") == 2:
            needles.add(t.split(".")[2][:40])
needles = {n for n in needles if len(n) >= 8}
files = glob.glob(root + "/log/*") + glob.glob(work + "/*.out")
leaks = [(p, n[:4]) for p in files for n in needles if n in open(p, errors="replace").read()]
for p, n in leaks:
    print("LEAK: %s holds a secret (%s...)" % (p, n))
print("scanned %d files for %d secrets and tokens: %d leak(s)" % (len(files), len(needles), len(leaks)))
sys.exit(1 if leaks else 0)
PYEOF
rc=$?; cat "$WORK/leaks.out"
check "no leak in ROOT/log or the test's outputs" test "$rc" -eq 0

echo "self-test took $((SECONDS - t0)) s"
if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed"; exit 1; fi
echo "all checks passed"
