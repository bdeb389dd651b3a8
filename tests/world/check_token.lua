-- Dovecot Lua passdb for the test world. Dovecot's xoauth2/oauthbearer
-- mechanisms hand the bearer token to the passdb as the password, so this
-- sees user, token and service together and asks the test identity provider
-- (POST /_check on its plain-HTTP control port) whether this token may open
-- this mailbox -- as Exchange checks an app's mailbox permissions. The token
-- is never logged.
--
-- Results: IdP says ok -> PASSDB_RESULT_OK; IdP says no -> PASSWORD_MISMATCH
-- (the client then gets the {"status":"401",...} error challenge); IdP
-- unreachable or not 200 -> INTERNAL_FAILURE (IMAP "NO [UNAVAILABLE]",
-- POP3 "-ERR [SYS/TEMP]"; Postfix turns it into 535 5.7.8).
--
-- Dovecot counts a loopback connection as "secured" even without TLS, so it
-- would take a token in cleartext on the IMAP/POP3 STARTTLS ports. Real
-- providers never do: for imap/pop3 this passdb insists on TLS
-- (req.secured == "TLS"). Postfix only says "secured" (TLS) or "" (none):
-- for smtp a token is refused without TLS.
local http = require("socket.http")
local ltn12 = require("ltn12")

local CHECK_URL = "@CHECK_URL@"   -- filled in by tests/world/start

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function auth_password_verify(req, pass)
  local service = req.service or ""
  local secured = req.secured or ""
  if (service == "smtp" and secured == "") or (service ~= "smtp" and secured ~= "TLS") then
    req:log_warning("token refused: sent without TLS (secured='" .. secured .. "')")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "a bearer token needs TLS"
  end
  local body = "user=" .. urlencode(req.user) .. "&service=" .. urlencode(service) ..
               "&token=" .. urlencode(pass)
  local out = {}
  http.TIMEOUT = 5
  local ok, code = http.request{
    url = CHECK_URL, method = "POST",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Content-Length"] = tostring(#body) },
    source = ltn12.source.string(body), sink = ltn12.sink.table(out) }
  if not ok or code ~= 200 then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "identity provider unreachable"
  end
  local answer = table.concat(out)
  if answer:find('"ok": *true') then
    return dovecot.auth.PASSDB_RESULT_OK, ""
  end
  local reason = answer:match('"reason": *"([^"]*)"') or "refused"
  req:log_info("token refused by the identity provider: " .. reason)
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "token refused for this mailbox"
end

function auth_passdb_lookup(req)
  return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "tokens only"
end
