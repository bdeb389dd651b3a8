#!/bin/bash
# 50 concurrent SMTP sessions on one connection cause one token request at the
# identity provider, and the token is reused afterwards; a 30 MB message relays with the proxy's peak RSS growing by less than 5 MB
# over an idle proxy (VmHWM from /proc, printed for the closing note).
source "$(dirname "$0")/lib.sh"
world_start
proxy_config
proxy_start
PW='erp-pass word"1'

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PROXY_PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$PROXY_PID/status"; }

# Warm up (TLS contexts, token cached), then measure idle RSS.
$PY "$SRC/tests/clients/make_message.py" "$WORK/warm.eml" erp@contoso.test alice@contoso.test "warm-up"
XO_PASSWORD=$PW $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" erp - erp@contoso.test alice@contoso.test \
  "$WORK/warm.eml" >"$WORK/warm.out" 2>&1 || true
# 30 MB: flat memory while streaming.
$PY "$SRC/tests/clients/make_message.py" "$WORK/big.eml" erp@contoso.test alice@contoso.test "big-30mb" 31457280
idle=$(rss_kb)
echo 5 > "/proc/$PROXY_PID/clear_refs" 2>/dev/null || true   # reset VmHWM to the current RSS
before_hwm=$(hwm_kb)
XO_PASSWORD=$PW $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" erp - erp@contoso.test alice@contoso.test \
  "$WORK/big.eml" >"$WORK/big.out" 2>&1 || true
check "30 MB message relayed: $(tail -1 "$WORK/big.out")" grep -q '^RESULT 250' "$WORK/big.out"
peak=$(hwm_kb)
growth=$((peak - idle))
echo "MEASURE smtp 30MB: idle RSS ${idle} kB, peak RSS (VmHWM) ${peak} kB (before ${before_hwm} kB), growth ${growth} kB"
check "peak RSS grew by less than 5 MB (${growth} kB)" test "$growth" -lt 5120
f=$(maildir_find alice@contoso.test "Subject: big-30mb") && \
  check "30 MB message delivered byte-identical" $PY "$SRC/tests/clients/compare_delivered.py" "$WORK/big.eml" "$f"

# 50 sessions at once on a connection whose token is not cached yet.
idp_reset
# An hour's token: however slow the machine, the test ends long before the
# token reaches the 300 s refresh window, so every count below is exact. The
# renewal inside the window is the token cache's unit test (fake clock):
# OauthTokenCache.RenewsOnceInsideRefreshWindow and the stale-while-revalidate tests.
idp_control '{"token_lifetime": 3600}'
for i in $(seq 1 50); do
  $PY "$SRC/tests/clients/make_message.py" "$WORK/c$i.eml" scanner@contoso.test alice@contoso.test "concurrent-$i"
done
pids=()
for i in $(seq 1 50); do
  XO_PASSWORD=scanner-pass timeout 120 $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" scanner - \
    scanner@contoso.test alice@contoso.test "$WORK/c$i.eml" >"$WORK/c$i.out" 2>&1 &
  pids+=($!)
done
ok=0
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
check "50 concurrent sessions all relayed ($ok/50)" test "$ok" -eq 50
n=$(idp_requests "$MS_CERT_CLIENT_ID")
check "50 concurrent sessions caused one token request at the identity provider (got $n)" test "$n" -eq 1
# Reused while outside the refresh window...
XO_PASSWORD=scanner-pass $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$PROXY_SMTP" scanner - \
  scanner@contoso.test alice@contoso.test "$WORK/c1.eml" >"$WORK/reuse.out" 2>&1 || true
n=$(idp_requests "$MS_CERT_CLIENT_ID")
check "token reused outside the refresh window (requests: $n)" test "$n" -eq 1
finish
