#!/bin/bash
# docs/postfix.md's SASL recipe: the site's Postfix relays through the proxy's
# AUTH listener with per-sender credentials (smtp_sender_dependent_authentication
# and sender_dependent_relayhost_maps); each sender's mail leaves as the
# mailbox of its own local login.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_site_mta.sh"
world_start
proxy_config
cat >> "$WORK/proxy.yaml" <<YAML
milter: {socket: "inet:$MILTER_PORT@127.0.0.1", unmapped: accept, proxy_unreachable: accept}
YAML
proxy_start
milter_start "$WORK/proxy.yaml"
mkdir -p "$WORK/site/etc"
cat > "$WORK/site/etc/sasl_passwd" <<MAP
erp@contoso.test        erp:erp-pass word"1
scanner@contoso.test    scanner:scanner-pass
MAP
chmod 600 "$WORK/site/etc/sasl_passwd"
cat > "$WORK/site/etc/sender_relay" <<MAP
erp@contoso.test        [127.0.0.1]:$PROXY_SMTP
scanner@contoso.test    [127.0.0.1]:$PROXY_SMTP
MAP
site_mta_start "[127.0.0.1]:$PROXY_TRUSTED" \
  "smtp_sasl_auth_enable = yes" \
  "smtp_sasl_password_maps = texthash:$WORK/site/etc/sasl_passwd" \
  "smtp_sasl_security_options = noanonymous" \
  "smtp_sender_dependent_authentication = yes" \
  "sender_dependent_relayhost_maps = texthash:$WORK/site/etc/sender_relay"

for who in erp scanner; do
  $PY "$SRC/tests/clients/make_message.py" "$WORK/$who.eml" "$who@contoso.test" alice@contoso.test "sasl-$who-$RANDOM"
  $PY "$SRC/tests/clients/smtp_send.py" 127.0.0.1 "$SITE_PORT" - - "$who@contoso.test" alice@contoso.test "$WORK/$who.eml" \
    >"$WORK/$who.out" 2>&1 || true
  check "site MTA accepted mail from $who@contoso.test" grep -q '^RESULT 250' "$WORK/$who.out"
  check "$who's message arrived" maildir_find alice@contoso.test "Subject: sasl-$who-"
  check "proxy: login $who authenticated, relayed as $who@contoso.test" \
    wait_grep "end client=127.0.0.1:[0-9]* login=$who connection=ms-[a-z]* mailbox=$who@contoso.test .*messages=1" "$WORK/proxy.log"
done
check "site Postfix relayed through the proxy's AUTH listener" wait_grep "relay=127.0.0.1\[127.0.0.1\]:$PROXY_SMTP.*status=sent" "$SITE/log/postfix.log"
finish
