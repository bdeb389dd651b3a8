// The configuration model's small helpers: enum names, networks, lookups.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config/config.hpp"

namespace xo::config {

const char* to_string(Protocol p) {
    switch (p) {
        case Protocol::smtp: return "smtp";
        case Protocol::imap: return "imap";
        case Protocol::pop3: return "pop3";
    }
    return "?";
}
const char* to_string(Provider p) {
    switch (p) {
        case Provider::microsoft: return "microsoft";
        case Provider::google: return "google";
        case Provider::generic: return "generic";
    }
    return "?";
}
const char* to_string(Flow f) {
    switch (f) {
        case Flow::client_secret: return "client_secret";
        case Flow::certificate: return "certificate";
        case Flow::service_account: return "service_account";
        case Flow::authorization_code: return "authorization_code";
        case Flow::device_code: return "device_code";
    }
    return "?";
}

const char* to_string(SendVia v) {
    switch (v) {
        case SendVia::smtp: return "smtp";
        case SendVia::graph: return "graph";
        case SendVia::gmail_api: return "gmail_api";
        case SendVia::auto_: return "auto";
    }
    return "?";
}

std::string Connection::api_token_source() const { return api_scope == scope ? name : name + "#api"; }

namespace {
bool parse_ip(const std::string& s, bool& v6, unsigned char* out) {
    if (inet_pton(AF_INET, s.c_str(), out) == 1) {
        v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), out) == 1) {
        v6 = true;
        return true;
    }
    return false;
}
std::string lower(std::string s) {
    for (auto& c : s) c = char(std::tolower((unsigned char)c));
    return s;
}
}  // namespace

std::optional<Network> parse_network(const std::string& text) {
    Network n;
    n.text = text;
    auto slash = text.find('/');
    std::string addr = text.substr(0, slash);
    if (!parse_ip(addr, n.v6, n.addr)) return std::nullopt;
    unsigned max = n.v6 ? 128 : 32;
    n.prefix = max;
    if (slash != std::string::npos) {
        std::string p = text.substr(slash + 1);
        if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit)) return std::nullopt;
        n.prefix = unsigned(std::stoul(p));
        if (n.prefix > max) return std::nullopt;
    }
    return n;
}

bool Network::contains(const std::string& ip) const {
    unsigned char a[16] = {};
    bool is_v6 = false;
    if (!parse_ip(ip, is_v6, a)) return false;
    if (is_v6 && !v6 && std::memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {   // v4-mapped
        std::memmove(a, a + 12, 4);
        is_v6 = false;
    }
    if (is_v6 != v6) return false;
    unsigned full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(a, addr, full) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (a[full] & mask) == (addr[full] & mask);
}

bool Connection::token_per_mailbox() const {
    return flow == Flow::service_account || flow == Flow::authorization_code || flow == Flow::device_code;
}

namespace {
// Fields joined with a separator no field holds (NUL), then hashed: the
// secrets in it are never kept or shown in clear.
std::string digest(std::initializer_list<std::string_view> fields) {
    std::string joined;
    for (auto f : fields) {
        joined.append(f);
        joined.push_back('\0');
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(joined.data(), joined.size(), md, &n, EVP_sha256(), nullptr);
    OPENSSL_cleanse(joined.data(), joined.size());
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 15]);
    }
    return out;
}
}  // namespace

std::string Connection::token_identity() const {
    return digest({name, to_string(provider), to_string(flow), tenant, client_id, client_secret.value,
                   certificate_file, private_key_file, std::to_string(int(assertion)), key_file,
                   service_account.client_email, service_account.private_key_id, service_account.private_key_pem,
                   service_account.token_uri, authority, token_url, authorize_url, device_code_url, scope, api_scope,
                   ca_file});
}

std::string Connection::smtp_identity() const {
    return digest({token_identity(), std::to_string(int(send_via)), smtp.host, std::to_string(smtp.port), std::to_string(int(smtp.tls)),
                   std::to_string(int(sasl)), std::to_string(max_upstream_sessions),
                   std::to_string(upstream_wait.count()), std::to_string(upstream_idle.count()),
                   std::to_string(upstream_max_messages)});
}

std::string Connection::imap_identity() const {
    return digest({token_identity(), imap.host, std::to_string(imap.port), std::to_string(int(imap.tls)),
                   std::to_string(max_imap_sessions), std::to_string(upstream_wait.count())});
}

const User* Config::find_user(const std::string& login) const {
    for (const auto& u : users)
        if (u.login == login) return &u;
    return nullptr;
}

const Sender* Config::find_sender(const std::string& address) const {
    std::string a = lower(address);
    for (const auto& s : senders)
        if (lower(s.pattern) == a) return &s;
    auto at = a.rfind('@');
    if (at == std::string::npos) return nullptr;
    std::string wildcard = "*";   // appended, not "*" + s: GCC 12 -O3 -Wrestrict (bug 105329)
    wildcard += std::string_view(a).substr(at);
    for (const auto& s : senders)
        if (lower(s.pattern) == wildcard) return &s;
    return nullptr;
}

unsigned Config::io_threads_for(unsigned cores) const {
    if (io_threads > 0) return unsigned(io_threads);
    return std::clamp(cores > 1 ? cores - 1 : 1u, 1u, 4u);
}

const Connection* Config::find_connection(const std::string& name) const {
    auto it = connections.find(name);
    return it == connections.end() ? nullptr : &it->second;
}

bool is_address(const std::string& s) {
    auto at = s.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 >= s.size() || s.size() > 254) return false;
    if (s.find_first_of(" \t\r\n<>(),;:\"[]\\") != std::string::npos) return false;
    std::string domain = s.substr(at + 1);
    if (domain.find('.') == std::string::npos || domain.front() == '.' || domain.back() == '.') return false;
    return s.find('@') == at;
}

std::string Diagnostic::text() const {
    return file + ":" + std::to_string(line) + ": " + (key.empty() ? "" : key + ": ") + message +
           (error ? "" : " (warning)");
}

bool LoadResult::ok() const {
    return std::none_of(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& d) { return d.error; });
}

bool is_redis_url(const std::string& s) {
    return s.rfind("redis://", 0) == 0 || s.rfind("rediss://", 0) == 0;
}

std::string RedisUrl::display() const {
    bool v6 = host.find(':') != std::string::npos;
    return std::string(tls ? "rediss://" : "redis://") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) +
           "/" + std::to_string(db);
}

std::optional<RedisUrl> parse_redis_url(const std::string& s, std::string& why) {
    RedisUrl u;
    std::string rest;
    if (s.rfind("rediss://", 0) == 0) u.tls = true, rest = s.substr(9);
    else if (s.rfind("redis://", 0) == 0) rest = s.substr(8);
    else { why = "not a redis:// or rediss:// URL"; return std::nullopt; }
    std::string path;
    if (auto slash = rest.find('/'); slash != std::string::npos) path = rest.substr(slash + 1), rest.resize(slash);
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        std::string cred = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = cred.find(':');
        u.password = colon == std::string::npos ? cred : cred.substr(colon + 1);
    }
    std::string port;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) { why = "unclosed [ in the host"; return std::nullopt; }
        u.host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') { why = "expected :PORT after ]"; return std::nullopt; }
            port = rest.substr(close + 2);
        }
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        u.host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    } else {
        u.host = rest;
    }
    if (u.host.empty()) { why = "no host in " + std::string(u.tls ? "rediss" : "redis") + ":// URL"; return std::nullopt; }
    auto number = [](const std::string& t, long long hi) -> std::optional<long long> {
        if (t.empty() || t.size() > 6 || !std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); }))
            return std::nullopt;
        long long v = std::stoll(t);
        if (v > hi) return std::nullopt;
        return v;
    };
    if (!port.empty()) {
        auto p = number(port, 65535);
        if (!p || *p == 0) { why = "bad port '" + port + "' (1-65535)"; return std::nullopt; }
        u.port = uint16_t(*p);
    }
    if (!path.empty()) {
        auto d = number(path, 1000);
        if (!d) { why = "bad database number '" + path + "' (0-1000)"; return std::nullopt; }
        u.db = int(*d);
    }
    return u;
}

}  // namespace xo::config
