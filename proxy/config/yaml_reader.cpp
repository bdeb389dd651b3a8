// The config loader's YAML reader: typed getters driven by the schema, file and
// secret checks, and the diagnostics they produce.
#include "config/yaml_reader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace xo::config::detail {

std::size_t edit_distance(const std::string& a, const std::string& b) {
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

namespace {
const char* kind(const YAML::Node& n) {
    return n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : n.IsNull() ? "empty" : "a single value";
}
}  // namespace

Loader::Loader(std::string file, std::vector<Diagnostic>& diags) : file_(std::move(file)), diags_(diags) {
    dir_ = std::filesystem::path(file_).parent_path().string();
}

int Loader::line(const YAML::Node& n) const {
    for (const auto& [map, l] : anchors_)
        if (map.is(n)) return l;
    return n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
}

void Loader::anchor(const YAML::Node& map, const YAML::Node& key_node) {
    anchors_.emplace_back(map, line(key_node));
}

void Loader::add(const YAML::Node& n, const std::string& key, const std::string& msg, bool is_error) {
    diags_.push_back(Diagnostic{file_, line(n), key, msg, is_error});
}

std::string Loader::join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

bool Loader::keys(const YAML::Node& map, const std::string& path, const schema::Section& section) {
    if (!map.IsMap()) {
        error(map, path, std::string("must be a mapping of keys, not ") + kind(map));
        return false;
    }
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
        std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
        if (!seen.insert(k).second) {
            error(it->first, join(path, k), "duplicate key '" + k + "' (only the first counts)");
            continue;
        }
        if (section.find(k)) continue;
        std::string best;
        std::size_t best_d = 3;
        for (const auto& a : section.keys)
            if (auto d = edit_distance(k, a.name); d < best_d) best_d = d, best = a.name;
        error(it->first, join(path, k),
              "unknown key '" + k + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
    }
    return true;
}

std::optional<std::string> Loader::scalar(const YAML::Node& map, const schema::Key& k, const std::string& path,
                                          bool required) {
    YAML::Node n = map[k.name];
    if (!n) {
        if (required || k.required) {
            std::string allowed = k.choices ? std::string(": ") + k.choices : "";
            std::replace(allowed.begin(), allowed.end(), '|', ' ');
            error(map, join(path, k.name), "missing (required)" + allowed);
        }
        return std::nullopt;
    }
    if (!n.IsScalar()) {
        error(n, join(path, k.name), std::string("must be a single value, not ") + kind(n));
        return std::nullopt;
    }
    return n.Scalar();
}

std::optional<std::string> Loader::str(const YAML::Node& map, const schema::Key& k, const std::string& path,
                                       bool required) {
    if (!map[k.name] && k.def) return std::string(k.def);
    return scalar(map, k, path, required);
}

std::optional<std::size_t> Loader::choice(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    auto values = k.choice_list();
    auto s = str(map, k, path);
    if (!s) return std::nullopt;
    for (std::size_t i = 0; i < values.size(); ++i)
        if (*s == values[i]) return i;
    std::string allowed;
    for (const auto& v : values) allowed += (allowed.empty() ? "" : " | ") + v;
    error(map[k.name], join(path, k.name), "'" + *s + "' is not one of: " + allowed);
    return std::nullopt;
}

template <typename F>
std::optional<long long> Loader::number(const YAML::Node& map, const schema::Key& k, const std::string& path, F parse,
                                        const char* what, bool as_duration) {
    auto s = str(map, k, path);
    if (!s) return std::nullopt;
    auto v = parse(*s);
    if (!v) {
        error(map[k.name], join(path, k.name), "'" + *s + "' is not " + what);
        return std::nullopt;
    }
    if (*v < k.lo || *v > k.hi) {
        std::string range = as_duration ? schema::format_duration_ms(k.lo) + ".." + schema::format_duration_ms(k.hi)
                                        : std::to_string(k.lo) + ".." + std::to_string(k.hi);
        error(map[k.name], join(path, k.name), "'" + *s + "' is out of range " + range);
        return std::nullopt;
    }
    return v;
}

std::optional<long long> Loader::integer(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    return number(map, k, path, schema::parse_integer, "a whole number", false);
}

std::optional<long long> Loader::duration_ms(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    return number(map, k, path, schema::parse_duration_ms, "a duration (examples: 30, 30s, 500ms, 5m, 1h)", true);
}

std::optional<long long> Loader::size(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    return number(map, k, path, schema::parse_size, "a size in bytes (examples: 52428800, 50M, 50MB)", false);
}

std::optional<bool> Loader::boolean(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    auto s = str(map, k, path);
    if (!s) return std::nullopt;
    if (auto b = schema::parse_bool(*s)) return b;
    error(map[k.name], join(path, k.name), "'" + *s + "' is not true or false");
    return std::nullopt;
}

std::string Loader::resolve(const std::string& p) const {
    if (p.empty() || p.front() == '/' || dir_.empty()) return p;
    return (std::filesystem::path(dir_) / p).string();
}

std::optional<std::string> Loader::readable_file(const YAML::Node& n, const std::string& key, const std::string& raw,
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
    if (secret && (st.st_mode & 077)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
        error(n, key, path + " has mode " + mode + ": a secret must not be readable by group or others; chmod 600 " +
                          path);
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error(n, key, "cannot read " + path + ": " + std::strerror(errno));
        return std::nullopt;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Secret Loader::secret(const YAML::Node& map, const schema::Key& k, const std::string& path) {
    Secret s;
    YAML::Node n = map[k.name];
    std::string key = join(path, k.name);
    if (!n) return s;
    if (n.IsScalar()) {
        s.value = n.Scalar();
        s.origin = "literal";
        if (s.value.empty()) error(n, key, "is empty");
        else warn(n, key, "a literal secret in the configuration file; prefer {file: PATH} or {env: NAME}");
    } else if (n.IsMap() && keys(n, key, schema::kSecret)) {
        if (n["file"] && n["env"]) {
            error(n, key, "give either 'file' or 'env', not both");
        } else if (auto f = scalar(n, schema::kSecret["file"], key, false)) {
            if (auto content = readable_file(n["file"], key + ".file", *f, true)) {
                s.value = std::move(*content);
                while (!s.value.empty() && (s.value.back() == '\n' || s.value.back() == '\r')) s.value.pop_back();
                s.origin = "file " + resolve(*f);
                if (s.value.empty()) error(n["file"], key + ".file", resolve(*f) + " is empty");
            }
        } else if (auto e = scalar(n, schema::kSecret["env"], key, false)) {
            const char* v = std::getenv(e->c_str());
            if (!v) error(n["env"], key + ".env", "environment variable " + *e + " is not set");
            else if (!*v) error(n["env"], key + ".env", "environment variable " + *e + " is empty");
            else s.value = v, s.origin = "env " + *e;
        } else if (!n["file"] && !n["env"]) {
            error(n, key, "needs 'file: PATH' or 'env: NAME'");
        }
    } else if (!n.IsMap()) {
        error(n, key, std::string("must be {file: PATH}, {env: NAME} or a string, not ") + kind(n));
    }
    return s;
}

std::optional<std::pair<std::string, uint16_t>> Loader::host_port(const YAML::Node& n, const std::string& key,
                                                                  const std::string& text) {
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find("]:");
        if (close != std::string::npos) host = text.substr(1, close - 1), port = text.substr(close + 2);
    } else if (auto colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
        host = text.substr(0, colon), port = text.substr(colon + 1);
    }
    auto p = schema::parse_integer(port);
    if (host.empty() || !p || *p < 1 || *p > 65535) {
        error(n, key, "'" + text + "' is not HOST:PORT (IPv6: [::1]:PORT; port 1..65535)");
        return std::nullopt;
    }
    return std::make_pair(host, uint16_t(*p));
}

}  // namespace xo::config::detail
