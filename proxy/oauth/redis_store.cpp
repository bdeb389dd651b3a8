#include "oauth/redis_store.hpp"

#include <openssl/rand.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "util/base64.hpp"
#include "util/text.hpp"

namespace xo::oauth {
namespace {

const char kUnlock[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
// Fencing: the grant is written only if it is still at the version read under
// the lock; the lock is released only by its owner.
const char kCommit[] = R"(
local v = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
local fenced = v ~= tonumber(ARGV[1])
if not fenced then
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'data', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'ver', 1)
  end
  if ARGV[3] ~= '' and tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
end
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
if fenced then return -1 end
return 1)";
// A new authorization: the grant moves on, and the old identity's access token goes.
const char kPut[] = "redis.call('HSET', KEYS[1], 'data', ARGV[1]) redis.call('DEL', KEYS[2]) "
                    "return redis.call('HINCRBY', KEYS[1], 'ver', 1)";

std::string name(const char* kind, const std::string& connection, const std::string& mailbox) {
    return std::string("xoauth2:") + kind + ":" + connection + ":" + mailbox;
}

long long unix_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string random_id() {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) throw StoreError("RAND_bytes failed");
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (unsigned char c : b) s += hex[c >> 4], s += hex[c & 15];
    return s;
}

std::string redis_error(const RedisResult& r) {
    if (!r.ok) return r.error;
    if (r.reply.kind == RedisReply::Kind::error) return "Redis refused: " + util::truncate_utf8(r.reply.str, 160);
    return "";
}

}  // namespace

RedisTokenStore::RedisTokenStore(const config::TokenSettings& s) : lock_timeout_(s.redis_lock_timeout) {
    std::string why;
    auto url = config::parse_redis_url(s.store, why);
    if (!url) throw StoreError("tokens.store: " + why);
    key_ = load_store_key("");
    RedisOptions o;
    o.url = *url;
    o.password = s.redis_password.value;
    o.ca_file = s.redis_ca_file;
    try {
        client_ = std::make_unique<RedisClient>(std::move(o));
    } catch (const std::exception& e) {
        throw StoreError(std::string("token store ") + url->display() + ": " + e.what());
    }
}

std::string RedisTokenStore::seal_b64(const std::string& key_name, const std::string& plain) const {
    return util::base64_encode(seal(key_, key_name, plain));
}

std::optional<std::string> RedisTokenStore::unseal_b64(const std::string& key_name, const std::string& b64) const {
    auto raw = util::base64_decode(b64);
    if (!raw) return std::nullopt;
    return unseal(key_, key_name, *raw);
}

std::string RedisTokenStore::encode_grant(const std::string& key_name, const StoredGrant& g) const {
    nlohmann::json j = {{"refresh_token", g.refresh_token}, {"scope", g.scope}, {"obtained", g.obtained}, {"updated", g.updated}};
    std::string plain = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string out = seal_b64(key_name, plain);
    OPENSSL_cleanse(plain.data(), plain.size());
    return out;
}

std::optional<StoredGrant> RedisTokenStore::decode_grant(const std::string& key_name, const std::string& data) const {
    auto plain = unseal_b64(key_name, data);
    if (!plain) return std::nullopt;
    auto j = nlohmann::json::parse(*plain, nullptr, false);
    OPENSSL_cleanse(plain->data(), plain->size());
    if (!j.is_object()) return std::nullopt;
    StoredGrant g;
    g.refresh_token = j.value("refresh_token", "");
    g.scope = j.value("scope", "");
    g.obtained = j.value("obtained", 0LL);
    g.updated = j.value("updated", 0LL);
    return g;
}

RedisResult RedisTokenStore::run_sync(std::vector<std::string> argv) {
    RedisResult r = client_->command(std::move(argv));
    if (std::string e = redis_error(r); !e.empty()) throw StoreError("token store " + describe() + ": " + e);
    return r;
}

std::optional<StoredGrant> RedisTokenStore::get(const std::string& connection, const std::string& mailbox) {
    std::string k = name("grant", connection, mailbox);
    RedisResult r = run_sync({"HGET", k, "data"});
    if (r.reply.kind != RedisReply::Kind::string) return std::nullopt;
    auto g = decode_grant(k, r.reply.str);
    if (!g) throw StoreError("token store " + describe() + ": " + k + " cannot be decrypted: written with another key?");
    return g;
}

void RedisTokenStore::put(const std::string& connection, const std::string& mailbox, const StoredGrant& grant) {
    if (!util::valid_utf8(connection) || !util::valid_utf8(mailbox))
        throw StoreError("mailbox is not valid UTF-8: not stored");
    std::string k = name("grant", connection, mailbox);
    run_sync({"EVAL", kPut, "2", k, name("access", connection, mailbox), encode_grant(k, grant)});
}

std::map<std::string, StoredGrant> RedisTokenStore::all() {
    std::map<std::string, StoredGrant> out;
    const std::string prefix = "xoauth2:grant:";
    std::string cursor = "0";
    for (int rounds = 0; rounds < 100000; ++rounds) {
        RedisResult r = run_sync({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
        if (r.reply.kind != RedisReply::Kind::array || r.reply.elements.size() != 2) break;
        cursor = r.reply.elements[0].str;
        for (const auto& e : r.reply.elements[1].elements) {
            std::string rest = e.str.substr(prefix.size());
            auto colon = rest.find(':');
            if (colon == std::string::npos) continue;
            RedisResult d = run_sync({"HGET", e.str, "data"});
            if (d.reply.kind != RedisReply::Kind::string) continue;
            auto g = decode_grant(e.str, d.reply.str);
            if (!g) throw StoreError("token store " + describe() + ": " + e.str + " cannot be decrypted: written with another key?");
            out[rest.substr(0, colon) + "\n" + rest.substr(colon + 1)] = *g;
        }
        if (cursor == "0") break;
    }
    return out;
}

awaitable<RedisResult> RedisTokenStore::run(std::vector<std::string> argv) {
    auto op = client_->async_command(std::move(argv), use_awaitable);
    RedisResult r = co_await std::move(op);
    co_return r;
}

awaitable<RedisTokenStore::Access> RedisTokenStore::get_access(std::string connection, std::string mailbox,
                                                               std::chrono::seconds fresh_for) {
    Access out;
    std::string k = name("access", connection, mailbox);
    auto op = run({"GET", k});
    RedisResult r = co_await std::move(op);
    out.error = redis_error(r);
    if (!out.error.empty() || r.reply.kind != RedisReply::Kind::string) co_return out;
    auto plain = unseal_b64(k, r.reply.str);
    if (!plain) co_return out;   // another key wrote it: refresh and overwrite
    auto j = nlohmann::json::parse(*plain, nullptr, false);
    OPENSSL_cleanse(plain->data(), plain->size());
    if (!j.is_object()) co_return out;
    auto now_wall = std::chrono::system_clock::now();
    auto exp = std::chrono::system_clock::time_point(std::chrono::milliseconds(j.value("exp", 0LL)));
    if (exp - now_wall <= fresh_for) co_return out;
    Token t;
    t.access_token = j.value("access_token", "");
    t.scope = j.value("scope", "");
    t.expires_wall = exp;
    t.expires_at = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(exp - now_wall);
    t.obtained = std::chrono::system_clock::time_point(std::chrono::milliseconds(j.value("obtained", 0LL)));
    out.token = std::move(t);
    co_return out;
}

awaitable<RedisTokenStore::Lock> RedisTokenStore::try_lock(std::string connection, std::string mailbox) {
    Lock out;
    out.owner = random_id();
    auto op = run({"SET", name("lock", connection, mailbox), out.owner, "NX", "PX", std::to_string(lock_timeout_.count())});
    RedisResult r = co_await std::move(op);
    out.error = redis_error(r);
    out.acquired = out.error.empty() && r.reply.kind == RedisReply::Kind::status;
    co_return out;
}

awaitable<RedisTokenStore::Grant> RedisTokenStore::get_grant(std::string connection, std::string mailbox) {
    Grant out;
    std::string k = name("grant", connection, mailbox);
    auto op = run({"HMGET", k, "ver", "data"});
    RedisResult r = co_await std::move(op);
    out.error = redis_error(r);
    if (!out.error.empty()) co_return out;
    if (r.reply.kind != RedisReply::Kind::array || r.reply.elements.size() != 2) {
        out.error = "unexpected answer to HMGET";
        co_return out;
    }
    const auto& ver = r.reply.elements[0];
    const auto& data = r.reply.elements[1];
    if (data.kind != RedisReply::Kind::string) co_return out;
    out.version = ver.kind == RedisReply::Kind::string ? std::atoll(ver.str.c_str()) : 0;
    out.grant = decode_grant(k, data.str);
    if (!out.grant) out.error = k + " cannot be decrypted: written with another XOAUTH2_PROXY_STORE_KEY?";
    co_return out;
}

awaitable<RedisTokenStore::Commit> RedisTokenStore::commit(std::string connection, std::string mailbox, std::string owner,
                                                           long long version, std::optional<StoredGrant> grant,
                                                           std::optional<Token> access) {
    Commit out;
    std::string gk = name("grant", connection, mailbox), ak = name("access", connection, mailbox);
    std::string data = grant ? encode_grant(gk, *grant) : "";
    std::string sealed_access;
    long long px = 0;
    if (access) {
        px = unix_ms(access->expires_wall) - unix_ms(std::chrono::system_clock::now());
        nlohmann::json j = {{"access_token", access->access_token}, {"scope", access->scope},
                            {"exp", unix_ms(access->expires_wall)}, {"obtained", unix_ms(access->obtained)}};
        std::string plain = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (px > 0) sealed_access = seal_b64(ak, plain);
        OPENSSL_cleanse(plain.data(), plain.size());
    }
    auto op = run({"EVAL", kCommit, "3", gk, ak, name("lock", connection, mailbox), std::to_string(version), data,
                   sealed_access, std::to_string(std::max(px, 0LL)), owner});
    RedisResult r = co_await std::move(op);
    out.error = redis_error(r);
    if (out.error.empty()) out.result = int(r.reply.integer);
    co_return out;
}

awaitable<void> RedisTokenStore::unlock(std::string connection, std::string mailbox, std::string owner) {
    auto op = run({"EVAL", kUnlock, "1", name("lock", connection, mailbox), owner});
    co_await std::move(op);   // a lock left behind expires by itself (PX)
}

std::shared_ptr<TokenStore> make_token_store(const config::TokenSettings& s) {
    if (config::is_redis_url(s.store)) return std::make_shared<RedisTokenStore>(s);
    return std::make_shared<FileTokenStore>(s.store);
}

}  // namespace xo::oauth
