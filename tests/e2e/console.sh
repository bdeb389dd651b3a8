#!/bin/bash
# The admin web console: with curl, requests without the session cookie get
# 401 and POSTs without the CSRF token 403, a wrong password 401, the right one
# a HttpOnly SameSite=Strict cookie; Test runs the steps of `xoauth2-proxy test`;
# an authorization-code sign-in comes back to /oauth/callback (a wrong state
# is refused) and the refresh token is stored. Then in headless Chromium
# (console_browser.js, puppeteer-core): sign in, see the connections and their
# states, Test, device-code Authorize approved at the test IdP, Active by
# itself. Screenshots are kept in $WORK/screenshots.
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
CFG=$WORK/proxy.yaml
mkdir -p "$WORK/screenshots"
CONSOLE_PW='console pass"word'
HASH=$(hash_password "$CONSOLE_PW")
interactive_connections "$CFG" ms-device ms-delegated
$PY - "$CFG" "$HASH" <<PYEOF
import sys
p, h = sys.argv[1], sys.argv[2]; s = open(p).read()
hp = s.split('login: erp, password_hash: "')[1].split('"')[0]
s = s.replace("senders:", """  - {login: bob-device, password_hash: "%s", connection: ms-device, mailbox: bob@contoso.test}
  - {login: alice-deleg, password_hash: "%s", connection: ms-delegated, mailbox: alice@contoso.test}
senders:""" % (hp, hp))
s += "admin: {bind: \"127.0.0.1:$PROXY_ADMIN\", password_hash: \"%s\"}\n" % h
open(p, "w").write(s)
PYEOF
proxy_start
wait_port "$PROXY_ADMIN" 10 || { echo "admin listener did not start"; tail -20 "$WORK/proxy.log"; exit 1; }
U=http://127.0.0.1:$PROXY_ADMIN
JAR=$WORK/cookies.txt
code_of() { curl -s -o /dev/null -w '%{http_code}' -m 10 "$@"; }

# --- without a session
check "GET / without a session: the sign-in form" bash -c "curl -sS -m 5 '$U/' | grep -q 'name=\"password\"'"
check "GET /api/connections without the cookie: 401" test "$(code_of "$U/api/connections")" = 401
check "POST test without the cookie: 401" test "$(code_of -X POST -d '{}' "$U/api/connections/ms-secret/test")" = 401
check "/healthz, /status and /metrics still answer" bash -c \
  "[ \$(curl -s -o /dev/null -w '%{http_code}' '$U/healthz') = 200 ] && [ \$(curl -s -o /dev/null -w '%{http_code}' '$U/status') = 200 ] && [ \$(curl -s -o /dev/null -w '%{http_code}' '$U/metrics') = 200 ]"
check "a wrong password: 401" test "$(code_of --data-urlencode 'password=nope' "$U/login")" = 401

# --- sign in
curl -sS -m 10 -D "$WORK/login.headers" -c "$JAR" --data-urlencode "password=$CONSOLE_PW" -o /dev/null "$U/login"
check "the right password: 303 to / with a HttpOnly, SameSite=Strict cookie" bash -c \
  "grep -q '^HTTP/1.1 303' '$WORK/login.headers' && grep -qiE '^set-cookie: xo_console=[A-Za-z0-9_-]{40,}; Path=/; HttpOnly; SameSite=Strict' '$WORK/login.headers'"
curl -sS -m 5 -b "$JAR" "$U/" > "$WORK/page.html"
CSRF=$(grep -oE '<meta name="csrf" content="[^"]+"' "$WORK/page.html" | sed 's/.*content="//; s/"$//')
check "the page carries a CSRF token" test "${#CSRF}" -ge 40
check "GET /api/connections with the cookie: 200 and every connection" bash -c \
  "curl -sS -m 5 -b '$JAR' '$U/api/connections' | $PY -c 'import json,sys; j=json.load(sys.stdin); n={c[\"name\"]:c[\"state\"] for c in j[\"connections\"]}; assert {\"ms-secret\",\"ms-device\",\"ms-delegated\",\"google\",\"generic\",\"ms-cert\"} <= set(n), n; assert n[\"ms-device\"] == \"Needs authorization\", n'"
check "POST test with the cookie but no CSRF token: 403" \
  test "$(code_of -b "$JAR" -X POST -d '{}' "$U/api/connections/ms-secret/test")" = 403
check "POST test with a wrong CSRF token: 403" \
  test "$(code_of -b "$JAR" -H 'X-CSRF-Token: x' -X POST -d '{}' "$U/api/connections/ms-secret/test")" = 403
curl -sS -m 30 -b "$JAR" -H "X-CSRF-Token: $CSRF" -X POST -d '{"protocol": "imap"}' "$U/api/connections/google/test" > "$WORK/test.json"
check "Test (imap, google): the steps and an OK verdict" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ok"] and j["verdict"].startswith("OK: connection google works for alice@fabrikam.test over imap"), j
assert [s["name"] for s in j["steps"]][:4] == ["token", "imap connect", "imap tls", "imap authenticate"], j["steps"]
' "$WORK/test.json"

# --- a failing connection: Failing, with the diagnosis table's cause and fix
idp_control "{\"client_id\": \"$GENERIC_CLIENT_ID\", \"fail\": \"invalid_secret\"}"
curl -sS -m 30 -b "$JAR" -H "X-CSRF-Token: $CSRF" -X POST -d '{}' "$U/api/connections/generic/test" > "$WORK/test-fail.json"
check "Test of a failing connection: cause and fix" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert not j["ok"] and j["verdict"].startswith("FAILED at token: the client credentials were refused") and "client_id" in j["fix"], j
' "$WORK/test-fail.json"
check "generic shows Failing with the diagnosis" bash -c \
  "curl -sS -m 5 -b '$JAR' '$U/api/connections' | $PY -c 'import json,sys; j=json.load(sys.stdin); c=[c for c in j[\"connections\"] if c[\"name\"]==\"generic\"][0]; assert c[\"state\"]==\"Failing\" and \"refused\" in c[\"diagnosis\"][\"cause\"], c'"
idp_reset

# --- authorization code: the provider comes back to /oauth/callback
curl -sS -m 10 -b "$JAR" -H "X-CSRF-Token: $CSRF" -X POST -d '{"mailbox": "alice@contoso.test"}' \
  "$U/api/connections/ms-delegated/authorize" > "$WORK/authorize.json"
AUTH_URL=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["authorize_url"])' "$WORK/authorize.json" || true)
check "authorization code: an authorize_url with PKCE S256, state and the callback" bash -c \
  "echo '$AUTH_URL' | grep -q 'code_challenge_method=S256' && echo '$AUTH_URL' | grep -q 'state=' && echo '$AUTH_URL' | grep -q 'redirect_uri=http%3A%2F%2F127.0.0.1%3A$PROXY_ADMIN%2Foauth%2Fcallback'"
check "a callback with an unknown state is refused" test "$(code_of "$U/oauth/callback?code=x&state=forged")" = 400
curl -sS -m 20 --cacert "$CA_FILE" -L -o "$WORK/callback.html" "$AUTH_URL" || true
check "the browser lands on /oauth/callback: authorized" grep -q 'alice@contoso.test is authorized for connection ms-delegated' "$WORK/callback.html"
check "ms-delegated is Active, its refresh token stored" bash -c \
  "curl -sS -m 5 -b '$JAR' '$U/api/connections' | $PY -c 'import json,sys; j=json.load(sys.stdin); c=[c for c in j[\"connections\"] if c[\"name\"]==\"ms-delegated\"][0]; assert c[\"state\"]==\"Active\", c' && test -s '$STORE'"

# --- the browser
if [ ! -x /usr/bin/chromium ]; then
  fail "chromium is not installed (scripts/install-deps installs it)"
else
  NODE_DIR=$BUILD/node
  if [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
    mkdir -p "$NODE_DIR"
    for attempt in 1 2; do   # once more after a registry hiccup
      timeout 240 npm install --prefix "$NODE_DIR" puppeteer-core@25 --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1 && break
      sleep 5
    done
  fi
  if [ ! -d "$NODE_DIR/node_modules/puppeteer-core" ]; then
    fail "puppeteer-core could not be installed: $(tail -3 "$WORK/npm.log")"
  else
    CONSOLE_URL=$U CONSOLE_PASSWORD=$CONSOLE_PW IDP_CONTROL=$IDP_CONTROL SHOTS=$WORK/screenshots PUPPETEER_DIR=$NODE_DIR \
      timeout 120 node "$SRC/tests/e2e/console_browser.js" >"$WORK/browser.out" 2>&1 || true
    sed 's/^/  /' "$WORK/browser.out"
    check "browser: every check passed" bash -c "grep -q '^PASS' '$WORK/browser.out' && ! grep -q '^FAIL' '$WORK/browser.out'"
    check "browser: five screenshots kept" test "$(ls "$WORK/screenshots"/*.png 2>/dev/null | wc -l)" -eq 5
  fi
fi
check "the console never logged a token or the password" bash -c \
  "! grep -qF '$CONSOLE_PW' '$WORK/proxy.log' && ! grep -qE '$TOKEN_SHAPE' '$WORK/proxy.log'"
proxy_stop
finish
