// load_config(): reads the YAML file section by section through the schema
// (schema.hpp), collecting every problem; connections are in connections.cpp.
// Diagnostics come out sorted by line. See docs/configuration.md for each key.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "auth/password.hpp"
#include "config/config.hpp"
#include "config/schema.hpp"
#include "config/yaml_reader.hpp"

namespace xo::config {

using detail::Loader;
void load_connections(Loader& L, const YAML::Node& root, Config& cfg);

namespace {

namespace S = schema;

// Choices are declared in the schema in the enums' order.
template <typename E>
void set_choice(Loader& L, const YAML::Node& n, const S::Key& k, const std::string& path, E& out) {
    if (auto i = L.choice(n, k, path)) out = static_cast<E>(*i);
}

void trusted_networks(Loader& L, const YAML::Node& n, const std::string& path, Listener& l) {
    YAML::Node t = n["trusted_networks"];
    if (!t) return;
    std::string key = path + ".trusted_networks";
    if (!t.IsSequence()) {
        L.error(t, key, "must be a list of networks (\"127.0.0.1/32\", \"::1/128\")");
        return;
    }
    if (l.protocol != Protocol::smtp) L.error(t, key, "is for smtp listeners only (trusted senders need no AUTH)");
    for (std::size_t j = 0; j < t.size(); ++j) {
        auto net = t[j].IsScalar() ? parse_network(t[j].Scalar()) : std::nullopt;
        if (net) l.trusted_networks.push_back(*net);
        else L.error(t[j], key + "[" + std::to_string(j) + "]",
                     "'" + (t[j].IsScalar() ? t[j].Scalar() : std::string("?")) +
                         "' is not a network (\"10.0.0.0/8\", \"::1/128\", \"192.0.2.7\")");
    }
}

void load_listeners(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node list = root["listeners"];
    if (!list || !list.IsSequence() || list.size() == 0) {
        L.error(list ? list : root, "listeners", "at least one listener is needed (a list)");
        return;
    }
    std::set<std::string> names, binds;
    const auto& K = S::kListener;
    for (std::size_t i = 0; i < list.size(); ++i) {
        YAML::Node n = list[i];
        std::string path = "listeners[" + std::to_string(i) + "]";
        if (!L.keys(n, path, K)) continue;
        Listener l;
        l.line = L.line(n);
        if (auto v = L.str(n, K["name"], path)) {
            l.name = *v;
            if (v->empty()) L.error(n["name"], path + ".name", "is empty");
            else if (!names.insert(*v).second) L.error(n["name"], path + ".name", "duplicate listener name '" + *v + "'");
        }
        set_choice(L, n, K["protocol"], path, l.protocol);
        if (auto v = L.str(n, K["bind"], path)) {
            if (auto hp = L.host_port(n["bind"], path + ".bind", *v)) {
                l.host = hp->first;
                l.port = hp->second;
                if (!binds.insert(*v).second) L.error(n["bind"], path + ".bind", "another listener already binds " + *v);
            }
        }
        set_choice(L, n, K["tls"], path, l.tls);
        bool tls = l.tls != ListenerTls::none;
        for (auto [key, secret, out] : {std::tuple{"cert_file", false, &l.cert_file}, std::tuple{"key_file", true, &l.key_file}}) {
            auto v = L.str(n, K[key], path, tls);
            if (!v) continue;
            if (!tls) {
                L.error(n[key], path + "." + key, "is used only with tls: starttls or implicit");
                continue;
            }
            *out = L.resolve(*v);
            L.readable_file(n[key], path + "." + key, *v, secret);
        }
        if (auto v = L.boolean(n, K["allow_plaintext_auth"], path)) l.allow_plaintext_auth = *v;
        trusted_networks(L, n, path, l);
        if (auto v = L.size(n, K["max_message_size"], path)) l.max_message_size = std::size_t(*v);
        if (auto v = L.integer(n, K["max_sessions"], path)) l.max_sessions = std::size_t(*v);
        if (auto v = L.integer(n, K["max_sessions_per_client"], path)) l.max_sessions_per_client = std::size_t(*v);
        set_choice(L, n, K["bare_newline"], path, l.bare_newline);
        if (auto v = L.duration_ms(n, K["idle_timeout"], path)) l.idle_timeout = std::chrono::seconds(*v / 1000);
        if (auto v = L.duration_ms(n, K["command_timeout"], path)) l.command_timeout = std::chrono::seconds(*v / 1000);
        if (auto v = L.duration_ms(n, K["data_timeout"], path)) l.data_timeout = std::chrono::seconds(*v / 1000);
        if (auto v = L.duration_ms(n, K["session_timeout"], path)) l.session_timeout = std::chrono::seconds(*v / 1000);
        cfg.listeners.push_back(std::move(l));
    }
}

// A `connection:` reference from users[] or senders[].
void connection_ref(Loader& L, const YAML::Node& n, const S::Key& k, const std::string& path, std::string& out) {
    if (auto v = L.str(n, k, path)) {
        out = *v;
        if (!L.declared_connections.count(*v))
            L.error(n[k.name], path + "." + k.name, "no connection named '" + *v + "'");
    }
}

void mailbox(Loader& L, const YAML::Node& n, const S::Key& k, const std::string& path, std::string& out) {
    if (auto v = L.str(n, k, path)) {
        out = *v;
        if (!is_address(*v)) L.error(n[k.name], path + "." + k.name, "'" + *v + "' is not an e-mail address");
    }
}

// A list section: nullopt-safe iteration with "NAME[i]" paths.
template <typename F>
void each(Loader& L, const YAML::Node& root, const char* name, const S::Section& section, F f) {
    YAML::Node list = root[name];
    if (!list || list.IsNull()) return;
    if (!list.IsSequence()) {
        L.error(list, name, "must be a list");
        return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        std::string path = std::string(name) + "[" + std::to_string(i) + "]";
        if (L.keys(list[i], path, section)) f(list[i], path);
    }
}

void load_users(Loader& L, const YAML::Node& root, Config& cfg) {
    std::set<std::string> logins;
    const auto& K = S::kUser;
    each(L, root, "users", K, [&](const YAML::Node& n, const std::string& path) {
        User u;
        u.line = L.line(n);
        if (auto v = L.str(n, K["login"], path)) {
            u.login = *v;
            if (v->empty()) L.error(n["login"], path + ".login", "is empty");
            else if (!logins.insert(*v).second) L.error(n["login"], path + ".login", "duplicate login '" + *v + "'");
        }
        if (auto v = L.str(n, K["password_hash"], path)) {
            u.password_hash = *v;
            if (!auth::is_valid_hash(*v))
                L.error(n["password_hash"], path + ".password_hash",
                        "not a password hash from 'xoauth2-proxy hash-password' ($scrypt$... or $pbkdf2-sha256$...)");
        }
        connection_ref(L, n, K["connection"], path, u.connection);
        mailbox(L, n, K["mailbox"], path, u.mailbox);
        cfg.users.push_back(std::move(u));
    });
}

void load_senders(Loader& L, const YAML::Node& root, Config& cfg) {
    std::set<std::string> seen;
    const auto& K = S::kSender;
    each(L, root, "senders", K, [&](const YAML::Node& n, const std::string& path) {
        Sender s;
        s.line = L.line(n);
        if (auto v = L.str(n, K["sender"], path)) {
            s.pattern = *v;
            bool wildcard = v->rfind("*@", 0) == 0 && is_address("x" + v->substr(1));
            std::string lower = *v;
            for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
            if (!wildcard && !is_address(*v))
                L.error(n["sender"], path + ".sender", "'" + *v + "' is neither an address nor *@domain");
            else if (!seen.insert(lower).second)
                L.error(n["sender"], path + ".sender", "'" + *v + "' is mapped twice");
        }
        connection_ref(L, n, K["connection"], path, s.connection);
        if (n["mailbox"]) mailbox(L, n, K["mailbox"], path, s.mailbox);
        cfg.senders.push_back(std::move(s));
    });
}

void load_milter(Loader& L, const YAML::Node& m, Config& cfg) {
    const auto& K = S::kMilter;
    auto& ms = cfg.milter;
    if (auto v = L.str(m, K["socket"], "milter")) {
        if (v->rfind("inet:", 0) != 0 && v->rfind("inet6:", 0) != 0 && v->rfind("unix:", 0) != 0)
            L.error(m["socket"], "milter.socket", "'" + *v + "' is not inet:PORT@HOST or unix:/path");
        ms.socket = *v;
    }
    if (auto i = L.choice(m, K["unmapped"], "milter")) ms.reject_unmapped = *i == 0;
    if (auto v = L.str(m, K["proxy_status"], "milter")) {
        if (v->rfind("http://", 0) != 0)
            L.error(m["proxy_status"], "milter.proxy_status", "'" + *v + "' must be an http:// URL (the admin listener)");
        ms.proxy_status = *v;
    }
    if (auto i = L.choice(m, K["proxy_unreachable"], "milter")) ms.tempfail_when_unreachable = *i == 0;
    if (auto v = L.boolean(m, K["align_from"], "milter")) ms.align_from = *v;
    if (auto v = L.boolean(m, K["trace_header"], "milter")) ms.trace_header = *v;
    if (auto v = L.duration_ms(m, K["status_refresh"], "milter")) ms.status_refresh = std::chrono::seconds(*v / 1000);
}

// admin, tokens, milter, log, daemon: optional mappings whose keys all have defaults.
void load_misc(Loader& L, const YAML::Node& root, Config& cfg) {
    auto section = [&](const char* name, const S::Section& s) {
        YAML::Node n = root[name];
        if (!n || n.IsNull()) return YAML::Node(YAML::NodeType::Map);   // defaults apply
        return L.keys(n, name, s) ? n : YAML::Node(YAML::NodeType::Map);
    };
    if (YAML::Node a = root["admin"]; a && !a.IsNull() && L.keys(a, "admin", S::kAdmin)) {
        if (auto v = L.str(a, S::kAdmin["bind"], "admin"))
            if (auto hp = L.host_port(a["bind"], "admin.bind", *v)) cfg.admin.host = hp->first, cfg.admin.port = hp->second;
        if (auto v = L.str(a, S::kAdmin["password_hash"], "admin")) {
            if (!auth::is_valid_hash(*v))
                L.error(a["password_hash"], "admin.password_hash",
                        "is not a password hash: make one with 'xoauth2-proxy hash-password'");
            else
                cfg.admin.password_hash = *v;
        }
    }
    const auto& T = S::kTokens;
    YAML::Node t = section("tokens", T);
    if (auto v = L.integer(t, T["max_attempts"], "tokens")) cfg.tokens.max_attempts = int(*v);
    if (auto v = L.duration_ms(t, T["backoff"], "tokens")) cfg.tokens.backoff = std::chrono::milliseconds(*v);
    if (auto v = L.duration_ms(t, T["http_timeout"], "tokens")) cfg.tokens.http_timeout = std::chrono::seconds(*v / 1000);
    if (auto v = L.str(t, T["store"], "tokens"))
        cfg.tokens.store = is_redis_url(*v) ? *v : L.resolve(*v);
    if (is_redis_url(cfg.tokens.store)) {
        std::string why;
        if (!parse_redis_url(cfg.tokens.store, why))
            L.error(t["store"], "tokens.store", why);
        cfg.tokens.redis_password = L.secret(t, T["redis_password"], "tokens");
        if (auto v = L.str(t, T["redis_ca_file"], "tokens")) cfg.tokens.redis_ca_file = L.resolve(*v);
        if (auto v = L.duration_ms(t, T["redis_lock_timeout"], "tokens"))
            cfg.tokens.redis_lock_timeout = std::chrono::milliseconds(*v);
    } else {
        for (const char* k : {"redis_password", "redis_ca_file"})
            if (t[k]) L.error(t[k], std::string("tokens.") + k, "only with a redis:// or rediss:// tokens.store");
    }
    load_milter(L, section("milter", S::kMilter), cfg);
    if (cfg.milter.proxy_status.empty() && cfg.admin.port)
        cfg.milter.proxy_status = "http://" + cfg.admin.host + ":" + std::to_string(cfg.admin.port) + "/status";
    YAML::Node d = section("daemon", S::kDaemon);
    if (auto v = L.integer(d, S::kDaemon["io_threads"], "daemon")) cfg.io_threads = int(*v);
    YAML::Node l = section("log", S::kLog);
    const auto& level = S::kLog["level"];
    if (auto i = L.choice(l, level, "log")) cfg.log_level = level.choice_list()[*i];
}

LoadResult load_root(const YAML::Node& root, const std::string& name) {
    LoadResult r;
    r.config.file = name;
    Loader L(name, r.diagnostics);
    if (!root || root.IsNull()) {
        r.diagnostics.push_back(Diagnostic{name, 1, "", "the file is empty", true});
        return r;
    }
    if (!L.keys(root, "", S::kTop)) return r;
    load_connections(L, root, r.config);
    load_listeners(L, root, r.config);
    load_users(L, root, r.config);
    load_senders(L, root, r.config);
    load_misc(L, root, r.config);
    std::stable_sort(r.diagnostics.begin(), r.diagnostics.end(),
                     [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
    return r;
}

LoadResult parse_error(const std::string& name, const YAML::Exception& e) {
    LoadResult r;
    r.config.file = name;
    r.diagnostics.push_back(Diagnostic{name, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "YAML syntax: " + e.msg, true});
    return r;
}

}  // namespace

LoadResult load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        LoadResult r;
        r.config.file = path;
        r.diagnostics.push_back(Diagnostic{path, 0, "", std::string("cannot read: ") + std::strerror(errno), true});
        return r;
    }
    try {
        return load_root(YAML::Load(in), path);
    } catch (const YAML::Exception& e) {
        return parse_error(path, e);
    }
}

LoadResult load_config_string(const std::string& yaml, const std::string& name) {
    try {
        return load_root(YAML::Load(yaml), name);
    } catch (const YAML::Exception& e) {
        return parse_error(name, e);
    }
}

}  // namespace xo::config
