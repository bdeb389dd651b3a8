#!/bin/bash
# Listener limits (issue 12): a client trickling one byte a second is cut off
# at command_timeout (the connection is closed); a client that stalls in the middle of a
# message is dropped at data_timeout and nothing is delivered; a session that
# stays busy ends at session_timeout. Short limits on a listener of their own.
source "$(dirname "$0")/lib.sh"
SLOW="$PY $SRC/tests/clients/slow_client.py"
PROXY_LIMITS=$((PORT_BASE + 30))
world_start
proxy_config
$PY - "$WORK/proxy.yaml" "$PROXY_LIMITS" <<'PYEOF'
import sys
p, port = sys.argv[1:3]
s = open(p).read()
s = s.replace("connections:\n", '  - {name: limits, protocol: smtp, bind: "127.0.0.1:%s", tls: none, '
              'trusted_networks: [127.0.0.1/32], command_timeout: 3s, data_timeout: 3s, session_timeout: 8s}\n'
              'connections:\n' % port, 1)
open(p, "w").write(s)
PYEOF
proxy_start
# within NAME LOW HIGH PATTERN RESULT-LINE
within() {
  local secs reply
  secs=$(awk '{print $2}' <<<"$5"); reply=$(cut -d' ' -f3- <<<"$5")
  if awk -v s="$secs" -v lo="$2" -v hi="$3" 'BEGIN{exit !(s >= lo && s <= hi)}' && [[ "$reply" =~ $4 ]]; then
    pass "$1: after ${secs}s: $reply"
  else
    fail "$1: expected $4 between $2 and $3 s, got: $5"
  fi
}
r=$(timeout 90 $SLOW trickle "$PROXY_LIMITS" | tail -1)
within "a byte a second is cut off at command_timeout (3s)" 2 6 'closed' "$r"
r=$(timeout 90 $SLOW stall-data "$PROXY_LIMITS" | tail -1)
within "a stall mid-message ends at data_timeout (3s)" 2 6 'closed|^421' "$r"
sleep 1
check "the stalled message was not delivered" bash -c "! grep -rqs 'STALLED-MESSAGE' '$MAIL_DIR'"
r=$(timeout 90 $SLOW session "$PROXY_LIMITS" | tail -1)
within "a busy session ends at session_timeout (8s)" 6 11 'closed|^421' "$r"
check "log: the sessions ended on a timeout" grep -q 'reason="client timeout' "$WORK/proxy.log"
finish
