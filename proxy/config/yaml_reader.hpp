// Internal to the config loader: a YAML reader that turns every problem into a
// Diagnostic "FILE:LINE: key: message", with typed getters (strings, choices,
// numbers, durations, sizes, secrets, files) and the key tables of each
// section. Unknown keys are errors with a suggestion when one is close.
#pragma once
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "auth/password.hpp"
#include "config/config.hpp"

namespace xo::config::detail {

using Keys = std::vector<const char*>;
inline const Keys kTopKeys = {"listeners", "connections", "users", "senders", "admin", "tokens", "log", "milter"};
inline const Keys kMilterKeys = {"socket", "unmapped", "proxy_status", "proxy_unreachable", "align_from", "trace_header", "status_refresh"};
inline const Keys kListenerKeys = {"name", "protocol", "bind", "tls", "cert_file", "key_file", "allow_plaintext_auth",
                            "trusted_networks", "max_message_size", "max_sessions", "idle_timeout"};
inline const Keys kConnectionKeys = {"provider", "flow", "tenant", "client_id", "client_secret", "certificate",
                              "private_key", "assertion", "key_file", "authority", "token_url", "authorize_url",
                              "device_code_url", "scope", "smtp", "imap", "pop3", "ca_file", "sasl",
                              "refresh_window"};
inline const Keys kUpstreamKeys = {"host", "port", "tls"};
inline const Keys kUserKeys = {"login", "password_hash", "connection", "mailbox"};
inline const Keys kSenderKeys = {"sender", "connection", "mailbox"};
inline const Keys kAdminKeys = {"bind"};
inline const Keys kTokenKeys = {"max_attempts", "backoff", "http_timeout", "store"};
inline const Keys kLogKeys = {"level"};
inline const Keys kSecretKeys = {"file", "env"};

inline std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

class Loader {
public:
    Loader(std::string file, std::vector<Diagnostic>& diags) : file_(std::move(file)), diags_(diags) {
        dir_ = std::filesystem::path(file_).parent_path().string();
    }

    void error(const YAML::Node& n, const std::string& key, const std::string& msg) { add(n, key, msg, true); }
    void warn(const YAML::Node& n, const std::string& key, const std::string& msg) { add(n, key, msg, false); }
    static int line(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

    // Reports keys of `map` not in `allowed`; returns false when `map` is no mapping.
    bool keys(const YAML::Node& map, const std::string& path, const Keys& allowed) {
        if (!map.IsMap()) {
            error(map, path, "must be a mapping of keys");
            return false;
        }
        for (auto it = map.begin(); it != map.end(); ++it) {
            std::string k = it->first.as<std::string>("");
            if (std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) continue;
            std::string best;
            std::size_t best_d = 3;
            for (const char* a : allowed)
                if (auto d = edit_distance(k, a); d < best_d) best_d = d, best = a;
            error(it->first, join(path, k),
                  "unknown key '" + k + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
        }
        return true;
    }

    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }

    std::optional<std::string> str(const YAML::Node& map, const char* key, const std::string& path, bool required) {
        YAML::Node n = map[key];
        if (!n) {
            if (required) error(map, join(path, key), "missing (required)");
            return std::nullopt;
        }
        if (!n.IsScalar()) {
            error(n, join(path, key), "must be a single value");
            return std::nullopt;
        }
        return n.Scalar();
    }

    template <typename E>
    std::optional<E> choice(const YAML::Node& map, const char* key, const std::string& path,
                            const std::vector<std::pair<const char*, E>>& values) {
        auto s = str(map, key, path, false);
        if (!s) return std::nullopt;
        for (const auto& [name, v] : values)
            if (*s == name) return v;
        std::string allowed;
        for (const auto& [name, v] : values) allowed += (allowed.empty() ? "" : " | ") + std::string(name);
        error(map[key], join(path, key), "'" + *s + "' is not one of: " + allowed);
        return std::nullopt;
    }

    std::optional<long long> integer(const YAML::Node& map, const char* key, const std::string& path, long long lo,
                                     long long hi) {
        auto s = str(map, key, path, false);
        if (!s) return std::nullopt;
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(s->c_str(), &end, 10);
        if (s->empty() || *end || errno) {
            error(map[key], join(path, key), "'" + *s + "' is not a whole number");
            return std::nullopt;
        }
        if (v < lo || v > hi) {
            error(map[key], join(path, key), std::to_string(v) + " is out of range " + std::to_string(lo) + ".." +
                                                std::to_string(hi));
            return std::nullopt;
        }
        return v;
    }

    // "30", "30s", "500ms", "5m", "1h" -> milliseconds
    std::optional<long long> duration_ms(const YAML::Node& map, const char* key, const std::string& path,
                                         long long lo_ms, long long hi_ms) {
        auto s = str(map, key, path, false);
        if (!s) return std::nullopt;
        char* end = nullptr;
        long long v = std::strtoll(s->c_str(), &end, 10);
        std::string unit = end ? end : "";
        long long mult = unit == "" || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60000
                       : unit == "h" ? 3600000 : -1;
        if (s->empty() || end == s->c_str() || mult < 0 || v < 0) {
            error(map[key], join(path, key), "'" + *s + "' is not a duration (examples: 30, 30s, 500ms, 5m, 1h)");
            return std::nullopt;
        }
        long long ms = v * mult;
        if (ms < lo_ms || ms > hi_ms) {
            error(map[key], join(path, key), "'" + *s + "' is out of range " + std::to_string(lo_ms / 1000) + "s.." +
                                                std::to_string(hi_ms / 1000) + "s");
            return std::nullopt;
        }
        return ms;
    }

    // "52428800", "50M", "50MB", "10K" -> bytes
    std::optional<long long> size(const YAML::Node& map, const char* key, const std::string& path, long long lo,
                                  long long hi) {
        auto s = str(map, key, path, false);
        if (!s) return std::nullopt;
        char* end = nullptr;
        long long v = std::strtoll(s->c_str(), &end, 10);
        std::string unit = end ? end : "";
        long long mult = unit == "" ? 1 : (unit == "K" || unit == "KB") ? 1024
                       : (unit == "M" || unit == "MB") ? 1024 * 1024 : (unit == "G" || unit == "GB") ? 1024LL * 1024 * 1024 : -1;
        if (s->empty() || end == s->c_str() || mult < 0 || v < 0) {
            error(map[key], join(path, key), "'" + *s + "' is not a size (examples: 52428800, 50M, 50MB)");
            return std::nullopt;
        }
        if (v * mult < lo || v * mult > hi) {
            error(map[key], join(path, key), "'" + *s + "' is out of range " + std::to_string(lo) + ".." + std::to_string(hi) + " bytes");
            return std::nullopt;
        }
        return v * mult;
    }

    std::optional<bool> boolean(const YAML::Node& map, const char* key, const std::string& path) {
        auto s = str(map, key, path, false);
        if (!s) return std::nullopt;
        if (*s == "true" || *s == "yes") return true;
        if (*s == "false" || *s == "no") return false;
        error(map[key], join(path, key), "'" + *s + "' is not true or false");
        return std::nullopt;
    }

    std::string resolve(const std::string& p) const {
        if (p.empty() || p.front() == '/' || dir_.empty()) return p;
        return (std::filesystem::path(dir_) / p).string();
    }

    // A file the proxy must read; `secret`: refuse it when group or others may read it.
    std::optional<std::string> readable_file(const YAML::Node& n, const std::string& key, const std::string& raw,
                                             bool secret) {
        std::string path = resolve(raw);
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) {
            error(n, key, "cannot read " + path + ": " + std::strerror(errno));
            return std::nullopt;
        }
        if (!S_ISREG(st.st_mode)) {
            error(n, key, path + " is not a regular file");
            return std::nullopt;
        }
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            error(n, key, "cannot read " + path + ": " + std::strerror(errno));
            return std::nullopt;
        }
        if (secret && (st.st_mode & 077)) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
            error(n, key, path + " has mode " + mode + ": a secret must not be readable by group or others; chmod 600 " + path);
            return std::nullopt;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    Secret secret(const YAML::Node& map, const char* key, const std::string& path) {
        Secret s;
        YAML::Node n = map[key];
        std::string k = join(path, key);
        if (n.IsScalar()) {
            s.value = n.Scalar();
            s.origin = "literal";
            warn(n, k, "a literal secret in the configuration file; prefer {file: PATH} or {env: NAME}");
        } else if (n.IsMap() && keys(n, k, kSecretKeys)) {
            if (n["file"] && n["env"]) error(n, k, "give either 'file' or 'env', not both");
            else if (auto f = str(n, "file", k, false)) {
                if (auto content = readable_file(n["file"], k + ".file", *f, true)) {
                    s.value = *content;
                    while (!s.value.empty() && (s.value.back() == '\n' || s.value.back() == '\r')) s.value.pop_back();
                    s.origin = "file " + resolve(*f);
                    if (s.value.empty()) error(n["file"], k + ".file", resolve(*f) + " is empty");
                }
            } else if (auto e = str(n, "env", k, false)) {
                const char* v = std::getenv(e->c_str());
                if (!v || !*v) error(n["env"], k + ".env", "environment variable " + *e + " is not set or empty");
                else s.value = v, s.origin = "env " + *e;
            } else {
                error(n, k, "needs 'file: PATH' or 'env: NAME'");
            }
        } else if (n) {
            error(n, k, "must be {file: PATH}, {env: NAME} or a string");
        }
        return s;
    }

    std::optional<std::pair<std::string, uint16_t>> host_port(const YAML::Node& n, const std::string& key,
                                                              const std::string& text) {
        std::string host, port;
        if (!text.empty() && text.front() == '[') {
            auto close = text.find("]:");
            if (close != std::string::npos) host = text.substr(1, close - 1), port = text.substr(close + 2);
        } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
            host = text.substr(0, colon), port = text.substr(colon + 1);
        }
        char* end = nullptr;
        long p = port.empty() ? 0 : std::strtol(port.c_str(), &end, 10);
        if (host.empty() || port.empty() || *end || p < 1 || p > 65535) {
            error(n, key, "'" + text + "' is not HOST:PORT");
            return std::nullopt;
        }
        return std::make_pair(host, uint16_t(p));
    }

    void add(const YAML::Node& n, const std::string& key, const std::string& msg, bool is_error) {
        diags_.push_back(Diagnostic{file_, line(n), key, msg, is_error});
    }

    std::string file_, dir_;
    std::vector<Diagnostic>& diags_;
    std::set<std::string> declared_connections;   // even those with errors: no cascades
};

}  // namespace xo::config::detail
