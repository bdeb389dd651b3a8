#!/bin/bash
# Each of the four token providers obtains a token from the test identity
# provider through `xoauth2-proxy token`; wrong secret, wrong certificate,
# wrong sub and an expired assertion each give the provider's error with its
# code and what to do. The token itself is printed only with --show.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
CFG=$WORK/proxy.yaml

token() { "$PROXY_BIN" --config "${CFG_OVERRIDE:-$CFG}" token "$@" >"$WORK/token.out" 2>&1; }

for c in ms-secret ms-cert generic; do
  check "$c: token obtained" token "$c"
  check "$c: output names expiry and scope, not the token" \
    bash -c "grep -q 'token obtained, expires .* (in [0-9]* s), scope' '$WORK/token.out' && ! grep -qE '$TOKEN_SHAPE' '$WORK/token.out'"
done
check "google: token obtained for alice@fabrikam.test" token google --mailbox alice@fabrikam.test
grep -h 'token obtained' "$WORK/token.out" | sed 's/^/  /'
check "google: a mailbox is required" bash -c "! '$PROXY_BIN' --config '$CFG' token google >'$WORK/t.out' 2>&1 && grep -q 'give --mailbox' '$WORK/t.out'"
check "--show prints the token" bash -c "'$PROXY_BIN' --config '$CFG' token ms-secret --show | tail -1 | grep -q '^eyJ'"

# PS256 with x5t#S256.
sed 's/^    certificate: \(.*\)$/    certificate: \1\n    assertion: ps256_x5t_s256/' "$CFG" > "$WORK/ps256.yaml"
CFG_OVERRIDE=$WORK/ps256.yaml check "ms-cert with PS256 / x5t#S256: token obtained" token ms-cert

# Wrong secret.
printf 'not-the-secret' > "$WORK/wrong-secret"; chmod 600 "$WORK/wrong-secret"
sed "s#client_secret: {file: $MS_SECRET_FILE}#client_secret: {file: $WORK/wrong-secret}#" "$CFG" > "$WORK/wrong-secret.yaml"
CFG_OVERRIDE=$WORK/wrong-secret.yaml token ms-secret && fail "wrong secret accepted" || true
check "wrong secret: AADSTS7000215 with advice" \
  grep -q "AADSTS7000215 invalid_client (HTTP 401): AADSTS7000215: Invalid client secret provided" "$WORK/token.out"
check "wrong secret: says what to do" grep -q "what to do: the client secret is wrong: often the secret's ID was pasted" "$WORK/token.out"
sed 's/^/  /' "$WORK/token.out"

# Wrong certificate: a key pair the app never registered.
sed -e "s#certificate: $MS_CERT_FILE#certificate: $MS_OTHER_CERT_FILE#" -e "s#private_key: $MS_CERT_KEY_FILE#private_key: $MS_OTHER_KEY_FILE#" \
  "$CFG" > "$WORK/wrong-cert.yaml"
CFG_OVERRIDE=$WORK/wrong-cert.yaml token ms-cert && fail "unregistered certificate accepted" || true
check "wrong certificate: AADSTS700027" grep -q "AADSTS700027" "$WORK/token.out"
sed 's/^/  /' "$WORK/token.out"

# Wrong sub: a mailbox outside the delegated domain.
token google --mailbox someone@elsewhere.test && fail "foreign sub accepted" || true
check "wrong sub: invalid_grant 'Invalid email or User ID'" grep -q "invalid_grant (HTTP 400): Invalid email or User ID" "$WORK/token.out"
sed 's/^/  /' "$WORK/token.out"

# Expired assertion: the identity provider's clock runs two hours ahead.
idp_control '{"clock_skew": 7200}'
token ms-cert && fail "expired assertion accepted" || true
check "expired assertion (certificate): AADSTS700024" grep -q "AADSTS700024" "$WORK/token.out"
sed 's/^/  /' "$WORK/token.out"
token google --mailbox alice@fabrikam.test && fail "expired google assertion accepted" || true
check "expired assertion (google): invalid_grant about iat/exp" grep -q "invalid_grant .*iat and exp" "$WORK/token.out"
idp_reset

# Identity provider failures the providers must report, not retry forever.
for mode in expired_secret:AADSTS7000222 app_not_found:AADSTS700016 no_consent:AADSTS65001; do
  idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"${mode%%:*}\"}"
  token ms-secret && fail "${mode%%:*} accepted" || true
  check "${mode%%:*}: ${mode##*:} reported" grep -q "${mode##*:}" "$WORK/token.out"
  idp_reset
done
idp_control "{\"client_id\": \"$MS_SECRET_CLIENT_ID\", \"fail\": \"http500\", \"count\": 2}"
check "two HTTP 500s then success: retried with backoff" token ms-secret
n=$(idp_requests "$MS_SECRET_CLIENT_ID")
check "three requests for that (got $n)" test "$n" -eq 3
finish
