// The configuration schema: every YAML key, declared once, with its type,
// default and limits (Postfix's parameter tables). The loader reads values only
// through these entries, an unknown key is one not listed here, and unit tests
// check that each default parses within its limits and that
// docs/configuration.md describes every key. Lookups of undeclared names throw
// std::logic_error (a programming error, caught by the tests).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xo::config::schema {

enum class Type {
    string, boolean, integer, duration, size, choice, host_port, path, secret, upstream, networks, list, mapping
};

struct Key {
    const char* name;
    Type type;
    const char* def = nullptr;      // the default as written in YAML; nullptr: none, or derived (see docs)
    bool required = false;          // always required; flow-dependent requirements live in the loader
    long long lo = 0, hi = 0;       // integer: the value; duration: milliseconds; size: bytes
    const char* choices = nullptr;  // "smtp|imap|pop3": the enum's values in declaration order
    std::vector<std::string> choice_list() const;
};

struct Section {
    const char* name;               // as in the docs: "listeners[]", "connections.NAME", "tokens"
    std::vector<Key> keys;
    const Key* find(std::string_view key) const;
    const Key& operator[](std::string_view key) const;   // throws std::logic_error when not declared
};

extern const Section kTop, kListener, kConnection, kUpstream, kSecret, kUser, kSender, kAdmin, kTokens, kMilter,
    kLog, kDaemon;
const std::vector<const Section*>& all_sections();

// Value syntax shared by the loader and the defaults above; nullopt when malformed.
std::optional<long long> parse_integer(std::string_view s);
std::optional<long long> parse_duration_ms(std::string_view s);   // "30" (seconds), "30s", "500ms", "5m", "1h"
std::optional<long long> parse_size(std::string_view s);          // "52428800", "10K", "50M", "50MB", "1G"
std::optional<bool> parse_bool(std::string_view s);               // true|false|yes|no
std::string format_duration_ms(long long ms);                      // 500 -> "500ms", 300000 -> "300s"

}  // namespace xo::config::schema
