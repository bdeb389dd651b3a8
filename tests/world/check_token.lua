-- Dovecot Lua passdb for the test world: Dovecot's xoauth2/oauthbearer
-- mechanisms hand the bearer token to the passdb as the password, so this
-- sees user, token and service together and asks the test identity provider
-- whether this token may open this mailbox (as Exchange checks an app's
-- mailbox permissions). The token is never logged.
local http = require("socket.http")
local ltn12 = require("ltn12")

local CHECK_URL = "@CHECK_URL@"   -- filled in by tests/world/start

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function auth_password_verify(req, pass)
  local body = "user=" .. urlencode(req.user) .. "&service=" .. urlencode(req.service or "") ..
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
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "token refused for this mailbox"
end

function auth_passdb_lookup(req)
  return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "tokens only"
end
