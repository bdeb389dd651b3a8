# Sourced by e2e tests: a second, real Postfix instance playing the site's
# MTA, relaying through the proxy. site_mta_start RELAYHOST [MAIN_CF_EXTRA...]
# writes its config under $WORK/site, starts it on $SITE_PORT and stops it
# with the test's EXIT trap (site_mta_stop).
SITE=$WORK/site
SITE_PORT=$((PORT_BASE + 30))
MILTER_PORT=$((PORT_BASE + 31))

site_mta_start() {
  local relayhost=$1; shift
  mkdir -p "$SITE"/{etc,spool,data,log}
  chown postfix "$SITE/data"
  cat > "$SITE/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $SITE/spool
data_directory = $SITE/data
maillog_file = $SITE/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, $WORK
myhostname = mta.site.test
mydomain = site.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
relayhost = $relayhost
smtp_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
non_smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_default_action = tempfail
milter_protocol = 6
default_destination_concurrency_limit = 20
CF
  local line
  for line in "$@"; do echo "$line" >> "$SITE/etc/main.cf"; done
  cat > "$SITE/etc/master.cf" <<CF
127.0.0.1:$SITE_PORT inet n - n - - smtpd -o syslog_name=site/smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
  touch -d '-1 min' "$SITE/etc/main.cf" "$SITE/etc/master.cf"
  postfix -c "$SITE/etc" start </dev/null >>"$SITE/log/postfix.stderr" 2>&1
  wait_port "$SITE_PORT" 10 || { echo "site MTA did not start"; cat "$SITE/log/"*; exit 1; }
}

site_mta_stop() {
  [ -f "$SITE/spool/pid/master.pid" ] && postfix -c "$SITE/etc" stop >/dev/null 2>&1 || true
}

MILTER_PID=""
milter_start() {  # milter_start CONFIG
  "$BUILD/milter/xoauth2-milter" --config "$1" >>"$WORK/milter.log" 2>&1 &
  MILTER_PID=$!
  wait_port "$MILTER_PORT" 10 || { echo "milter did not start"; cat "$WORK/milter.log"; exit 1; }
}
milter_stop() {
  [ -n "$MILTER_PID" ] || return 0
  kill -TERM "$MILTER_PID" 2>/dev/null || true
  local end=$((SECONDS + 15))
  while kill -0 "$MILTER_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  kill -KILL "$MILTER_PID" 2>/dev/null || true
  wait "$MILTER_PID" 2>/dev/null || true
  MILTER_PID=""
}

# The EXIT trap of lib.sh calls these through extra_cleanup.
extra_cleanup() { milter_stop; site_mta_stop; }
