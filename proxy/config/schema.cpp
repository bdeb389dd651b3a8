// The tables of schema.hpp: one entry per YAML key. Keep docs/configuration.md
// in step (a unit test compares the two).
#include "config/schema.hpp"

#include <charconv>
#include <stdexcept>

namespace xo::config::schema {

using T = Type;
constexpr long long kSec = 1000, kMin = 60 * kSec, kHour = 60 * kMin;

const Section kTop{"(top level)", {
    {.name = "listeners", .type = T::list, .required = true},
    {.name = "connections", .type = T::mapping, .required = true},
    {.name = "users", .type = T::list},
    {.name = "senders", .type = T::list},
    {.name = "admin", .type = T::mapping},
    {.name = "tokens", .type = T::mapping},
    {.name = "milter", .type = T::mapping},
    {.name = "log", .type = T::mapping},
    {.name = "daemon", .type = T::mapping},
}};

const Section kListener{"listeners[]", {
    {.name = "name", .type = T::string, .required = true},
    {.name = "protocol", .type = T::choice, .def = "smtp", .choices = "smtp|imap|pop3"},
    {.name = "bind", .type = T::host_port, .required = true},
    {.name = "tls", .type = T::choice, .def = "none", .choices = "none|starttls|implicit"},
    {.name = "cert_file", .type = T::path},
    {.name = "key_file", .type = T::path},
    {.name = "allow_plaintext_auth", .type = T::boolean, .def = "false"},
    {.name = "trusted_networks", .type = T::networks},
    {.name = "max_message_size", .type = T::size, .def = "52428800", .lo = 1024, .hi = 1LL << 31},
    {.name = "max_sessions", .type = T::integer, .def = "2000", .lo = 1, .hi = 100000},
    {.name = "max_sessions_per_client", .type = T::integer, .def = "50", .lo = 1, .hi = 100000},
    {.name = "bare_newline", .type = T::choice, .def = "reject", .choices = "reject|normalize"},
    {.name = "idle_timeout", .type = T::duration, .def = "300s", .lo = kSec, .hi = kHour},
    {.name = "command_timeout", .type = T::duration, .def = "300s", .lo = kSec, .hi = kHour},
    {.name = "data_timeout", .type = T::duration, .def = "180s", .lo = kSec, .hi = kHour},
    {.name = "session_timeout", .type = T::duration, .def = "3600s", .lo = kSec, .hi = 24 * kHour},
}};

const Section kConnection{"connections.NAME", {
    {.name = "provider", .type = T::choice, .required = true, .choices = "microsoft|google|generic"},
    // default per provider: microsoft, generic client_secret; google service_account
    {.name = "flow", .type = T::choice,
     .choices = "client_secret|certificate|service_account|authorization_code|device_code"},
    {.name = "tenant", .type = T::string},
    {.name = "client_id", .type = T::string},
    {.name = "client_secret", .type = T::secret},
    {.name = "certificate", .type = T::path},
    {.name = "private_key", .type = T::path},
    {.name = "assertion", .type = T::choice, .def = "rs256_x5t", .choices = "rs256_x5t|ps256_x5t_s256"},
    {.name = "key_file", .type = T::path},
    {.name = "authority", .type = T::string, .def = "https://login.microsoftonline.com"},
    {.name = "token_url", .type = T::string},         // derived per provider; required for generic
    {.name = "authorize_url", .type = T::string},     // derived per provider
    {.name = "device_code_url", .type = T::string},   // derived per provider
    {.name = "scope", .type = T::string},             // derived per provider and flow; required for generic
    {.name = "smtp", .type = T::upstream},            // derived per provider
    {.name = "imap", .type = T::upstream},
    {.name = "pop3", .type = T::upstream},
    {.name = "ca_file", .type = T::path},
    {.name = "sasl", .type = T::choice, .def = "xoauth2", .choices = "xoauth2|oauthbearer"},
    {.name = "refresh_window", .type = T::duration, .def = "300s", .lo = 0, .hi = 3000 * kSec},
    // default per provider: microsoft 3, google 10, generic 0 (no cap)
    {.name = "max_upstream_sessions", .type = T::integer, .lo = 0, .hi = 10000},
    // default per provider: microsoft 20, google 15, generic 0 (no cap)
    {.name = "max_imap_sessions", .type = T::integer, .lo = 0, .hi = 10000},
    {.name = "upstream_wait", .type = T::duration, .def = "60s", .lo = 0, .hi = 10 * kMin},
    {.name = "upstream_idle", .type = T::duration, .def = "30s", .lo = 0, .hi = 10 * kMin},
    {.name = "upstream_max_messages", .type = T::integer, .def = "100", .lo = 1, .hi = 100000},
    {.name = "secret_expires", .type = T::string},    // YYYY-MM-DD; client secret's expiry, for warnings
    {.name = "send_via", .type = T::choice, .def = "smtp", .choices = "smtp|graph|gmail_api|auto"},
    {.name = "graph_url", .type = T::string, .def = "https://graph.microsoft.com"},
    {.name = "gmail_api_url", .type = T::string, .def = "https://gmail.googleapis.com"},
}};

const Section kUpstream{"connections.NAME.smtp|imap|pop3", {
    {.name = "host", .type = T::string, .required = true},
    {.name = "port", .type = T::integer, .required = true, .lo = 1, .hi = 65535},
    {.name = "tls", .type = T::choice, .required = true, .choices = "starttls|implicit"},
}};

const Section kSecret{"connections.NAME.client_secret", {
    {.name = "file", .type = T::path},
    {.name = "env", .type = T::string},
}};

const Section kUser{"users[]", {
    {.name = "login", .type = T::string, .required = true},
    {.name = "password_hash", .type = T::string, .required = true},
    {.name = "connection", .type = T::string, .required = true},
    {.name = "mailbox", .type = T::string, .required = true},
}};

const Section kSender{"senders[]", {
    {.name = "sender", .type = T::string, .required = true},
    {.name = "connection", .type = T::string, .required = true},
    {.name = "mailbox", .type = T::string},            // default: the envelope sender itself
}};

const Section kAdmin{"admin", {
    {.name = "bind", .type = T::host_port, .required = true},
    {.name = "password_hash", .type = T::string},     // the web console's password; no console without it
}};

const Section kTokens{"tokens", {
    {.name = "max_attempts", .type = T::integer, .def = "3", .lo = 1, .hi = 10},
    {.name = "backoff", .type = T::duration, .def = "500ms", .lo = 0, .hi = 60 * kSec},
    {.name = "http_timeout", .type = T::duration, .def = "30s", .lo = kSec, .hi = 300 * kSec},
    // A file path, or redis://HOST:PORT/DB (rediss:// for TLS) shared by replicas.
    {.name = "store", .type = T::path, .def = "/var/lib/xoauth2-proxy/tokens.db"},
    {.name = "redis_password", .type = T::secret},     // AUTH for a Redis store: {file:} or {env:}
    {.name = "redis_ca_file", .type = T::path},        // rediss://: CA bundle (default: the system's)
    {.name = "redis_lock_timeout", .type = T::duration, .def = "45s", .lo = kSec, .hi = 600 * kSec},
}};

const Section kMilter{"milter", {
    {.name = "socket", .type = T::string, .def = "inet:8891@127.0.0.1"},
    {.name = "unmapped", .type = T::choice, .def = "reject", .choices = "reject|accept"},
    {.name = "proxy_status", .type = T::string},       // derived from admin.bind
    {.name = "proxy_unreachable", .type = T::choice, .def = "tempfail", .choices = "tempfail|accept"},
    {.name = "align_from", .type = T::boolean, .def = "false"},
    {.name = "trace_header", .type = T::boolean, .def = "true"},
    {.name = "status_refresh", .type = T::duration, .def = "5s", .lo = kSec, .hi = 300 * kSec},
}};

const Section kLog{"log", {
    {.name = "level", .type = T::choice, .def = "info", .choices = "trace|debug|info|warn|error"},
}};

// Read at start only (a reload keeps what the daemon started with).
const Section kDaemon{"daemon", {
    {.name = "io_threads", .type = T::integer, .def = "0", .lo = 0, .hi = 64},   // 0: from the CPU count
}};

const std::vector<const Section*>& all_sections() {
    static const std::vector<const Section*> all = {&kTop, &kListener, &kConnection, &kUpstream, &kSecret, &kUser,
                                                    &kSender, &kAdmin, &kTokens, &kMilter, &kLog, &kDaemon};
    return all;
}

std::vector<std::string> Key::choice_list() const {
    std::vector<std::string> out;
    std::string_view s = choices ? choices : "";
    while (!s.empty()) {
        auto bar = s.find('|');
        out.emplace_back(s.substr(0, bar));
        s = bar == std::string_view::npos ? std::string_view() : s.substr(bar + 1);
    }
    return out;
}

const Key* Section::find(std::string_view key) const {
    for (const auto& k : keys)
        if (key == k.name) return &k;
    return nullptr;
}

const Key& Section::operator[](std::string_view key) const {
    if (const Key* k = find(key)) return *k;
    throw std::logic_error("config schema: section " + std::string(name) + " declares no key " + std::string(key));
}

std::optional<long long> parse_integer(std::string_view s) {
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

namespace {
// "NUMBER[UNIT]" with a non-negative number below 10^12 and a unit from `units`.
std::optional<long long> with_unit(std::string_view s, std::initializer_list<std::pair<std::string_view, long long>> units) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    auto v = parse_integer(s.substr(0, digits));
    std::string_view unit = s.substr(digits);
    for (const auto& [name, mult] : units)
        if (unit == name) return *v * mult;
    return std::nullopt;
}
}  // namespace

std::optional<long long> parse_duration_ms(std::string_view s) {
    return with_unit(s, {{"", kSec}, {"s", kSec}, {"ms", 1}, {"m", kMin}, {"h", kHour}});
}

std::optional<long long> parse_size(std::string_view s) {
    constexpr long long K = 1024, M = K * K, G = M * K;
    return with_unit(s, {{"", 1}, {"K", K}, {"KB", K}, {"M", M}, {"MB", M}, {"G", G}, {"GB", G}});
}

std::optional<bool> parse_bool(std::string_view s) {
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
    return std::nullopt;
}

std::string format_duration_ms(long long ms) {
    return ms % kSec == 0 ? std::to_string(ms / kSec) + "s" : std::to_string(ms) + "ms";
}

}  // namespace xo::config::schema
