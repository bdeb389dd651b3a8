// Configuration: a full valid config with every connection kind and its derived
// defaults; every error class names the file, the line and the key (the cases
// in data/config_errors.txt); lookups, networks, the schema and its documentation.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "auth/password.hpp"
#include "config/config.hpp"
#include "config/schema.hpp"

using namespace xo::config;

namespace {

namespace fs = std::filesystem;

std::string data(const std::string& name);
std::string read(const std::string& path);

// A temporary folder with the credential files a config refers to, made with OpenSSL.
struct Fixture {
    fs::path dir;
    std::string hash;
    Fixture() {
        dir = fs::temp_directory_path() / ("xo-config-test-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        write("secret", "s3cret\n", 0600);
        write("open-secret", "s3cret", 0644);
        write("empty-secret", "\n", 0600);
        std::string key_pem = new_key(), cert_pem = self_signed(key_pem);
        write("app.key", key_pem, 0600);
        write("open.key", key_pem, 0644);
        write("other.key", new_key(), 0600);
        write("app.crt", cert_pem, 0644);
        write("not-pem", "hello", 0600);
        write("not-pem.crt", "hello", 0644);
        std::string escaped;
        for (char c : key_pem) escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
        std::string google = R"({"type":"service_account","project_id":"p","private_key_id":"abc","private_key":")" +
                             escaped + R"(","client_email":"relay@p.iam.gserviceaccount.com",)" +
                             R"("token_uri":"https://localhost:1/google/token"})";
        write("google.json", google, 0600);
        write("open.json", google, 0640);
        write("bad.json", R"({"type":"authorized_user","client_email":"a","private_key_id":"b","private_key":"c"})", 0600);
        write("not.json", "type: service_account", 0600);
        write("partial.json", R"({"type":"service_account","private_key_id":"abc"})", 0600);
        ::setenv("XO_TEST_GMAIL_SECRET", "gmail-secret", 1);
        ::setenv("XO_TEST_EMPTY", "", 1);
        ::unsetenv("XO_TEST_SURELY_UNSET");
        hash = xo::auth::hash_password("pw");
    }
    ~Fixture() { fs::remove_all(dir); }
    static std::string drain(BIO* b) {
        char* p = nullptr;
        long n = BIO_get_mem_data(b, &p);
        std::string s(p, std::size_t(n));
        BIO_free(b);
        return s;
    }
    static std::string new_key() {
        EVP_PKEY* key = EVP_RSA_gen(2048);
        BIO* b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
        EVP_PKEY_free(key);
        return drain(b);
    }
    static std::string self_signed(const std::string& key_pem) {
        BIO* kb = BIO_new_mem_buf(key_pem.data(), int(key_pem.size()));
        EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
        BIO_free(kb);
        X509* x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char*)"app", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_sign(x, key, EVP_sha256());
        BIO* b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        X509_free(x);
        EVP_PKEY_free(key);
        return drain(b);
    }
    void write(const std::string& name, const std::string& content, mode_t mode) {
        fs::create_directories((dir / name).parent_path());
        std::ofstream(dir / name) << content;
        chmod((dir / name).c_str(), mode);
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }

    // Placeholders of base() and of the error table: fixture paths and a valid hash.
    std::string fill(std::string text) const {
        for (auto [ph, v] : std::vector<std::pair<std::string, std::string>>{
                 {"%OPENSECRET%", path("open-secret")}, {"%EMPTYSECRET%", path("empty-secret")}, {"%SECRET%", path("secret")},
                 {"%NOTPEMCERT%", path("not-pem.crt")}, {"%NOTPEM%", path("not-pem")}, {"%OPENKEY%", path("open.key")},
                 {"%OTHERKEY%", path("other.key")}, {"%KEY%", path("app.key")}, {"%CERT%", path("app.crt")},
                 {"%OPENJSON%", path("open.json")}, {"%BADJSON%", path("bad.json")}, {"%NOTJSON%", path("not.json")},
                 {"%PARTIALJSON%", path("partial.json")}, {"%GOOGLE%", path("google.json")}, {"%HASH%", hash}})
            for (auto pos = text.find(ph); pos != std::string::npos; pos = text.find(ph)) text.replace(pos, ph.size(), v);
        return text;
    }

    // The valid base config: every connection kind, a trusted-sender listener.
    std::string base() const {
        return fill(read(data("config_base.yaml")));
    }
};

Fixture& fx() {
    static Fixture f;
    return f;
}

std::string data(const std::string& name) { return std::string(XO_SOURCE_DIR) + "/tests/unit/data/" + name; }

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// `text` with line `line` (1-based) replaced by `with` (which may span lines, or be empty).
std::string replace_line(const std::string& text, int line, const std::string& with) {
    std::string out;
    std::istringstream in(text);
    int n = 1;
    for (std::string l; std::getline(in, l); ++n) out += (n == line ? with : l) + "\n";
    return out;
}

}  // namespace

TEST(Config, ValidConfigWithEveryConnectionKind) {
    auto r = load_config_string(fx().base(), "test.yaml");
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    ASSERT_TRUE(r.ok());
    const auto& c = r.config;
    ASSERT_EQ(c.connections.size(), 6u);

    const auto& ms = c.connections.at("contoso");
    EXPECT_EQ(ms.provider, Provider::microsoft);
    EXPECT_EQ(ms.flow, Flow::client_secret);
    EXPECT_EQ(ms.authority, "https://login.microsoftonline.com");
    EXPECT_EQ(ms.token_url, "https://login.microsoftonline.com/6b29fc40-ca47-1067-b31d-00dd010662da/oauth2/v2.0/token");
    EXPECT_EQ(ms.scope, "https://outlook.office365.com/.default");
    EXPECT_EQ(ms.client_secret.value, "s3cret");   // trailing newline stripped
    EXPECT_EQ(ms.client_secret.origin, "file " + fx().path("secret"));
    EXPECT_EQ(ms.smtp.text(), "smtp.office365.com:587");
    EXPECT_EQ(ms.smtp.tls, UpstreamTls::starttls);
    EXPECT_EQ(ms.imap.text(), "outlook.office365.com:993");
    EXPECT_EQ(ms.imap.tls, UpstreamTls::implicit);
    EXPECT_EQ(ms.pop3.text(), "outlook.office365.com:995");
    EXPECT_EQ(ms.sasl, SaslMechanism::xoauth2);
    EXPECT_EQ(ms.refresh_window, std::chrono::seconds(300));
    EXPECT_FALSE(ms.token_per_mailbox());
    EXPECT_EQ(ms.line, 10);

    const auto& g = c.connections.at("fabrikam");
    EXPECT_EQ(g.flow, Flow::service_account);   // google's default flow
    EXPECT_EQ(g.token_url, "https://localhost:1/google/token");   // the key file's token_uri
    EXPECT_EQ(g.service_account.client_email, "relay@p.iam.gserviceaccount.com");
    EXPECT_EQ(g.service_account.private_key_id, "abc");
    EXPECT_NE(g.service_account.private_key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(g.scope, "https://mail.google.com/");
    EXPECT_EQ(g.smtp.text(), "smtp.gmail.com:587");
    EXPECT_EQ(g.imap.text(), "imap.gmail.com:993");
    EXPECT_EQ(g.pop3.text(), "pop.gmail.com:995");
    EXPECT_EQ(g.sasl, SaslMechanism::oauthbearer);
    EXPECT_TRUE(g.token_per_mailbox());

    const auto& cert = c.connections.at("certapp");
    EXPECT_EQ(cert.assertion, Assertion::ps256_x5t_s256);
    EXPECT_EQ(cert.certificate_file, fx().path("app.crt"));
    EXPECT_EQ(cert.private_key_file, fx().path("app.key"));
    EXPECT_EQ(cert.refresh_window, std::chrono::seconds(600));
    EXPECT_EQ(cert.token_url, "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token");

    const auto& other = c.connections.at("other");
    EXPECT_EQ(other.flow, Flow::client_secret);
    EXPECT_TRUE(other.client_secret.empty());   // a public client
    EXPECT_EQ(other.token_url, "https://idp.example/token");
    EXPECT_EQ(other.scope, "mail.send");
    EXPECT_EQ(other.smtp.text(), "mail.example:2587");
    EXPECT_EQ(other.smtp.tls, UpstreamTls::starttls);
    EXPECT_FALSE(other.imap.set());   // generic: no default servers
    EXPECT_EQ(other.ca_file, fx().path("app.crt"));

    const auto& dev = c.connections.at("helpdesk");
    EXPECT_EQ(dev.flow, Flow::device_code);
    EXPECT_TRUE(dev.token_per_mailbox());
    EXPECT_EQ(dev.scope,
              "offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All "
              "https://outlook.office.com/POP.AccessAsUser.All");
    EXPECT_EQ(dev.device_code_url, "https://login.microsoftonline.us/organizations/oauth2/v2.0/devicecode");
    EXPECT_EQ(dev.authorize_url, "https://login.microsoftonline.us/organizations/oauth2/v2.0/authorize");
    EXPECT_EQ(dev.token_url, "https://login.microsoftonline.us/organizations/oauth2/v2.0/token");

    const auto& gm = c.connections.at("gmail");
    EXPECT_EQ(gm.flow, Flow::authorization_code);
    EXPECT_EQ(gm.authorize_url, "https://accounts.google.com/o/oauth2/v2/auth");
    EXPECT_EQ(gm.token_url, "https://oauth2.googleapis.com/token");
    EXPECT_EQ(gm.client_secret.value, "gmail-secret");
    EXPECT_EQ(gm.client_secret.origin, "env XO_TEST_GMAIL_SECRET");
    EXPECT_TRUE(gm.token_per_mailbox());

    ASSERT_EQ(c.listeners.size(), 2u);
    EXPECT_EQ(c.listeners[0].host, "127.0.0.1");
    EXPECT_EQ(c.listeners[0].port, 2525);
    EXPECT_TRUE(c.listeners[0].trusted_networks.empty());
    const auto& relay = c.listeners[1];
    EXPECT_EQ(relay.name, "relay-in");
    EXPECT_EQ(relay.line, 3);
    ASSERT_EQ(relay.trusted_networks.size(), 2u);
    EXPECT_TRUE(relay.trusted_networks[1].v6);
    EXPECT_EQ(relay.max_message_size, 10u << 20);
    EXPECT_EQ(relay.idle_timeout, std::chrono::seconds(120));
    ASSERT_NE(c.find_user("erp"), nullptr);
    EXPECT_EQ(c.find_user("erp")->mailbox, "erp@contoso.com");
    EXPECT_EQ(c.find_user("ERP"), nullptr);
    ASSERT_NE(c.find_connection("gmail"), nullptr);
    EXPECT_EQ(c.find_connection("nope"), nullptr);
    EXPECT_EQ(c.admin.port, 8025);
    EXPECT_EQ(c.milter.proxy_status, "http://127.0.0.1:8025/status");   // derived from admin.bind
    EXPECT_EQ(c.tokens.backoff, std::chrono::milliseconds(250));
    EXPECT_EQ(c.tokens.http_timeout, std::chrono::seconds(20));
    EXPECT_EQ(c.log_level, "debug");
}

// config/example.yaml is valid once the files it names exist: here they are
// made in the fixture folder (the paths rewritten), with the modes asked for.
TEST(Config, ExampleYamlPassesWithItsFiles) {
    std::string text = read(std::string(XO_SOURCE_DIR) + "/config/example.yaml");
    ASSERT_FALSE(text.empty());
    for (auto [from, to] : {std::pair<std::string, std::string>{"/run/secrets/", fx().path("example/run/")},
                            {"/etc/xoauth2-proxy/", fx().path("example/etc/")}})
        for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
            text.replace(pos, from.size(), to);
    auto& f = fx();
    for (const char* s : {"contoso", "partner", "gmail-client-secret"}) f.write(std::string("example/run/") + s, "x\n", 0600);
    f.write("example/run/contoso-app.key", read(f.path("app.key")), 0600);
    f.write("example/etc/contoso-app.crt", read(f.path("app.crt")), 0644);
    f.write("example/etc/partner-ca.pem", read(f.path("app.crt")), 0644);
    f.write("example/run/fabrikam-service-account.json", read(f.path("google.json")), 0600);
    ::setenv("CONTOSO_GOV_SECRET", "x", 1);
    auto r = load_config_string(text, f.path("example/config.yaml"));
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    EXPECT_TRUE(r.ok());
    EXPECT_GE(r.config.connections.size(), 6u);
    EXPECT_FALSE(r.config.senders.empty());
    bool trusted = false;
    for (const auto& l : r.config.listeners) trusted |= !l.trusted_networks.empty();
    EXPECT_TRUE(trusted);
    std::set<Flow> flows;
    for (const auto& [name, c] : r.config.connections) flows.insert(c.flow);
    EXPECT_EQ(flows.size(), 5u);   // every flow
}

// As shipped, the only errors are the files that exist on an installation alone.
TEST(Config, ExampleYamlAsShipped) {
    ::unsetenv("CONTOSO_GOV_SECRET");
    auto r = load_config(std::string(XO_SOURCE_DIR) + "/config/example.yaml");
    for (const auto& d : r.diagnostics) {
        bool installation_only = d.message.find("cannot read /") != std::string::npos ||
                                 d.message.find("environment variable CONTOSO_GOV_SECRET") != std::string::npos;
        EXPECT_TRUE(d.error && installation_only) << d.text();
    }
}

// The schema's defaults are the model's defaults, and a minimal file gets them.
TEST(Config, DefaultsOfAMinimalFile) {
    auto r = load_config_string(
        "listeners: [{name: a, bind: \"[::1]:2525\"}]\n"
        "connections:\n  c: {provider: generic, client_id: x, token_url: \"https://idp/t\", scope: s}\n",
        "min.yaml");
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    ASSERT_TRUE(r.ok());
    const auto& c = r.config;
    Listener l;
    EXPECT_EQ(c.listeners[0].host, "::1");
    EXPECT_EQ(c.listeners[0].protocol, l.protocol);
    EXPECT_EQ(c.listeners[0].tls, l.tls);
    EXPECT_EQ(c.listeners[0].allow_plaintext_auth, l.allow_plaintext_auth);
    EXPECT_EQ(c.listeners[0].max_message_size, l.max_message_size);
    EXPECT_EQ(c.listeners[0].max_sessions, l.max_sessions);
    EXPECT_EQ(c.listeners[0].idle_timeout, l.idle_timeout);
    Connection k;
    EXPECT_EQ(c.connections.at("c").refresh_window, k.refresh_window);
    EXPECT_EQ(c.connections.at("c").sasl, k.sasl);
    TokenSettings t;
    EXPECT_EQ(c.tokens.max_attempts, t.max_attempts);
    EXPECT_EQ(c.tokens.backoff, t.backoff);
    EXPECT_EQ(c.tokens.http_timeout, t.http_timeout);
    EXPECT_EQ(c.tokens.store, t.store);
    MilterSettings m;
    EXPECT_EQ(c.milter.socket, m.socket);
    EXPECT_EQ(c.milter.reject_unmapped, m.reject_unmapped);
    EXPECT_EQ(c.milter.tempfail_when_unreachable, m.tempfail_when_unreachable);
    EXPECT_EQ(c.milter.align_from, m.align_from);
    EXPECT_EQ(c.milter.trace_header, m.trace_header);
    EXPECT_EQ(c.milter.status_refresh, m.status_refresh);
    EXPECT_EQ(c.milter.proxy_status, "");   // no admin listener
    EXPECT_EQ(c.admin.port, 0);
    EXPECT_EQ(c.log_level, Config{}.log_level);
    EXPECT_EQ(c.io_threads, 0);
}

// daemon.io_threads: what is set, else one thread fewer than the cores, 1 to 4.
TEST(Config, IoThreads) {
    Config c;
    EXPECT_EQ(c.io_threads_for(0), 1u);   // hardware_concurrency() unknown
    EXPECT_EQ(c.io_threads_for(1), 1u);
    EXPECT_EQ(c.io_threads_for(2), 1u);
    EXPECT_EQ(c.io_threads_for(4), 3u);
    EXPECT_EQ(c.io_threads_for(64), 4u);
    auto r = load_config_string(
        "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
        "connections:\n  c: {provider: generic, client_id: x, token_url: \"https://idp/t\", scope: s}\n"
        "daemon: {io_threads: 6}\n",
        "threads.yaml");
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.config.io_threads, 6);
    EXPECT_EQ(r.config.io_threads_for(2), 6u);
}

// secret_expires: a date, kept as the unix time of its midnight UTC.
TEST(Config, SecretExpiresIsADate) {
    std::string text = "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
                       "connections:\n  g: {provider: generic, client_id: c, token_url: https://idp.example/t, "
                       "scope: s, secret_expires: 2027-06-30}\n";
    fx().write("expires.yaml", text, 0644);
    auto r = load_config(fx().path("expires.yaml"));
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    EXPECT_EQ(r.config.connections.at("g").secret_expires, 1814313600LL);   // date -u -d 2027-06-30 +%s
}

// tokens.store as a Redis URL: parsed, never taken as a path; the password from a secret.
TEST(Config, RedisTokenStore) {
    struct Row { const char* url; bool ok; const char* display; bool tls; int db; };
    for (const Row& t : {Row{"redis://127.0.0.1:6380/2", true, "redis://127.0.0.1:6380/2", false, 2},
                         Row{"redis://redis.internal", true, "redis://redis.internal:6379/0", false, 0},
                         Row{"rediss://:pw@[::1]:6390/1", true, "rediss://[::1]:6390/1", true, 1},
                         Row{"redis://:6379/0", false, "", false, 0},
                         Row{"redis://h:0/0", false, "", false, 0},
                         Row{"redis://h:6379/x", false, "", false, 0},
                         Row{"redis://[::1:6379", false, "", false, 0}}) {
        std::string why;
        auto u = xo::config::parse_redis_url(t.url, why);
        EXPECT_EQ(u.has_value(), t.ok) << t.url << ": " << why;
        if (!u || !t.ok) continue;
        EXPECT_EQ(u->display(), t.display);
        EXPECT_EQ(u->tls, t.tls);
        EXPECT_EQ(u->db, t.db);
        EXPECT_EQ(u->display().find("pw"), std::string::npos);
    }
    fx().write("redis.pass", "s3cret\n", 0600);
    std::string text = "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
                       "connections:\n  g: {provider: google, key_file: google.json}\n"
                       "tokens: {store: \"redis://127.0.0.1:6379/3\", redis_password: {file: redis.pass}}\n";
    fx().write("redis.yaml", text, 0644);
    auto r = load_config(fx().path("redis.yaml"));
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    EXPECT_EQ(r.config.tokens.store, "redis://127.0.0.1:6379/3");
    EXPECT_EQ(r.config.tokens.redis_password.value, "s3cret");
    std::string bad = "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
                      "connections:\n  g: {provider: google, key_file: google.json}\n"
                      "tokens: {store: \"redis://127.0.0.1:99999/0\"}\n";
    fx().write("redis-bad.yaml", bad, 0644);
    auto rb = load_config(fx().path("redis-bad.yaml"));
    ASSERT_FALSE(rb.diagnostics.empty());
    EXPECT_NE(rb.diagnostics[0].text().find("bad port '99999'"), std::string::npos) << rb.diagnostics[0].text();
    std::string misplaced = "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
                            "connections:\n  g: {provider: google, key_file: google.json}\n"
                            "tokens: {redis_password: {file: redis.pass}}\n";
    fx().write("redis-misplaced.yaml", misplaced, 0644);
    auto rm = load_config(fx().path("redis-misplaced.yaml"));
    ASSERT_FALSE(rm.diagnostics.empty());
    EXPECT_NE(rm.diagnostics[0].text().find("only with a redis://"), std::string::npos);
}

// Relative paths are taken from the config file's folder.
TEST(Config, RelativePathsFromTheFilesFolder) {
    std::string text = "listeners: [{name: a, bind: \"127.0.0.1:2525\"}]\n"
                       "connections:\n  g: {provider: google, key_file: google.json}\n"
                       "tokens: {store: state/tokens.db}\n";
    fx().write("relative.yaml", text, 0644);
    auto r = load_config(fx().path("relative.yaml"));
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    EXPECT_EQ(r.config.connections.at("g").key_file, fx().path("google.json"));
    EXPECT_EQ(r.config.tokens.store, fx().path("state/tokens.db"));
    auto missing = load_config(fx().path("no-such.yaml"));
    ASSERT_EQ(missing.diagnostics.size(), 1u);
    EXPECT_NE(missing.diagnostics[0].text().find("no-such.yaml:0: cannot read: No such file"), std::string::npos);
}

TEST(Config, LiteralSecretIsAWarningNeverShowingTheValue) {
    auto r = load_config_string(replace_line(fx().base(), 15, "    client_secret: literal-value"), "c.yaml");
    EXPECT_TRUE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u);
    const auto& d = r.diagnostics[0];
    EXPECT_FALSE(d.error);
    EXPECT_EQ(d.line, 15);
    EXPECT_EQ(d.key, "connections.contoso.client_secret");
    EXPECT_EQ(d.text().rfind("c.yaml:15: connections.contoso.client_secret: a literal secret", 0), 0u) << d.text();
    EXPECT_EQ(d.text().find("literal-value"), std::string::npos);
    EXPECT_EQ(r.config.connections.at("contoso").client_secret.value, "literal-value");
    EXPECT_EQ(r.config.connections.at("contoso").client_secret.origin, "literal");
}

TEST(Config, EveryErrorIsReportedInLineOrder) {
    std::string text = replace_line(fx().base(), 54, "log: {level: loud}");
    text = replace_line(text, 11, "    provider: nope");
    text = replace_line(text, 2, "  - {name: submission, protocol: smtq, bind: \"127.0.0.1:2525\", tls: none}");
    auto r = load_config_string(text, "c.yaml");
    std::vector<std::string> errors;
    for (const auto& d : r.diagnostics)
        if (d.error) errors.push_back(d.text());
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0], "c.yaml:2: listeners[0].protocol: 'smtq' is not one of: smtp | imap | pop3");
    EXPECT_EQ(errors[1], "c.yaml:11: connections.contoso.provider: 'nope' is not one of: microsoft | google | generic");
    EXPECT_EQ(errors[2], "c.yaml:54: log.level: 'loud' is not one of: trace | debug | info | warn | error");
}

TEST(Config, NoListenersOrNoConnections) {
    auto r = load_config_string("connections:\n  c: {provider: generic, client_id: x, token_url: \"https://i/t\", scope: s}\n",
                                "a.yaml");
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].text(), "a.yaml:1: listeners: at least one listener is needed (a list)");
    r = load_config_string("listeners: []\nconnections: {}\n", "b.yaml");
    ASSERT_EQ(r.diagnostics.size(), 2u);
    EXPECT_EQ(r.diagnostics[0].text(), "b.yaml:1: listeners: at least one listener is needed (a list)");
    EXPECT_EQ(r.diagnostics[1].text(),
              "b.yaml:2: connections: at least one connection is needed (a mapping NAME: {...})");
    r = load_config_string("", "e.yaml");
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_EQ(r.diagnostics[0].text(), "e.yaml:1: the file is empty");
    r = load_config_string("- a\n- b\n", "l.yaml");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.diagnostics[0].text(), "l.yaml:1: must be a mapping of keys, not a list");
}

TEST(Config, SenderLookupExactBeforeWildcard) {
    auto r = load_config_string(fx().base(), "c.yaml");
    ASSERT_TRUE(r.ok());
    const auto& c = r.config;
    // "*@contoso.com" is listed before "scanner@contoso.com": the exact address still wins.
    const Sender* exact = c.find_sender("Scanner@CONTOSO.com");
    ASSERT_NE(exact, nullptr);
    EXPECT_EQ(exact->connection, "certapp");
    EXPECT_EQ(exact->mailbox, "scans@contoso.com");
    const Sender* wild = c.find_sender("anyone@Contoso.COM");
    ASSERT_NE(wild, nullptr);
    EXPECT_EQ(wild->connection, "contoso");
    EXPECT_EQ(wild->mailbox, "");   // the envelope sender itself
    EXPECT_EQ(c.find_sender("x@fabrikam.com"), nullptr);
    EXPECT_EQ(c.find_sender("x@sub.contoso.com"), nullptr);   // no subdomain match
    EXPECT_EQ(c.find_sender("contoso.com"), nullptr);
    EXPECT_EQ(c.find_sender(""), nullptr);
}

TEST(Config, NetworksV4AndV6) {
    struct Case {
        const char* net;
        const char* ip;
        bool in;
    };
    for (const auto& c : std::vector<Case>{
             {"127.0.0.0/8", "127.1.2.3", true},        {"127.0.0.0/8", "128.0.0.1", false},
             {"127.0.0.0/8", "::ffff:127.0.0.1", true}, {"127.0.0.1", "127.0.0.1", true},
             {"127.0.0.1", "127.0.0.2", false},         {"10.16.0.0/12", "10.31.255.255", true},
             {"10.16.0.0/12", "10.32.0.0", false},      {"0.0.0.0/0", "203.0.113.9", true},
             {"0.0.0.0/0", "::1", false},               {"::1/128", "::1", true},
             {"::1", "::2", false},                     {"fd00::/8", "fd12::1", true},
             {"fd00::/8", "fe80::1", false},            {"2001:db8::/33", "2001:db8:7fff::1", true},
             {"2001:db8::/33", "2001:db8:8000::1", false}, {"::/0", "2001:db8::1", true},
             {"::/0", "192.0.2.1", false},              {"10.0.0.0/8", "not an ip", false}}) {
        auto n = parse_network(c.net);
        ASSERT_TRUE(n) << c.net;
        EXPECT_EQ(n->contains(c.ip), c.in) << c.net << " " << c.ip;
        EXPECT_EQ(n->text, c.net);
    }
    for (const char* bad : {"300.1.1.1", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/-1", "", "host",
                            "10.0.0.0/ 8"})
        EXPECT_FALSE(parse_network(bad)) << bad;
}

TEST(Config, Addresses) {
    for (const char* good : {"a.b@c.example", "erp@contoso.com", "x+tag@sub.example.org"}) EXPECT_TRUE(is_address(good)) << good;
    for (const char* bad : {"a@b", "<a@b.c>", "a b@c.d", "@c.d", "a@", "a@@c.d", "a@.c", "a@c.", "erp", ""})
        EXPECT_FALSE(is_address(bad)) << bad;
}

TEST(Config, EnumNamesMatchTheSchemasChoices) {
    auto flows = schema::kConnection["flow"].choice_list();
    ASSERT_EQ(flows.size(), 5u);
    for (std::size_t i = 0; i < flows.size(); ++i) EXPECT_EQ(flows[i], to_string(static_cast<Flow>(i)));
    auto providers = schema::kConnection["provider"].choice_list();
    ASSERT_EQ(providers.size(), 3u);
    for (std::size_t i = 0; i < providers.size(); ++i) EXPECT_EQ(providers[i], to_string(static_cast<Provider>(i)));
    auto protocols = schema::kListener["protocol"].choice_list();
    ASSERT_EQ(protocols.size(), 3u);
    for (std::size_t i = 0; i < protocols.size(); ++i) EXPECT_EQ(protocols[i], to_string(static_cast<Protocol>(i)));
    EXPECT_THROW(schema::kListener["no_such_key"], std::logic_error);
}

TEST(Config, SchemaDefaultsParseWithinTheirLimits) {
    for (const auto* s : schema::all_sections())
        for (const auto& k : s->keys) {
            if (k.type == schema::Type::choice) {
                auto values = k.choice_list();
                EXPECT_FALSE(values.empty()) << k.name;
                if (k.def) {
                    EXPECT_NE(std::find(values.begin(), values.end(), k.def), values.end()) << k.name;
                }
            }
            if (!k.def) continue;
            std::optional<long long> v;
            if (k.type == schema::Type::integer) v = schema::parse_integer(k.def);
            else if (k.type == schema::Type::duration) v = schema::parse_duration_ms(k.def);
            else if (k.type == schema::Type::size) v = schema::parse_size(k.def);
            else if (k.type == schema::Type::boolean) {
                EXPECT_TRUE(schema::parse_bool(k.def)) << k.name;
                continue;
            }
            else continue;
            ASSERT_TRUE(v) << s->name << "." << k.name;
            EXPECT_GE(*v, k.lo) << k.name;
            EXPECT_LE(*v, k.hi) << k.name;
        }
    EXPECT_EQ(schema::parse_duration_ms("5m"), 300000);
    EXPECT_EQ(schema::parse_duration_ms("30"), 30000);
    EXPECT_EQ(schema::parse_duration_ms("500ms"), 500);
    EXPECT_EQ(schema::parse_duration_ms("1h"), 3600000);
    EXPECT_FALSE(schema::parse_duration_ms("-5s"));
    EXPECT_FALSE(schema::parse_duration_ms("5 m"));
    EXPECT_FALSE(schema::parse_duration_ms("99999999999999s"));
    EXPECT_EQ(schema::parse_size("50M"), 52428800);
    EXPECT_EQ(schema::parse_size("50MB"), 52428800);
    EXPECT_EQ(schema::parse_size("52428800"), 52428800);
    EXPECT_FALSE(schema::parse_size("50mb"));
}

// docs/configuration.md has a table row for every key of the schema, in the
// right section, showing its default.
TEST(Config, DocsDescribeEveryKey) {
    std::ifstream in(std::string(XO_SOURCE_DIR) + "/docs/configuration.md");
    ASSERT_TRUE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string doc = ss.str();
    auto section_text = [&](const std::string& heading) {
        auto at = doc.find("\n## " + heading);
        if (at == std::string::npos) return std::string();
        auto end = doc.find("\n## ", at + 1);
        return doc.substr(at, end == std::string::npos ? std::string::npos : end - at);
    };
    const std::vector<std::pair<const schema::Section*, std::string>> where = {
        {&schema::kTop, "Sections"},           {&schema::kListener, "`listeners:`"},
        {&schema::kConnection, "`connections:`"}, {&schema::kUpstream, "`connections:`"},
        {&schema::kSecret, "`connections:`"},  {&schema::kUser, "`users:`"},
        {&schema::kSender, "`senders:`"},      {&schema::kAdmin, "`admin:`"},
        {&schema::kTokens, "`tokens:`"},       {&schema::kMilter, "`milter:`"},
        {&schema::kLog, "`log:`"},             {&schema::kDaemon, "`daemon:`"}};
    ASSERT_EQ(where.size(), schema::all_sections().size());
    for (const auto& [section, heading] : where) {
        std::string text = section_text(heading);
        ASSERT_FALSE(text.empty()) << "no section ## " << heading;
        for (const auto& k : section->keys) {
            // A table row whose first cell names the key.
            std::string row;
            std::istringstream lines(text);
            for (std::string l; std::getline(lines, l);) {
                if (l.rfind("| ", 0) != 0) continue;
                std::string first = l.substr(0, l.find(" |", 1));
                std::string cell = "`";   // appended, not "`" + s: GCC 12 -O3 -Wrestrict (bug 105329)
                cell += k.name;
                cell += '`';
                if (first.find(cell) != std::string::npos) row = l;
            }
            EXPECT_FALSE(row.empty()) << heading << ": no row for `" << k.name << "`";
            if (!row.empty() && k.def) {
                EXPECT_NE(row.find(k.def), std::string::npos) << heading << " `" << k.name << "`: default " << k.def;
            }
        }
    }
}

// ---- Every error class: "FILE:LINE: key: message", and never a secret's value.

struct ErrorCase {
    std::string name;
    int line = 0;            // line of the base to replace (0: append)
    std::string with;        // replacement (may span lines, may be empty; %PLACEHOLDERS% as in Fixture::fill)
    int expect_line = 0;
    std::string expect_key;  // empty: none
    std::string expect_text;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

// tests/unit/data/config_errors.txt; its header says the format.
std::vector<ErrorCase> error_cases() {
    std::vector<ErrorCase> out;
    std::istringstream in(read(data("config_errors.txt")));
    ErrorCase* c = nullptr;
    for (std::string l; std::getline(in, l);) {
        if (!c) {
            if (l.empty() || l[0] == '#') continue;
            ErrorCase e;
            std::string arrow;
            std::istringstream h(l);
            h >> e.name >> e.line >> arrow >> e.expect_line >> e.expect_key;
            if (arrow != "->" || !h) throw std::runtime_error("config_errors.txt: bad header: " + l);
            if (e.expect_key == "-") e.expect_key.clear();
            out.push_back(e);
            c = &out.back();
        } else if (l.empty()) {
            c = nullptr;
        } else if (l.rfind("~ ", 0) == 0 && c->expect_text.empty()) {
            c->expect_text = l.substr(2);
        } else {
            c->with += (c->with.empty() ? "" : "\n") + l;
        }
    }
    return out;
}

class ConfigErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrors, NamesFileLineAndKey) {
    const auto& c = GetParam();
    ASSERT_FALSE(c.expect_text.empty()) << c.name;
    std::string with = fx().fill(c.with);
    std::string text = c.line ? replace_line(fx().base(), c.line, with) : fx().base() + with + "\n";
    auto r = load_config_string(text, "/etc/xo/config.yaml");
    EXPECT_FALSE(r.ok());
    std::string prefix = "/etc/xo/config.yaml:" + std::to_string(c.expect_line) + ": " +
                         (c.expect_key.empty() ? std::string() : c.expect_key + ": ");
    bool found = false;
    for (const auto& d : r.diagnostics) {
        std::string t = d.text();
        EXPECT_EQ(t.find("s3cret"), std::string::npos) << t;   // a secret file's content
        EXPECT_EQ(t.find("gmail-secret"), std::string::npos) << t;
        if (d.error && d.line == c.expect_line && d.key == c.expect_key && t.rfind(prefix, 0) == 0 &&
            t.find(c.expect_text) != std::string::npos)
            found = true;
    }
    if (!found)
        for (const auto& d : r.diagnostics) ADD_FAILURE() << "got: " << d.text();
    EXPECT_TRUE(found) << "expected " << prefix << "..." << c.expect_text;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigErrors, ::testing::ValuesIn(error_cases()),
                         [](const auto& info) { return info.param.name; });
