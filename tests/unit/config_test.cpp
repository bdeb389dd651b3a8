// Configuration: every error class names the file, the line and the key; a
// full valid config with every connection kind loads with derived defaults.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "auth/password.hpp"
#include "config/config.hpp"

using namespace xo::config;
namespace fs = std::filesystem;

namespace {

// A temporary directory with the credential files a config refers to.
struct Fixture {
    fs::path dir;
    std::string hash;
    Fixture() {
        dir = fs::temp_directory_path() / ("xo-config-test-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        write("secret", "s3cret\n", 0600);
        write("open-secret", "s3cret", 0644);
        write("empty-secret", "\n", 0600);
        EVP_PKEY* key = EVP_RSA_gen(2048);
        BIO* b = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
        std::string key_pem = drain(b);
        X509* x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char*)"app", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_sign(x, key, EVP_sha256());
        b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        std::string cert_pem = drain(b);
        X509_free(x);
        EVP_PKEY_free(key);
        write("app.key", key_pem, 0600);
        write("app.crt", cert_pem, 0644);
        write("not-pem", "hello", 0600);
        std::string escaped;
        for (char c : key_pem) escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
        write("google.json", R"({"type":"service_account","project_id":"p","private_key_id":"abc","private_key":")" + escaped +
                                 R"(","client_email":"relay@p.iam.gserviceaccount.com","token_uri":"https://localhost:1/google/token"})", 0600);
        write("bad.json", R"({"type":"authorized_user"})", 0600);
        hash = xo::auth::hash_password("pw");
    }
    ~Fixture() { fs::remove_all(dir); }
    static std::string drain(BIO* b) {
        char* p = nullptr;
        long n = BIO_get_mem_data(b, &p);
        std::string s(p, n);
        BIO_free(b);
        return s;
    }
    void write(const std::string& name, const std::string& content, mode_t mode) {
        std::ofstream(dir / name) << content;
        chmod((dir / name).c_str(), mode);
    }
    std::string path(const std::string& name) const { return (dir / name).string(); }

    // The valid base config; `replace` swaps one marked line for the test's lines.
    std::string base() const {
        return "listeners:\n"                                                              // 1
               "  - {name: submission, protocol: smtp, bind: \"127.0.0.1:2525\", tls: none}\n"  // 2
               "connections:\n"                                                            // 3
               "  contoso:\n"                                                              // 4
               "    provider: microsoft\n"                                                 // 5
               "    flow: client_secret\n"                                                 // 6
               "    tenant: 6b29fc40-ca47-1067-b31d-00dd010662da\n"                        // 7
               "    client_id: 00000000-0000-0000-0000-000000000000\n"                     // 8
               "    client_secret: {file: " + path("secret") + "}\n"                       // 9
               "  fabrikam:\n"                                                             // 10
               "    provider: google\n"                                                    // 11
               "    key_file: " + path("google.json") + "\n"                               // 12
               "  certapp:\n"                                                              // 13
               "    provider: microsoft\n"                                                 // 14
               "    flow: certificate\n"                                                   // 15
               "    tenant: contoso.com\n"                                                 // 16
               "    client_id: 11111111-1111-1111-1111-111111111111\n"                     // 17
               "    certificate: " + path("app.crt") + "\n"                                // 18
               "    private_key: " + path("app.key") + "\n"                                // 19
               "  other:\n"                                                                // 20
               "    provider: generic\n"                                                   // 21
               "    client_id: generic-client\n"                                           // 22
               "    token_url: https://idp.example/token\n"                                // 23
               "    scope: mail.send\n"                                                    // 24
               "    smtp: {host: mail.example, port: 2587, tls: starttls}\n"               // 25
               "users:\n"                                                                  // 26
               "  - {login: erp, password_hash: \"" + hash + "\", connection: contoso, mailbox: erp@contoso.com}\n"  // 27
               "senders:\n"                                                                // 28
               "  - {sender: \"*@contoso.com\", connection: contoso}\n";                   // 29
    }
};

Fixture& fx() {
    static Fixture f;
    return f;
}

std::string replace_line(const std::string& text, int line, const std::string& with) {
    std::string out;
    int n = 1;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string l = text.substr(pos, nl - pos);
        out += (n == line ? with : l) + "\n";
        pos = nl == std::string::npos ? text.size() : nl + 1;
        ++n;
    }
    return out;
}

}  // namespace

TEST(Config, ValidConfigWithEveryConnectionKind) {
    auto r = load_config_string(fx().base(), "test.yaml");
    for (const auto& d : r.diagnostics) ADD_FAILURE() << d.text();
    ASSERT_TRUE(r.ok());
    const auto& c = r.config;
    ASSERT_EQ(c.connections.size(), 4u);
    const auto& ms = c.connections.at("contoso");
    EXPECT_EQ(ms.token_url, "https://login.microsoftonline.com/6b29fc40-ca47-1067-b31d-00dd010662da/oauth2/v2.0/token");
    EXPECT_EQ(ms.scope, "https://outlook.office365.com/.default");
    EXPECT_EQ(ms.client_secret.value, "s3cret");   // trailing newline stripped
    EXPECT_EQ(ms.smtp.text(), "smtp.office365.com:587");
    EXPECT_EQ(ms.smtp.tls, UpstreamTls::starttls);
    EXPECT_EQ(ms.imap.tls, UpstreamTls::implicit);
    EXPECT_EQ(ms.refresh_window, std::chrono::seconds(300));
    const auto& g = c.connections.at("fabrikam");
    EXPECT_EQ(g.flow, Flow::service_account);
    EXPECT_EQ(g.token_url, "https://localhost:1/google/token");
    EXPECT_EQ(g.service_account.client_email, "relay@p.iam.gserviceaccount.com");
    EXPECT_EQ(g.scope, "https://mail.google.com/");
    EXPECT_EQ(g.smtp.text(), "smtp.gmail.com:587");
    EXPECT_TRUE(g.token_per_mailbox());
    EXPECT_FALSE(ms.token_per_mailbox());
    EXPECT_EQ(c.connections.at("certapp").assertion, Assertion::rs256_x5t);
    EXPECT_EQ(c.connections.at("other").smtp.text(), "mail.example:2587");
    ASSERT_NE(c.find_user("erp"), nullptr);
    EXPECT_EQ(c.find_user("ERP"), nullptr);
    EXPECT_EQ(c.listeners[0].port, 2525);
}

struct ErrorCase {
    const char* name;
    int line;             // line of the base to replace (0: append)
    std::string with;     // replacement text (may span lines)
    int expect_line;
    const char* expect_key;
    const char* expect_text;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class ConfigErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrors, NamesFileLineAndKey) {
    const auto& c = GetParam();
    // Placeholders in the table: fixture file paths and a valid hash.
    std::string with = c.with;
    for (auto [ph, v] : std::vector<std::pair<std::string, std::string>>{
             {"OPEN", fx().path("open-secret")}, {"EMPTY", fx().path("empty-secret")}, {"NOTPEM", fx().path("not-pem")},
             {"BADJSON", fx().path("bad.json")}, {"HASH", fx().hash}})
        for (auto pos = with.find(ph); pos != std::string::npos; pos = with.find(ph)) with.replace(pos, ph.size(), v);
    std::string text = c.line ? replace_line(fx().base(), c.line, with) : fx().base() + with;
    auto r = load_config_string(text, "/etc/xo/config.yaml");
    EXPECT_FALSE(r.ok());
    bool found = false;
    for (const auto& d : r.diagnostics) {
        std::string t = d.text();
        if (d.error && d.line == c.expect_line && d.key == c.expect_key && t.find(c.expect_text) != std::string::npos &&
            t.rfind("/etc/xo/config.yaml:" + std::to_string(c.expect_line) + ": " +
                        (*c.expect_key ? std::string(c.expect_key) + ": " : std::string()), 0) == 0)
            found = true;
    }
    if (!found)
        for (const auto& d : r.diagnostics) ADD_FAILURE() << "got: " << d.text();
    EXPECT_TRUE(found) << "expected line " << c.expect_line << " key " << c.expect_key << " text " << c.expect_text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ConfigErrors,
    ::testing::Values(
        ErrorCase{"unknown_key", 8, "    client_id: x\n    client_secert: y", 9, "connections.contoso.client_secert",
                  "unknown key 'client_secert' (did you mean 'client_secret'?)"},
        ErrorCase{"unknown_top", 0, "listners: []\n", 30, "listners", "unknown key 'listners' (did you mean 'listeners'?)"},
        ErrorCase{"bad_enum", 5, "    provider: microsoft365", 5, "connections.contoso.provider",
                  "'microsoft365' is not one of: microsoft | google | generic"},
        ErrorCase{"missing_secret", 9, "    scope: https://outlook.office365.com/.default", 5, "connections.contoso.client_secret",
                  "flow client_secret needs 'client_secret'"},
        ErrorCase{"missing_cert", 18, "    assertion: rs256_x5t", 14, "connections.certapp",
                  "flow certificate needs 'certificate' and 'private_key'"},
        ErrorCase{"key_for_wrong_flow", 8, "    client_id: x\n    key_file: /nonexistent.json", 9, "connections.contoso.key_file",
                  "is not used by flow client_secret"},
        ErrorCase{"unreadable_secret", 9, "    client_secret: {file: /nonexistent/secret}", 9,
                  "connections.contoso.client_secret.file", "cannot read /nonexistent/secret: No such file or directory"},
        ErrorCase{"open_secret", 9, "    client_secret: {file: OPEN}", 9, "connections.contoso.client_secret.file",
                  "has mode 0644: a secret must not be readable by group or others; chmod 600"},
        ErrorCase{"empty_secret", 9, "    client_secret: {file: EMPTY}", 9, "connections.contoso.client_secret.file", "is empty"},
        ErrorCase{"unset_env", 9, "    client_secret: {env: XO_TEST_SURELY_UNSET}", 9, "connections.contoso.client_secret.env",
                  "environment variable XO_TEST_SURELY_UNSET is not set"},
        ErrorCase{"not_pem_key", 19, "    private_key: NOTPEM", 19, "connections.certapp.private_key", "is not a PEM private key"},
        ErrorCase{"unreadable_key_file", 12, "    key_file: /nonexistent/google.json", 12, "connections.fabrikam.key_file",
                  "cannot read /nonexistent/google.json"},
        ErrorCase{"bad_google_key", 12, "    key_file: BADJSON", 12, "connections.fabrikam.key_file",
                  "\"type\" is not \"service_account\""},
        ErrorCase{"common_tenant", 7, "    tenant: common", 7, "connections.contoso.tenant", "AADSTS9001023"},
        ErrorCase{"upstream_port", 25, "    smtp: mail.example:2525", 25, "connections.other.smtp", "has no well-known TLS mode"},
        ErrorCase{"generic_missing_url", 23, "", 21, "connections.other.token_url", "missing (required)"},
        ErrorCase{"mailbox_not_address", 27, "  - {login: erp, password_hash: \"HASH\", connection: contoso, mailbox: erp}", 27,
                  "users[0].mailbox", "'erp' is not an e-mail address"},
        ErrorCase{"unknown_connection", 27, "  - {login: erp, password_hash: \"HASH\", connection: nope, mailbox: erp@contoso.com}", 27,
                  "users[0].connection", "no connection named 'nope'"},
        ErrorCase{"bad_hash", 27, "  - {login: erp, password_hash: \"plain\", connection: contoso, mailbox: erp@contoso.com}", 27,
                  "users[0].password_hash", "not a password hash"},
        ErrorCase{"bad_bind", 2, "  - {name: submission, protocol: smtp, bind: \"127.0.0.1\", tls: none}", 2, "listeners[0].bind",
                  "'127.0.0.1' is not HOST:PORT"},
        ErrorCase{"tls_without_cert", 2, "  - {name: submission, protocol: smtp, bind: \"127.0.0.1:2525\", tls: starttls}", 2,
                  "listeners[0].cert_file", "missing (required)"},
        ErrorCase{"bad_network", 2, "  - {name: s, protocol: smtp, bind: \"127.0.0.1:2525\", trusted_networks: [10.0.0.0/33]}", 2,
                  "listeners[0].trusted_networks[0]", "is not a network"},
        ErrorCase{"bad_sender", 29, "  - {sender: \"contoso.com\", connection: contoso}", 29, "senders[0].sender",
                  "neither an address nor *@domain"},
        ErrorCase{"bad_duration", 8, "    client_id: x\n    refresh_window: soon", 9, "connections.contoso.refresh_window",
                  "'soon' is not a duration"},
        ErrorCase{"yaml_syntax", 5, "    provider: [microsoft", 6, "", "YAML syntax"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Config, DuplicateLogin) {
    std::string text = fx().base() + "";
    std::string user = "  - {login: erp, password_hash: \"" + fx().hash + "\", connection: contoso, mailbox: b@contoso.com}\n";
    text = replace_line(text, 27, "  - {login: erp, password_hash: \"" + fx().hash +
                                      "\", connection: contoso, mailbox: erp@contoso.com}\n" + user.substr(0, user.size() - 1));
    auto r = load_config_string(text, "c.yaml");
    ASSERT_FALSE(r.ok());
    bool found = false;
    for (const auto& d : r.diagnostics) found |= d.text() == "c.yaml:28: users[1].login: duplicate login 'erp'";
    EXPECT_TRUE(found);
}

TEST(Config, LiteralSecretIsAWarningAndAllErrorsAreReported) {
    auto r = load_config_string(replace_line(fx().base(), 9, "    client_secret: literal-value"), "c.yaml");
    EXPECT_TRUE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1u);
    EXPECT_FALSE(r.diagnostics[0].error);
    EXPECT_EQ(r.diagnostics[0].line, 9);
    EXPECT_EQ(r.diagnostics[0].text().find("literal-value"), std::string::npos);   // never the secret itself
    // Two independent errors: both reported.
    std::string two = replace_line(replace_line(fx().base(), 5, "    provider: nope"), 11, "    provider: gogle");
    auto r2 = load_config_string(two, "c.yaml");
    int errors = 0;
    for (const auto& d : r2.diagnostics) errors += d.error;
    EXPECT_EQ(errors, 2);
}

TEST(Config, SenderLookupAndNetworks) {
    auto r = load_config_string(fx().base() + "  - {sender: boss@contoso.com, connection: other, mailbox: ceo@contoso.com}\n", "c.yaml");
    ASSERT_TRUE(r.ok());
    const Sender* exact = r.config.find_sender("Boss@Contoso.com");
    ASSERT_NE(exact, nullptr);
    EXPECT_EQ(exact->connection, "other");
    const Sender* wild = r.config.find_sender("anyone@contoso.com");
    ASSERT_NE(wild, nullptr);
    EXPECT_EQ(wild->connection, "contoso");
    EXPECT_EQ(r.config.find_sender("x@fabrikam.com"), nullptr);
    auto n = parse_network("127.0.0.0/8");
    ASSERT_TRUE(n);
    EXPECT_TRUE(n->contains("127.1.2.3"));
    EXPECT_TRUE(n->contains("::ffff:127.0.0.1"));
    EXPECT_FALSE(n->contains("128.0.0.1"));
    auto v6 = parse_network("fd00::/8");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->contains("fd12::1"));
    EXPECT_FALSE(v6->contains("fe80::1"));
    EXPECT_FALSE(parse_network("300.1.1.1"));
    EXPECT_TRUE(is_address("a.b@c.example"));
    EXPECT_FALSE(is_address("a@b"));
    EXPECT_FALSE(is_address("<a@b.c>"));
}

// config/example.yaml is valid apart from the credential files it names, which
// exist only on a real installation.
TEST(Config, ExampleYamlIsValidButForMissingFiles) {
    auto r = load_config(std::string(XO_SOURCE_DIR) + "/config/example.yaml");
    int errors = 0;
    for (const auto& d : r.diagnostics) {
        if (!d.error) continue;
        ++errors;
        bool missing_file = d.message.find("cannot read /") != std::string::npos ||
                            d.message.find("environment variable") != std::string::npos;
        EXPECT_TRUE(missing_file) << d.text();
    }
    EXPECT_GT(errors, 0);
}
