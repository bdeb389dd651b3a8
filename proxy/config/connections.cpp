// The connections: section. Which keys each provider and flow needs, the
// defaults derived from the provider (token URL, scope, upstream hosts), and
// checks of the credential files (readable, private, parseable).
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>
#include <set>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace xo::config {

using detail::Loader;

namespace {

const char* kMsScope = "https://outlook.office365.com/.default";
const char* kMsDelegatedScope =
    "offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All "
    "https://outlook.office.com/POP.AccessAsUser.All";
const char* kGoogleScope = "https://mail.google.com/";

// Keys that only some flows use: key -> flows that use it.
const std::vector<std::pair<const char*, std::set<Flow>>> kFlowKeys = {
    {"client_secret", {Flow::client_secret, Flow::authorization_code, Flow::device_code}},
    {"certificate", {Flow::certificate}},
    {"private_key", {Flow::certificate}},
    {"assertion", {Flow::certificate}},
    {"key_file", {Flow::service_account}},
    {"tenant", {Flow::client_secret, Flow::certificate, Flow::authorization_code, Flow::device_code}},
    {"client_id", {Flow::client_secret, Flow::certificate, Flow::authorization_code, Flow::device_code}},
    {"authorize_url", {Flow::authorization_code}},
    {"device_code_url", {Flow::device_code}},
};

bool pem_parses(const std::string& pem, bool key) {
    BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
    bool ok;
    if (key) {
        EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
        ok = k != nullptr;
        EVP_PKEY_free(k);
    } else {
        X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        ok = x != nullptr;
        X509_free(x);
    }
    BIO_free(bio);
    return ok;
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
    if (!L.keys(n, k, detail::kUpstreamKeys)) return std::nullopt;
    auto host = L.str(n, "host", k, true);
    auto port = L.integer(n, "port", k, 1, 65535);
    if (!n["port"]) L.error(n, k + ".port", "missing (required)");
    auto tls = L.choice<UpstreamTls>(n, "tls", k, {{"starttls", UpstreamTls::starttls}, {"implicit", UpstreamTls::implicit}});
    if (!n["tls"]) L.error(n, k + ".tls", "missing (required): starttls | implicit (plain text is never used)");
    if (!host || !port || !tls) return std::nullopt;
    u.host = *host;
    u.port = uint16_t(*port);
    u.tls = *tls;
    return u;
}

void service_account_key(Loader& L, const YAML::Node& c, const std::string& path, Connection& conn) {
    auto raw = L.str(c, "key_file", path, true);
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
    auto& sa = conn.service_account;
    sa.client_email = j.value("client_email", "");
    sa.private_key_pem = j.value("private_key", "");
    sa.private_key_id = j.value("private_key_id", "");
    sa.token_uri = j.value("token_uri", "https://oauth2.googleapis.com/token");
    if (!sa.private_key_pem.empty() && !pem_parses(sa.private_key_pem, true))
        L.error(c["key_file"], k, conn.key_file + ": \"private_key\" is not a PEM private key");
}

void connection(Loader& L, const std::string& name, const YAML::Node& c, Config& cfg) {
    std::string path = "connections." + name;
    if (!L.keys(c, path, detail::kConnectionKeys)) return;
    Connection conn;
    conn.name = name;
    conn.line = Loader::line(c);
    auto provider = L.choice<Provider>(c, "provider", path, {{"microsoft", Provider::microsoft}, {"google", Provider::google}, {"generic", Provider::generic}});
    if (!c["provider"]) L.error(c, path + ".provider", "missing (required): microsoft | google | generic");
    if (!provider) return;
    conn.provider = *provider;
    conn.flow = conn.provider == Provider::google ? Flow::service_account : Flow::client_secret;
    if (c["flow"]) {
        auto flow = L.choice<Flow>(c, "flow", path, {{"client_secret", Flow::client_secret}, {"certificate", Flow::certificate},
                                                     {"service_account", Flow::service_account},
                                                     {"authorization_code", Flow::authorization_code},
                                                     {"device_code", Flow::device_code}});
        if (!flow) return;
        conn.flow = *flow;
    }
    const std::string flow_name = to_string(conn.flow);
    // Flows each provider offers.
    bool allowed = conn.provider == Provider::microsoft ? conn.flow != Flow::service_account
                 : conn.provider == Provider::google ? (conn.flow == Flow::service_account || conn.flow == Flow::authorization_code)
                 : conn.flow == Flow::client_secret;
    if (!allowed) {
        L.error(c["flow"], path + ".flow", std::string("flow ") + flow_name + " is not available for provider " + to_string(conn.provider));
        return;
    }
    for (const auto& [key, flows] : kFlowKeys) {
        bool generic_ok = conn.provider == Provider::generic && (std::string(key) == "client_id" || std::string(key) == "client_secret");
        bool google_ok = conn.provider == Provider::google && conn.flow == Flow::authorization_code &&
                         (std::string(key) == "client_id" || std::string(key) == "client_secret");
        if (c[key] && !flows.count(conn.flow) && !generic_ok && !google_ok)
            L.error(c[key], path + "." + key, std::string("is not used by flow ") + flow_name + " (remove it)");
        else if (c[key] && conn.provider != Provider::microsoft && std::string(key) == "tenant")
            L.error(c[key], path + ".tenant", std::string("is used by provider microsoft only"));
    }
    if (auto v = L.str(c, "client_id", path, conn.flow != Flow::service_account)) conn.client_id = *v;
    if (conn.provider == Provider::microsoft) {
        if (auto v = L.str(c, "tenant", path, true)) {
            conn.tenant = *v;
            bool app_only = conn.flow == Flow::client_secret || conn.flow == Flow::certificate;
            if (app_only && (*v == "common" || *v == "consumers" || *v == "organizations"))
                L.error(c["tenant"], path + ".tenant", "flow " + flow_name + " needs the tenant id or domain, not '" + *v +
                                                           "' (Azure answers AADSTS9001023)");
        }
    }
    if (conn.flow == Flow::client_secret && c["client_secret"]) conn.client_secret = L.secret(c, "client_secret", path);
    else if (conn.flow == Flow::client_secret && conn.provider != Provider::generic)
        L.error(c, path + ".client_secret", "missing: flow client_secret needs 'client_secret' ({file: PATH} or {env: NAME})");
    else if (c["client_secret"]) conn.client_secret = L.secret(c, "client_secret", path);
    if (conn.flow == Flow::certificate) {
        if (!c["certificate"] || !c["private_key"])
            L.error(c, path, "missing: flow certificate needs 'certificate' and 'private_key' (PEM files)");
        if (auto v = L.str(c, "certificate", path, false)) {
            conn.certificate_file = L.resolve(*v);
            if (auto pem = L.readable_file(c["certificate"], path + ".certificate", *v, false); pem && !pem_parses(*pem, false))
                L.error(c["certificate"], path + ".certificate", conn.certificate_file + " is not a PEM certificate");
        }
        if (auto v = L.str(c, "private_key", path, false)) {
            conn.private_key_file = L.resolve(*v);
            if (auto pem = L.readable_file(c["private_key"], path + ".private_key", *v, true); pem && !pem_parses(*pem, true))
                L.error(c["private_key"], path + ".private_key", conn.private_key_file + " is not a PEM private key");
        }
        if (auto v = L.choice<Assertion>(c, "assertion", path, {{"rs256_x5t", Assertion::rs256_x5t}, {"ps256_x5t_s256", Assertion::ps256_x5t_s256}}))
            conn.assertion = *v;
    }
    if (conn.flow == Flow::service_account) service_account_key(L, c, path, conn);

    // Derived endpoints and scopes, each overridable.
    if (conn.provider == Provider::microsoft) {
        conn.authority = L.str(c, "authority", path, false).value_or("https://login.microsoftonline.com");
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
        if (c["authority"]) L.error(c["authority"], path + ".authority", "is used by provider microsoft only");
        conn.token_url = conn.service_account.token_uri.empty() ? "https://oauth2.googleapis.com/token" : conn.service_account.token_uri;
        conn.authorize_url = "https://accounts.google.com/o/oauth2/v2/auth";
        conn.scope = kGoogleScope;
        conn.smtp = {"smtp.gmail.com", 587, UpstreamTls::starttls};
        conn.imap = {"imap.gmail.com", 993, UpstreamTls::implicit};
        conn.pop3 = {"pop.gmail.com", 995, UpstreamTls::implicit};
    } else if (c["authority"]) {
        L.error(c["authority"], path + ".authority", "is used by provider microsoft only");
    }
    bool generic = conn.provider == Provider::generic;
    if (auto v = L.str(c, "token_url", path, generic)) conn.token_url = *v;
    if (auto v = L.str(c, "scope", path, generic)) conn.scope = *v;
    if (auto v = L.str(c, "authorize_url", path, false)) conn.authorize_url = *v;
    if (auto v = L.str(c, "device_code_url", path, false)) conn.device_code_url = *v;
    if (!conn.token_url.empty() && conn.token_url.rfind("https://", 0) != 0)
        L.error(c["token_url"] ? c["token_url"] : c, path + ".token_url", "'" + conn.token_url + "' must be an https:// URL");
    if (auto u = upstream(L, c, "smtp", path)) conn.smtp = *u;
    if (auto u = upstream(L, c, "imap", path)) conn.imap = *u;
    if (auto u = upstream(L, c, "pop3", path)) conn.pop3 = *u;
    if (auto v = L.str(c, "ca_file", path, false)) {
        conn.ca_file = L.resolve(*v);
        if (auto pem = L.readable_file(c["ca_file"], path + ".ca_file", *v, false); pem && !pem_parses(*pem, false))
            L.error(c["ca_file"], path + ".ca_file", conn.ca_file + " holds no PEM certificate");
    }
    if (auto v = L.choice<SaslMechanism>(c, "sasl", path, {{"xoauth2", SaslMechanism::xoauth2}, {"oauthbearer", SaslMechanism::oauthbearer}}))
        conn.sasl = *v;
    if (auto v = L.duration_ms(c, "refresh_window", path, 0, 3000 * 1000)) conn.refresh_window = std::chrono::seconds(*v / 1000);
    cfg.connections[name] = std::move(conn);
}

}  // namespace

void load_connections(Loader& L, const YAML::Node& root, Config& cfg) {
    YAML::Node map = root["connections"];
    if (!map || !map.IsMap() || map.size() == 0) {
        L.error(map ? map : root, "connections", "at least one connection is needed (a mapping NAME: {...})");
        return;
    }
    for (auto it = map.begin(); it != map.end(); ++it) L.declared_connections.insert(it->first.as<std::string>(""));
    for (auto it = map.begin(); it != map.end(); ++it) connection(L, it->first.as<std::string>(""), it->second, cfg);
}

}  // namespace xo::config
