// Internal to the config loader: reads YAML values through the schema's key
// entries (schema.hpp) and turns every problem into a Diagnostic
// "FILE:LINE: key: message". Getters return nullopt after reporting a problem;
// an absent key yields the schema default, or an error when it is required.
// Values of secrets never appear in a message.
#pragma once
#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/schema.hpp"

namespace xo::config::detail {

std::size_t edit_distance(const std::string& a, const std::string& b);

class Loader {
public:
    Loader(std::string file, std::vector<Diagnostic>& diags);

    void error(const YAML::Node& n, const std::string& key, const std::string& msg) { add(n, key, msg, true); }
    void warn(const YAML::Node& n, const std::string& key, const std::string& msg) { add(n, key, msg, false); }
    // 1-based line of a node; for a mapping anchored with anchor(), the line of its key.
    int line(const YAML::Node& n) const;
    // Errors about `map` as a whole (missing keys) point at `key_node`, the line naming it.
    void anchor(const YAML::Node& map, const YAML::Node& key_node);

    // Reports keys of `map` that `section` does not declare, and duplicates;
    // false (after an error) when `map` is not a mapping.
    bool keys(const YAML::Node& map, const std::string& path, const schema::Section& section);
    static std::string join(const std::string& path, const std::string& key);

    // Typed getters. `required` adds to the schema's own requirement.
    std::optional<std::string> str(const YAML::Node& map, const schema::Key& k, const std::string& path,
                                   bool required = false);
    std::optional<std::size_t> choice(const YAML::Node& map, const schema::Key& k, const std::string& path);
    std::optional<long long> integer(const YAML::Node& map, const schema::Key& k, const std::string& path);
    std::optional<long long> duration_ms(const YAML::Node& map, const schema::Key& k, const std::string& path);
    std::optional<long long> size(const YAML::Node& map, const schema::Key& k, const std::string& path);
    std::optional<bool> boolean(const YAML::Node& map, const schema::Key& k, const std::string& path);

    // Relative paths are taken from the config file's folder.
    std::string resolve(const std::string& p) const;
    // Reads a file the proxy needs; `secret`: refuse it when group or others may read it.
    std::optional<std::string> readable_file(const YAML::Node& n, const std::string& key, const std::string& raw,
                                             bool secret);
    // {file: PATH} | {env: NAME} | "literal" (a warning). Trailing newlines of a file are removed.
    Secret secret(const YAML::Node& map, const schema::Key& k, const std::string& path);
    // "host:port", "[v6]:port"; reports and returns nullopt otherwise.
    std::optional<std::pair<std::string, uint16_t>> host_port(const YAML::Node& n, const std::string& key,
                                                              const std::string& text);

    std::set<std::string> declared_connections;   // even those with errors: no cascades

private:
    void add(const YAML::Node& n, const std::string& key, const std::string& msg, bool is_error);
    // The scalar of map[k], or nullopt (absent: default or "missing"; not a scalar: error).
    std::optional<std::string> scalar(const YAML::Node& map, const schema::Key& k, const std::string& path,
                                      bool required);
    template <typename F>
    std::optional<long long> number(const YAML::Node& map, const schema::Key& k, const std::string& path, F parse,
                                    const char* what, bool as_duration);

    std::string file_, dir_;
    std::vector<Diagnostic>& diags_;
    std::vector<std::pair<YAML::Node, int>> anchors_;
};

}  // namespace xo::config::detail
