#!/bin/bash
# A client in lockstep (MAIL, RCPT and DATA each waiting for its reply, as
# smtplib, swaks and most printers send) through the proxy to an upstream that
# offers CHUNKING: the test world's Exchange front (tests/world/exchange_front.py)
# before Postfix, one upstream session for the mailbox, so that every
# transaction below runs on the same one.
#  a) the proxy answers DATA 354 itself and the message goes up as one
#     BDAT ... LAST (no round trip for the upstream's 354): the front sees BDAT,
#     no DATA; delivered byte-identical (dot-stuffed lines, a line of two dots)
#  b) the front refuses a BDAT (554, a test marker in the message): the client
#     gets the 554 at the end of its message, and its next message on the same
#     upstream session relays (the proxy's RSET after BDAT ... LAST)
#  c) a message over 256 KiB goes up after DATA (the proxy holds no more):
#     delivered byte-identical
#  d) the front refuses that DATA (451): the client, which had its 354 from the
#     proxy, gets the 451 at the end of its message; nothing is delivered; the
#     next message relays
#  e) a pipelining client (swaks --pipeline): DATA, as before
source "$(dirname "$0")/lib.sh"
world_start
PW='erp-pass word"1'
FRONT=$((PORT_BASE + 90))
front_start "$FRONT" "$WORK/front.log" --limit 3 --refuse-data-to refuse-data@contoso.test \
  --refuse-marker X-Front-Refuse || fail "the front did not start"

proxy_config "$WORK/proxy.yaml"
# ms-secret (login erp -> erp@contoso.test) goes to the front, one upstream session at most
$PY - "$WORK/proxy.yaml" "$FRONT" "$SMTP_STARTTLS_PORT" <<'PYEOF'
import sys
path, front, sub = sys.argv[1:4]
s = open(path).read()
head, rest = s.split("  ms-secret:\n", 1)
block, tail = rest.split("  ms-cert:\n", 1)
old = "smtp: {host: localhost, port: %s, tls: starttls}" % sub
assert old in block
block = block.replace(old, "smtp: {host: localhost, port: %s, tls: starttls}" % front) + "    max_upstream_sessions: 1\n"
open(path, "w").write(head + "  ms-secret:\n" + block + "  ms-cert:\n" + tail)
PYEOF
proxy_start "$WORK/proxy.yaml"

# One client session, five messages in lockstep (smtplib: each command waits for its reply).
# Each message is written to $WORK/TAG.eml as sent; one line per message: RESULT TAG CODE TEXT.
XO_PASSWORD=$PW timeout 120 $PY - "$PROXY_SMTP" "$WORK" >"$WORK/lockstep.out" 2>&1 <<'PYEOF' || true
import email.utils, os, smtplib, sys
port, work = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, timeout=60)
s.ehlo("bdat.test")
s.login("erp", os.environ["XO_PASSWORD"])

def send(tag, to, body, header=""):
    text = "From: erp@contoso.test\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n%s\r\n%s" % (
        to, tag, email.utils.formatdate(), email.utils.make_msgid(domain="contoso.test"), header, body)
    open(os.path.join(work, tag + ".eml"), "wb").write(text.encode())
    try:
        s.sendmail("erp@contoso.test", [to], text.encode())
        print("RESULT", tag, 250, "ok", flush=True)
    except smtplib.SMTPResponseException as e:
        print("RESULT", tag, e.smtp_code, e.smtp_error.decode(errors="replace"), flush=True)
    except smtplib.SMTPRecipientsRefused as e:
        print("RESULT", tag, "rcpt", repr(e.recipients), flush=True)

dots = "first line\r\n.a line that starts with a dot\r\n..\r\n. \r\nlast line\r\n"
big = "".join("%06d %s\r\n" % (i, "b" * 70) for i in range(4000))   # about 300 KB
send("bdat-a", "bdat@contoso.test", dots)
send("bdat-b-refused", "bdat@contoso.test", "refused by the front\r\n", "X-Front-Refuse: yes\r\n")
send("bdat-b-next", "bdat@contoso.test", "after the refusal\r\n")
send("bdat-c-big", "bdat@contoso.test", big)
send("bdat-d-refused", "refuse-data@contoso.test", big)
send("bdat-d-next", "bdat@contoso.test", "after the refused DATA\r\n")
s.quit()
PYEOF
sed 's/^/  /' "$WORK/lockstep.out"
result() { grep -q "^RESULT $1 $2 " "$WORK/lockstep.out"; }
messages() { grep -c " MESSAGE erp@contoso.test $1\$" "$WORK/front.log" || true; }

check "a: 250 for the message in lockstep" result bdat-a 250
f=$(maildir_find bdat@contoso.test "Subject: bdat-a") || f=/nonexistent
check "a: delivered byte-identical (dot-stuffed lines, a line of two dots)" $PY "$SRC/tests/clients/compare_delivered.py" "$WORK/bdat-a.eml" "$f"
check "b: the refused BDAT's 554 is the client's reply at the end of its message" \
  grep -q '^RESULT bdat-b-refused 554 5.6.0 Message refused by the front' "$WORK/lockstep.out"
check "b: the next message on the same upstream session relays (RSET after BDAT)" result bdat-b-next 250
check "b: the refused message was not delivered" bash -c "! grep -rqF 'Subject: bdat-b-refused' '$MAIL_DIR/contoso.test/bdat/Maildir/new'"
check "c: 250 for a 300 KB message in lockstep" result bdat-c-big 250
f=$(maildir_find bdat@contoso.test "Subject: bdat-c-big") || f=/nonexistent
check "c: delivered byte-identical" $PY "$SRC/tests/clients/compare_delivered.py" "$WORK/bdat-c-big.eml" "$f"
check "d: the refused DATA's 451 is the client's reply at the end of its message" \
  grep -q '^RESULT bdat-d-refused 451 4.7.500 Server busy' "$WORK/lockstep.out"
check "d: nothing delivered for it" bash -c "! test -d '$MAIL_DIR/contoso.test/refuse-data/Maildir/new' || ! grep -rqF 'Subject: bdat-d-refused' '$MAIL_DIR/contoso.test/refuse-data/Maildir/new'"
check "d: the next message relays" result bdat-d-next 250
check "a-d: the front saw 3 messages as BDAT, 1 refused BDAT, 1 DATA, 1 refused DATA ($(messages BDAT) / $(messages 'BDAT REFUSED') / $(messages DATA) / $(messages 'DATA REFUSED'))" \
  test "$(messages BDAT)" -eq 3 -a "$(messages 'BDAT REFUSED')" -eq 1 -a "$(messages DATA)" -eq 1 -a "$(messages 'DATA REFUSED')" -eq 1
check "a-d: one upstream session for all of it (front: $(grep -c ' OPEN erp@contoso.test' "$WORK/front.log" || true) authenticated)" \
  test "$(grep -c ' OPEN erp@contoso.test' "$WORK/front.log" || true)" -eq 1
check "log: the refused DATA is named, with its reply" \
  grep -q 'upstream refused DATA (the client had its 354; its message was read and dropped): 451 4.7.500' "$WORK/proxy.log"

echo "== e) a pipelining client"
swaks --server 127.0.0.1 --port "$PROXY_SMTP" --pipeline --auth PLAIN --auth-user erp --auth-password "$PW" \
  --auth-hide-password --from erp@contoso.test --to bdat@contoso.test --header "Subject: bdat-e-pipelined" \
  --timeout 60 >"$WORK/pipelined.out" 2>&1 || true
check "e: relayed" grep -qE '^<[-~]  250 2.0.0 Ok' "$WORK/pipelined.out"
check "e: delivered" maildir_find bdat@contoso.test "Subject: bdat-e-pipelined"
check "e: it went up after DATA, as the client sent it ($(messages DATA) DATA in all)" test "$(messages DATA)" -eq 2
finish
