// The connections: section. Which keys each provider and flow needs, the
// defaults derived from the provider (token URL, scope, upstream hosts), and
// checks of the credential files (readable, private, parseable).
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "config/config.hpp"
#include "config/schema.hpp"
#include "config/yaml_reader.hpp"
#include "diagnose/diagnose.hpp"

namespace xo::config {

using detail::Loader;

namespace {

namespace S = schema;
const auto& K = S::kConnection;

const char* kMsScope = "https://outlook.office365.com/.default";
const char* kMsDelegatedScope =
    "offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All "
    "https://outlook.office.com/POP.AccessAsUser.All";
const char* kGoogleScope = "https://mail.google.com/";
const char* kGraphScope = "https://graph.microsoft.com/.default";
const char* kGraphDelegatedScope = "offline_access https://graph.microsoft.com/Mail.Send";
const char* kGoogleTokenUrl = "https://oauth2.googleapis.com/token";
const char* kGoogleAuthorizeUrl = "https://accounts.google.com/o/oauth2/v2/auth";

const std::set<Flow> kClientFlows = {Flow::client_secret, Flow::certificate, Flow::authorization_code, Flow::device_code};

// Keys that only some flows use: key -> flows that use it. Using one with another flow is an error,
// so that a half-edited connection does not silently use the wrong credentials.
const std::vector<std::pair<const char*, std::set<Flow>>> kFlowKeys = {
    {"client_secret", {Flow::client_secret, Flow::authorization_code, Flow::device_code}},
    {"certificate", {Flow::certificate}},
    {"private_key", {Flow::certificate}},
    {"assertion", {Flow::certificate}},
    {"key_file", {Flow::service_account}},
    {"client_id", kClientFlows},
    {"authorize_url", {Flow::authorization_code}},
    {"device_code_url", {Flow::device_code}},
    {"secret_expires", {Flow::client_secret, Flow::authorization_code, Flow::device_code}},
};

// Flows each provider offers.
bool offers(Provider p, Flow f) {
    switch (p) {
        case Provider::microsoft: return f != Flow::service_account;
        case Provider::google: return f == Flow::service_account || f == Flow::authorization_code;
        case Provider::generic: return f == Flow::client_secret;
    }
    return false;
}

// "2027-03-31" -> unix time of 00:00 UTC that day; 0 when malformed.
long long parse_date(const std::string& s) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return 0;
    auto y = schema::parse_integer(std::string_view(s).substr(0, 4));
    auto m = schema::parse_integer(std::string_view(s).substr(5, 2));
    auto d = schema::parse_integer(std::string_view(s).substr(8, 2));
    if (!y || !m || !d || *y < 1970) return 0;
    std::chrono::year_month_day ymd{std::chrono::year(int(*y)), std::chrono::month(unsigned(*m)), std::chrono::day(unsigned(*d))};
    if (!ymd.ok()) return 0;
    return std::chrono::sys_days(ymd).time_since_epoch().count() * 86400LL;
}

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };

// True when OpenSSL parses a PEM certificate (private key); *out receives it when given.
bool pem_certificate(const std::string& pem, X509** out = nullptr) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (out) *out = x;
    else X509_free(x);
    return x != nullptr;
}
bool pem_private_key(const std::string& pem, EVP_PKEY** out = nullptr) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (out) *out = k;
    else EVP_PKEY_free(k);
    return k != nullptr;
}

std::optional<Upstream> upstream(Loader& L, const YAML::Node& c, const char* key, const std::string& path) {
    YAML::Node n = c[key];
    if (!n) return std::nullopt;
    std::string k = path + "." + key;
    Upstream u;
    if (n.IsScalar()) {
        auto hp = L.host_port(n, k, n.Scalar());
        if (!hp) return std::nullopt;
        u.host = hp->first;
        u.port = hp->second;
        switch (u.port) {
            case 587: case 143: case 110: u.tls = UpstreamTls::starttls; break;
            case 465: case 993: case 995: u.tls = UpstreamTls::implicit; break;
            default:
                L.error(n, k, "port " + std::to_string(u.port) +
                                  " has no well-known TLS mode: use the long form {host: H, port: P, tls: starttls|implicit}");
                return std::nullopt;
        }
        return u;
    }
    const auto& U = S::kUpstream;
    if (!L.keys(n, k, U)) return std::nullopt;
    auto host = L.str(n, U["host"], k);
    auto port = L.integer(n, U["port"], k);
    auto tls = L.choice(n, U["tls"], k);
    if (!host || !port || !tls) return std::nullopt;
    if (host->empty()) {
        L.error(n["host"], k + ".host", "is empty");
        return std::nullopt;
    }
    return Upstream{*host, uint16_t(*port), static_cast<UpstreamTls>(*tls)};
}

void service_account_key(Loader& L, const YAML::Node& c, const std::string& path, Connection& conn) {
    auto raw = L.str(c, K["key_file"], path, true);
    if (!raw) return;
    conn.key_file = L.resolve(*raw);
    std::string k = path + ".key_file";
    auto content = L.readable_file(c["key_file"], k, *raw, true);
    if (!content) return;
    auto j = nlohmann::json::parse(*content, nullptr, false);
    if (!j.is_object()) {
        L.error(c["key_file"], k, conn.key_file + " is not JSON (expected the key file Google issues)");
        return;
    }
    if (j.value("type", "") != "service_account")
        L.error(c["key_file"], k, conn.key_file + ": \"type\" is not \"service_account\"");
    for (const char* f : {"client_email", "private_key", "private_key_id"})
        if (!j.contains(f) || !j[f].is_string() || j[f].get<std::string>().empty())
            L.error(c["key_file"], k, conn.key_file + ": \"" + f + "\" is missing");
    auto text = [&](const char* f, const char* def) { return j.contains(f) && j[f].is_string() ? j[f].get<std::string>() : def; };
    auto& sa = conn.service_account;
    sa.client_email = text("client_email", "");
    sa.private_key_pem = text("private_key", "");
    sa.private_key_id = text("private_key_id", "");
    sa.token_uri = text("token_uri", kGoogleTokenUrl);
    if (!sa.private_key_pem.empty() && !pem_private_key(sa.private_key_pem))
        L.error(c["key_file"], k, conn.key_file + ": \"private_key\" is not a PEM private key");
}

void certificate_files(Loader& L, const YAML::Node& c, const std::string& path, Connection& conn) {
    if (!c["certificate"] || !c["private_key"]) {
        L.error(c, path, "missing: flow certificate needs 'certificate' and 'private_key' (PEM files)");
    }
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
    if (auto v = L.str(c, K["certificate"], path)) {
        conn.certificate_file = L.resolve(*v);
        if (auto pem = L.readable_file(c["certificate"], path + ".certificate", *v, false); pem && !pem_certificate(*pem, &cert))
            L.error(c["certificate"], path + ".certificate", conn.certificate_file + " is not a PEM certificate");
    }
    if (auto v = L.str(c, K["private_key"], path)) {
        conn.private_key_file = L.resolve(*v);
        if (auto pem = L.readable_file(c["private_key"], path + ".private_key", *v, true); pem && !pem_private_key(*pem, &key))
            L.error(c["private_key"], path + ".private_key", conn.private_key_file + " is not a PEM private key");
    }
    if (cert && key && X509_check_private_key(cert, key) != 1)
        L.error(c["private_key"], path + ".private_key",
                conn.private_key_file + " is not the private key of " + conn.certificate_file);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (auto i = L.choice(c, K["assertion"], path)) conn.assertion = static_cast<Assertion>(*i);
}

// Endpoints, scopes and mail servers: derived from the provider, each overridable.
void endpoints(Loader& L, const YAML::Node& c, const std::string& path, Connection& conn) {
    if (conn.provider == Provider::microsoft) {
        conn.authority = L.str(c, K["authority"], path).value_or("");
        while (!conn.authority.empty() && conn.authority.back() == '/') conn.authority.pop_back();
        std::string base = conn.authority + "/" + conn.tenant + "/oauth2/v2.0/";
        conn.token_url = base + "token";
        conn.authorize_url = base + "authorize";
        conn.device_code_url = base + "devicecode";
        bool delegated = conn.flow == Flow::authorization_code || conn.flow == Flow::device_code;
        conn.scope = delegated ? kMsDelegatedScope : kMsScope;
        conn.smtp = {"smtp.office365.com", 587, UpstreamTls::starttls};
        conn.imap = {"outlook.office365.com", 993, UpstreamTls::implicit};
        conn.pop3 = {"outlook.office365.com", 995, UpstreamTls::implicit};
    } else if (conn.provider == Provider::google) {
        conn.token_url = conn.service_account.token_uri.empty() ? kGoogleTokenUrl : conn.service_account.token_uri;
        conn.authorize_url = kGoogleAuthorizeUrl;
        conn.scope = kGoogleScope;
        conn.smtp = {"smtp.gmail.com", 587, UpstreamTls::starttls};
        conn.imap = {"imap.gmail.com", 993, UpstreamTls::implicit};
        conn.pop3 = {"pop.gmail.com", 995, UpstreamTls::implicit};
    }
    for (const char* k : {"authority", "tenant"})
        if (c[k] && conn.provider != Provider::microsoft)
            L.error(c[k], path + "." + k, "is used by provider microsoft only");
    bool generic = conn.provider == Provider::generic;
    if (auto v = L.str(c, K["token_url"], path, generic)) conn.token_url = *v;
    if (auto v = L.str(c, K["scope"], path, generic)) conn.scope = *v;
    if (auto v = L.str(c, K["authorize_url"], path)) conn.authorize_url = *v;
    if (auto v = L.str(c, K["device_code_url"], path)) conn.device_code_url = *v;
    if (!conn.token_url.empty() && conn.token_url.rfind("https://", 0) != 0)
        L.error(c["token_url"] ? c["token_url"] : c["authority"] ? c["authority"] : c, path + ".token_url",
                "'" + conn.token_url + "' must be an https:// URL");
    if (generic && c["scope"] && conn.scope.empty()) L.error(c["scope"], path + ".scope", "is empty");
    if (auto u = upstream(L, c, "smtp", path)) conn.smtp = *u;
    if (auto u = upstream(L, c, "imap", path)) conn.imap = *u;
    if (auto u = upstream(L, c, "pop3", path)) conn.pop3 = *u;
}

std::string api_base(Loader& L, const YAML::Node& c, const char* key, const std::string& path) {
    std::string v = L.str(c, K[key], path).value_or("");
    while (!v.empty() && v.back() == '/') v.pop_back();
    if (v.rfind("https://", 0) != 0 || v.size() <= 8)
        L.error(c[key] ? c[key] : c, path + "." + key, "'" + v + "' must be an https:// URL");
    return v;
}

// send_via: which provider offers which API, and the token scope the API needs.
void send_via(Loader& L, const YAML::Node& c, const std::string& path, Connection& conn) {
    if (auto v = L.choice(c, K["send_via"], path)) conn.send_via = static_cast<SendVia>(*v);
    conn.graph_url = api_base(L, c, "graph_url", path);
    conn.gmail_api_url = api_base(L, c, "gmail_api_url", path);
    bool graph = conn.send_via == SendVia::graph || conn.send_via == SendVia::auto_;
    if (graph && conn.provider != Provider::microsoft)
        L.error(c["send_via"], path + ".send_via",
                std::string(to_string(conn.send_via)) + " needs provider microsoft (Microsoft Graph sendMail); "
                "for Google use send_via: gmail_api");
    if (conn.send_via == SendVia::gmail_api && conn.provider != Provider::google)
        L.error(c["send_via"], path + ".send_via",
                "gmail_api needs provider google" +
                    std::string(conn.provider == Provider::microsoft ? "; for Microsoft use send_via: graph" : ""));
    if (c["graph_url"] && !graph) L.error(c["graph_url"], path + ".graph_url", "is used by send_via graph or auto only");
    if (c["gmail_api_url"] && conn.send_via != SendVia::gmail_api)
        L.error(c["gmail_api_url"], path + ".gmail_api_url", "is used by send_via gmail_api only");
    bool delegated = conn.flow == Flow::authorization_code || conn.flow == Flow::device_code;
    if (graph) conn.api_scope = delegated ? kGraphDelegatedScope : kGraphScope;
    // A delegated sign-in grants the scopes asked for: ask for Graph's.
    if (graph && delegated && !c["scope"]) conn.scope = conn.api_scope;
    // https://mail.google.com/ covers users.messages.send: one token for SMTP, IMAP and the API.
    else if (conn.send_via == SendVia::gmail_api) conn.api_scope = conn.scope;
    if (conn.send_via == SendVia::auto_ && delegated)
        L.error(c["send_via"], path + ".send_via",
                "auto is for app-only flows (client_secret, certificate); with flow " + std::string(to_string(conn.flow)) +
                    " choose smtp or graph (the sign-in grants the scopes of one of them)");
}

void connection(Loader& L, const std::string& name, const YAML::Node& key_node, const YAML::Node& c, Config& cfg) {
    std::string path = "connections." + name;
    if (!c.IsMap()) {
        L.error(key_node, path, "must be a mapping of settings (provider:, flow:, ...)");
        return;
    }
    L.anchor(c, key_node);
    if (!L.keys(c, path, K)) return;
    Connection conn;
    conn.name = name;
    conn.line = L.line(c);
    auto provider = L.choice(c, K["provider"], path);
    if (!provider) return;
    conn.provider = static_cast<Provider>(*provider);
    conn.flow = conn.provider == Provider::google ? Flow::service_account : Flow::client_secret;
    if (c["flow"]) {
        auto flow = L.choice(c, K["flow"], path);
        if (!flow) return;
        conn.flow = static_cast<Flow>(*flow);
    }
    const std::string flow_name = to_string(conn.flow);
    if (conn.provider == Provider::google && conn.flow == Flow::device_code) {
        // Refused up front: Google would refuse the Gmail scope only at the first sign-in.
        const diagnose::Row* why = diagnose::find_condition("device_code_google");
        L.error(c["flow"], path + ".flow",
                "flow device_code cannot be used with provider google: " + std::string(why->cause) + "; " +
                    std::string(why->fix));
        return;
    }
    if (!offers(conn.provider, conn.flow)) {
        L.error(c["flow"], path + ".flow", "flow " + flow_name + " is not available for provider " +
                                               to_string(conn.provider));
        return;
    }
    for (const auto& [key, flows] : kFlowKeys) {
        bool generic_ok = conn.provider == Provider::generic && std::string(key) == "client_secret";
        if (c[key] && !flows.count(conn.flow) && !generic_ok)
            L.error(c[key], path + "." + key, "is not used by flow " + flow_name + " (remove it)");
    }
    if (auto v = L.str(c, K["client_id"], path, kClientFlows.count(conn.flow) > 0)) {
        conn.client_id = *v;
        if (v->empty()) L.error(c["client_id"], path + ".client_id", "is empty");
    }
    if (conn.provider == Provider::microsoft) {
        if (auto v = L.str(c, K["tenant"], path, true)) {
            conn.tenant = *v;
            bool app_only = conn.flow == Flow::client_secret || conn.flow == Flow::certificate;
            if (v->empty()) L.error(c["tenant"], path + ".tenant", "is empty");
            else if (app_only && (*v == "common" || *v == "consumers" || *v == "organizations"))
                L.error(c["tenant"], path + ".tenant",
                        "flow " + flow_name + " needs the tenant id or domain, not '" + *v +
                            "' (Azure answers AADSTS9001023: app-only tokens come from one tenant)");
        }
    }
    if (conn.flow == Flow::client_secret && !c["client_secret"] && conn.provider != Provider::generic)
        L.error(c, path + ".client_secret",
                "missing: flow client_secret needs 'client_secret' ({file: PATH} or {env: NAME})");
    conn.client_secret = L.secret(c, K["client_secret"], path);
    if (conn.flow == Flow::certificate) certificate_files(L, c, path, conn);
    if (conn.flow == Flow::service_account) service_account_key(L, c, path, conn);
    endpoints(L, c, path, conn);
    if (auto v = L.str(c, K["ca_file"], path)) {
        conn.ca_file = L.resolve(*v);
        if (auto pem = L.readable_file(c["ca_file"], path + ".ca_file", *v, false); pem && !pem_certificate(*pem))
            L.error(c["ca_file"], path + ".ca_file", conn.ca_file + " holds no PEM certificate");
    }
    if (auto i = L.choice(c, K["sasl"], path)) conn.sasl = static_cast<SaslMechanism>(*i);
    if (auto v = L.duration_ms(c, K["refresh_window"], path)) conn.refresh_window = std::chrono::seconds(*v / 1000);
    // Exchange Online allows 3 concurrent SMTP sessions per mailbox (432 4.3.2 beyond).
    conn.max_upstream_sessions = conn.provider == Provider::microsoft ? 3 : conn.provider == Provider::google ? 10 : 0;
    if (auto v = L.integer(c, K["max_upstream_sessions"], path)) conn.max_upstream_sessions = std::size_t(*v);
    // Exchange Online allows 20 IMAP connections per mailbox, Gmail 15 per account.
    conn.max_imap_sessions = conn.provider == Provider::microsoft ? 20 : conn.provider == Provider::google ? 15 : 0;
    if (auto v = L.integer(c, K["max_imap_sessions"], path)) conn.max_imap_sessions = std::size_t(*v);
    if (auto v = L.duration_ms(c, K["upstream_wait"], path)) conn.upstream_wait = std::chrono::milliseconds(*v);
    if (auto v = L.duration_ms(c, K["upstream_idle"], path)) conn.upstream_idle = std::chrono::milliseconds(*v);
    if (auto v = L.integer(c, K["upstream_max_messages"], path)) conn.upstream_max_messages = std::size_t(*v);
    if (auto v = L.str(c, K["secret_expires"], path)) {
        conn.secret_expires = parse_date(*v);
        if (!conn.secret_expires)
            L.error(c["secret_expires"], path + ".secret_expires",
                    "'" + *v + "' is not a date YYYY-MM-DD (the secret's Expires column in Certificates & secrets)");
    }
    send_via(L, c, path, conn);
    cfg.connections[name] = std::move(conn);
}

}  // namespace

void load_connections(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node map = root["connections"];
    if (!map || !map.IsMap() || map.size() == 0) {
        L.error(map ? map : root, "connections", "at least one connection is needed (a mapping NAME: {...})");
        return;
    }
    for (auto it = map.begin(); it != map.end(); ++it)
        if (it->first.IsScalar()) L.declared_connections.insert(it->first.Scalar());
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
        if (!it->first.IsScalar() || it->first.Scalar().empty()) {
            L.error(it->first, "connections", "a connection name must be a non-empty string");
            continue;
        }
        if (!seen.insert(it->first.Scalar()).second) {
            L.error(it->first, "connections." + it->first.Scalar(), "duplicate connection name");
            continue;
        }
        connection(L, it->first.Scalar(), it->first, it->second, cfg);
    }
}

}  // namespace xo::config
