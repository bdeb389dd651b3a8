// load_config(): reads the YAML file section by section, collecting every
// problem; derived values (token URLs, scopes, upstream defaults) are filled in
// per provider and flow. See docs/configuration.md for each key.
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <set>
#include <sstream>

#include "auth/password.hpp"
#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace xo::config {

using detail::Loader;
void load_connections(Loader& L, const YAML::Node& root, Config& cfg);

namespace {

void load_listeners(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node list = root["listeners"];
    if (!list || !list.IsSequence() || list.size() == 0) {
        L.error(list ? list : root, "listeners", "at least one listener is needed (a list)");
        return;
    }
    std::set<std::string> names, binds;
    for (std::size_t i = 0; i < list.size(); ++i) {
        YAML::Node n = list[i];
        std::string path = "listeners[" + std::to_string(i) + "]";
        if (!L.keys(n, path, detail::kListenerKeys)) continue;
        Listener l;
        l.line = Loader::line(n);
        if (auto v = L.str(n, "name", path, true)) {
            l.name = *v;
            if (!names.insert(*v).second) L.error(n["name"], path + ".name", "duplicate listener name '" + *v + "'");
        }
        if (auto v = L.choice<Protocol>(n, "protocol", path, {{"smtp", Protocol::smtp}, {"imap", Protocol::imap}, {"pop3", Protocol::pop3}}))
            l.protocol = *v;
        if (auto v = L.str(n, "bind", path, true)) {
            if (auto hp = L.host_port(n["bind"], path + ".bind", *v)) {
                l.host = hp->first;
                l.port = hp->second;
                if (!binds.insert(*v).second) L.error(n["bind"], path + ".bind", "another listener already binds " + *v);
            }
        }
        if (auto v = L.choice<ListenerTls>(n, "tls", path, {{"none", ListenerTls::none}, {"starttls", ListenerTls::starttls}, {"implicit", ListenerTls::implicit}}))
            l.tls = *v;
        if (auto v = L.str(n, "cert_file", path, l.tls != ListenerTls::none)) {
            l.cert_file = L.resolve(*v);
            L.readable_file(n["cert_file"], path + ".cert_file", *v, false);
        }
        if (auto v = L.str(n, "key_file", path, l.tls != ListenerTls::none)) {
            l.key_file = L.resolve(*v);
            L.readable_file(n["key_file"], path + ".key_file", *v, true);
        }
        if (auto v = L.boolean(n, "allow_plaintext_auth", path)) l.allow_plaintext_auth = *v;
        if (YAML::Node t = n["trusted_networks"]) {
            if (!t.IsSequence()) L.error(t, path + ".trusted_networks", "must be a list of networks (\"127.0.0.1/32\")");
            else
                for (std::size_t j = 0; j < t.size(); ++j) {
                    auto net = t[j].IsScalar() ? parse_network(t[j].Scalar()) : std::nullopt;
                    if (!net) L.error(t[j], path + ".trusted_networks[" + std::to_string(j) + "]",
                                      "'" + t[j].as<std::string>("") + "' is not a network (\"10.0.0.0/8\", \"::1/128\")");
                    else l.trusted_networks.push_back(*net);
                }
        }
        if (auto v = L.size(n, "max_message_size", path, 1024, 1LL << 31)) l.max_message_size = std::size_t(*v);
        if (auto v = L.integer(n, "max_sessions", path, 1, 100000)) l.max_sessions = std::size_t(*v);
        if (auto v = L.duration_ms(n, "idle_timeout", path, 1000, 3600 * 1000)) l.idle_timeout = std::chrono::seconds(*v / 1000);
        cfg.listeners.push_back(std::move(l));
    }
}

void load_users(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node list = root["users"];
    if (!list) return;
    if (!list.IsSequence()) {
        L.error(list, "users", "must be a list");
        return;
    }
    std::set<std::string> logins;
    for (std::size_t i = 0; i < list.size(); ++i) {
        YAML::Node n = list[i];
        std::string path = "users[" + std::to_string(i) + "]";
        if (!L.keys(n, path, detail::kUserKeys)) continue;
        User u;
        u.line = Loader::line(n);
        if (auto v = L.str(n, "login", path, true)) {
            u.login = *v;
            if (v->empty()) L.error(n["login"], path + ".login", "is empty");
            else if (!logins.insert(*v).second) L.error(n["login"], path + ".login", "duplicate login '" + *v + "'");
        }
        if (auto v = L.str(n, "password_hash", path, true)) {
            u.password_hash = *v;
            if (!auth::is_valid_hash(*v))
                L.error(n["password_hash"], path + ".password_hash",
                        "not a password hash from 'xoauth2-proxy hash-password' ($scrypt$... or $pbkdf2-sha256$...)");
        }
        if (auto v = L.str(n, "connection", path, true)) {
            u.connection = *v;
            if (!L.declared_connections.count(*v)) L.error(n["connection"], path + ".connection", "no connection named '" + *v + "'");
        }
        if (auto v = L.str(n, "mailbox", path, true)) {
            u.mailbox = *v;
            if (!is_address(*v)) L.error(n["mailbox"], path + ".mailbox", "'" + *v + "' is not an e-mail address");
        }
        cfg.users.push_back(std::move(u));
    }
}

void load_senders(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node list = root["senders"];
    if (!list) return;
    if (!list.IsSequence()) {
        L.error(list, "senders", "must be a list");
        return;
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
        YAML::Node n = list[i];
        std::string path = "senders[" + std::to_string(i) + "]";
        if (!L.keys(n, path, detail::kSenderKeys)) continue;
        Sender s;
        s.line = Loader::line(n);
        if (auto v = L.str(n, "sender", path, true)) {
            s.pattern = *v;
            bool wildcard = v->rfind("*@", 0) == 0 && is_address("x" + v->substr(1));
            if (!wildcard && !is_address(*v))
                L.error(n["sender"], path + ".sender", "'" + *v + "' is neither an address nor *@domain");
            else if (!seen.insert(*v).second)
                L.error(n["sender"], path + ".sender", "'" + *v + "' is mapped twice");
        }
        if (auto v = L.str(n, "connection", path, true)) {
            s.connection = *v;
            if (!L.declared_connections.count(*v)) L.error(n["connection"], path + ".connection", "no connection named '" + *v + "'");
        }
        if (auto v = L.str(n, "mailbox", path, false)) {
            s.mailbox = *v;
            if (!is_address(*v)) L.error(n["mailbox"], path + ".mailbox", "'" + *v + "' is not an e-mail address");
        }
        cfg.senders.push_back(std::move(s));
    }
}

void load_misc(Loader& L, const YAML::Node& root, Config& cfg) {
    if (YAML::Node a = root["admin"]; a && L.keys(a, "admin", detail::kAdminKeys)) {
        if (auto v = L.str(a, "bind", "admin", true))
            if (auto hp = L.host_port(a["bind"], "admin.bind", *v)) cfg.admin.host = hp->first, cfg.admin.port = hp->second;
    }
    if (YAML::Node t = root["tokens"]; t && L.keys(t, "tokens", detail::kTokenKeys)) {
        if (auto v = L.integer(t, "max_attempts", "tokens", 1, 10)) cfg.tokens.max_attempts = int(*v);
        if (auto v = L.duration_ms(t, "backoff", "tokens", 0, 60000)) cfg.tokens.backoff = std::chrono::milliseconds(*v);
        if (auto v = L.duration_ms(t, "http_timeout", "tokens", 1000, 300000)) cfg.tokens.http_timeout = std::chrono::seconds(*v / 1000);
        if (auto v = L.str(t, "store", "tokens", false)) cfg.tokens.store = L.resolve(*v);
    }
    if (YAML::Node m = root["milter"]; m && L.keys(m, "milter", detail::kMilterKeys)) {
        auto& ms = cfg.milter;
        if (auto v = L.str(m, "socket", "milter", false)) {
            if (v->rfind("inet:", 0) != 0 && v->rfind("inet6:", 0) != 0 && v->rfind("unix:", 0) != 0)
                L.error(m["socket"], "milter.socket", "'" + *v + "' is not inet:PORT@HOST or unix:/path");
            ms.socket = *v;
        }
        if (auto v = L.choice<bool>(m, "unmapped", "milter", {{"reject", true}, {"accept", false}})) ms.reject_unmapped = *v;
        if (auto v = L.str(m, "proxy_status", "milter", false)) {
            if (v->rfind("http://", 0) != 0) L.error(m["proxy_status"], "milter.proxy_status", "'" + *v + "' must be an http:// URL (the admin listener)");
            ms.proxy_status = *v;
        }
        if (auto v = L.choice<bool>(m, "proxy_unreachable", "milter", {{"tempfail", true}, {"accept", false}}))
            ms.tempfail_when_unreachable = *v;
        if (auto v = L.boolean(m, "align_from", "milter")) ms.align_from = *v;
        if (auto v = L.boolean(m, "trace_header", "milter")) ms.trace_header = *v;
        if (auto v = L.duration_ms(m, "status_refresh", "milter", 1000, 300000)) ms.status_refresh = std::chrono::seconds(*v / 1000);
    }
    if (cfg.milter.proxy_status.empty() && cfg.admin.port)
        cfg.milter.proxy_status = "http://" + cfg.admin.host + ":" + std::to_string(cfg.admin.port) + "/status";
    if (YAML::Node l = root["log"]; l && L.keys(l, "log", detail::kLogKeys)) {
        if (auto v = L.choice<std::string>(l, "level", "log", {{"trace", "trace"}, {"debug", "debug"}, {"info", "info"},
                                                               {"warn", "warn"}, {"error", "error"}}))
            cfg.log_level = *v;
    }
}

LoadResult load_root(const YAML::Node& root, const std::string& name) {
    LoadResult r;
    r.config.file = name;
    Loader L(name, r.diagnostics);
    if (!root || root.IsNull()) {
        r.diagnostics.push_back(Diagnostic{name, 1, "", "the file is empty", true});
        return r;
    }
    if (!L.keys(root, "", detail::kTopKeys)) return r;
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
