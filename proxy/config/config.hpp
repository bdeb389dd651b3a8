// Configuration model and loader.
// load_config() parses a YAML file into Config. It never throws for bad input:
// every problem becomes a Diagnostic "FILE:LINE: key: what is wrong", and the
// returned Config is usable only when diagnostics holds no error.
// Warnings (a literal secret in the file, say) are Diagnostics with error=false.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace xo::config {

enum class Protocol { smtp, imap, pop3 };
enum class ListenerTls { none, starttls, implicit };
enum class Provider { microsoft, google, generic };
enum class Flow { client_secret, certificate, service_account, authorization_code, device_code };
enum class Assertion { rs256_x5t, ps256_x5t_s256 };
enum class UpstreamTls { starttls, implicit };
enum class SaslMechanism { xoauth2, oauthbearer };
// How a connection's SMTP messages leave: SMTP AUTH, Microsoft Graph sendMail,
// the Gmail API, or (Microsoft) SMTP until it answers 535 5.7.139, then Graph.
enum class SendVia { smtp, graph, gmail_api, auto_ };
const char* to_string(SendVia);

const char* to_string(Protocol);
const char* to_string(Provider);
const char* to_string(Flow);

// An IPv4 or IPv6 network, "127.0.0.0/8", "::1/128" or a bare address.
struct Network {
    std::string text;      // as written, for messages
    bool v6 = false;
    unsigned char addr[16] = {};
    unsigned prefix = 0;
    bool contains(const std::string& ip) const;  // ip as text; false when unparsable
};
std::optional<Network> parse_network(const std::string& text);

enum class BareNewline { reject, normalize };   // Postfix: smtpd_forbid_bare_newline

struct Listener {
    std::string name;
    Protocol protocol = Protocol::smtp;
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    ListenerTls tls = ListenerTls::none;
    std::string cert_file, key_file;              // required unless tls: none
    bool allow_plaintext_auth = false;            // AUTH without TLS from non-loopback peers
    std::vector<Network> trusted_networks;        // smtp: senders accepted without AUTH
    std::size_t max_message_size = 50u << 20;     // smtp SIZE
    std::size_t max_sessions = 2000;              // this listener's sessions
    std::size_t max_sessions_per_client = 50;     // from one client address
    BareNewline bare_newline = BareNewline::reject;   // smtp: bare CR/LF in DATA
    std::chrono::seconds idle_timeout{300};
    std::chrono::seconds command_timeout{300};    // to send one whole command line or AUTH answer
    std::chrono::seconds data_timeout{180};       // smtp: between two chunks of a message
    std::chrono::seconds session_timeout{3600};   // a whole session before login, and a whole SMTP session
    int line;                                     // where it was declared
};

struct Upstream {
    std::string host;
    uint16_t port = 0;
    UpstreamTls tls = UpstreamTls::implicit;
    bool set() const { return port != 0; }
    std::string text() const { return host + ":" + std::to_string(port); }
};

// A secret's value, read at load time from a file, the environment or the YAML.
struct Secret {
    std::string value;
    std::string origin;   // "file /run/secrets/x", "env NAME", "literal"
    bool empty() const { return value.empty(); }
};

// Google's service account key file, parsed.
struct ServiceAccountKey {
    std::string client_email, private_key_pem, private_key_id, token_uri;
};

struct Connection {
    std::string name;
    Provider provider = Provider::microsoft;
    Flow flow = Flow::client_secret;
    std::string tenant;                           // microsoft
    std::string client_id;
    Secret client_secret;                         // client_secret flow; optional for generic/public
    std::string certificate_file, private_key_file; // certificate flow (PEM)
    Assertion assertion = Assertion::rs256_x5t;
    std::string key_file;                         // google service_account JSON key
    ServiceAccountKey service_account;            // parsed key_file
    std::string authority;                        // microsoft: https://login.microsoftonline.com
    std::string token_url;                        // derived for microsoft/google unless given
    std::string authorize_url, device_code_url;   // interactive flows (derived unless given)
    std::string scope;                            // derived from provider/flow unless given
    Upstream smtp, imap, pop3;                    // derived from provider unless given
    SaslMechanism sasl = SaslMechanism::xoauth2;
    std::string ca_file;                          // extra CA for upstream and token endpoint
    std::chrono::seconds refresh_window{300};     // renew this long before expiry
    // SMTP upstream sessions per mailbox: at most this many at once (0: no cap),
    // reused between transactions, idle at most upstream_idle, retired after
    // upstream_max_messages; a transaction waits upstream_wait for one.
    std::size_t max_upstream_sessions = 3;
    // IMAP upstream sessions per mailbox (0: no cap); a login beyond it waits
    // upstream_wait for one to end (IMAP sessions are not shared).
    std::size_t max_imap_sessions = 20;
    std::chrono::milliseconds upstream_wait{60000}, upstream_idle{30000};
    std::size_t upstream_max_messages = 100;
    long long secret_expires = 0;                 // unix time (00:00 UTC) the client secret expires; 0: not given
    SendVia send_via = SendVia::smtp;
    std::string graph_url, gmail_api_url;         // API bases (no trailing /)
    std::string api_scope;                        // the token scope for the API (derived per provider and flow)
    int line = 0;
    // The token cache's source name for the API token: the connection itself
    // when its scope covers the API (Google's mail.google.com), else NAME#api.
    std::string api_token_source() const;
    bool uses_api() const { return send_via != SendVia::smtp; }
    // true when the flow issues one token per mailbox (service account, interactive flows)
    bool token_per_mailbox() const;
    // Digests (SHA-256, hex) of what a token of this connection depends on
    // (provider, flow, tenant, app, credentials, endpoints, scope), and of what
    // an authenticated SMTP upstream session depends on (that, the upstream,
    // SASL mechanism, CA and pool limits). Equal digests across a reload: the
    // cached tokens and pooled sessions of the old configuration serve the new.
    std::string token_identity() const;
    std::string smtp_identity() const;
    std::string imap_identity() const;   // token, IMAP upstream, max_imap_sessions, upstream_wait
};

struct User {
    std::string login, password_hash, connection, mailbox;
    int line = 0;
};

// Envelope-sender mapping for trusted senders: exact address or "*@domain".
struct Sender {
    std::string pattern, connection, mailbox;   // mailbox empty: the envelope sender itself
    int line = 0;
};

struct Admin {
    std::string host = "127.0.0.1";
    uint16_t port = 0;                           // 0: no admin listener
    std::string password_hash;                   // the web console's password (scrypt); empty: no console
};

// xoauth2-milter's settings (the `milter:` section).
struct MilterSettings {
    std::string socket = "inet:8891@127.0.0.1";   // libmilter syntax: inet:PORT@HOST or unix:/path
    bool reject_unmapped = true;                  // unmapped: reject | accept
    std::string proxy_status;                     // URL of the proxy's /status; default from admin.bind
    bool tempfail_when_unreachable = true;        // proxy_unreachable: tempfail | accept
    bool align_from = false;                      // rewrite envelope and header From to the mailbox
    bool trace_header = true;                     // add X-XOAUTH2-Connection
    std::chrono::seconds status_refresh{5};
};

struct TokenSettings {
    int max_attempts = 3;                        // per fetch, with backoff
    std::chrono::milliseconds backoff{500};
    std::chrono::seconds http_timeout{30};
    std::string store = "/var/lib/xoauth2-proxy/tokens.db";  // refresh tokens (interactive flows)
    Secret redis_password;                        // redis:// stores
    std::string redis_ca_file;                    // rediss://
    std::chrono::milliseconds redis_lock_timeout{45000};
};

// tokens.store as Redis: redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://...
struct RedisUrl {
    bool tls = false;
    std::string host;
    uint16_t port = 6379;
    int db = 0;
    std::string password;   // from the URL (discouraged: use tokens.redis_password)
    std::string display() const;   // "redis://host:port/db", never the password
};
bool is_redis_url(const std::string& s);
// nullopt, with `why`, when malformed.
std::optional<RedisUrl> parse_redis_url(const std::string& s, std::string& why);

struct Config {
    std::string file;
    std::vector<Listener> listeners;
    std::map<std::string, Connection> connections;
    std::vector<User> users;
    std::vector<Sender> senders;
    Admin admin;
    TokenSettings tokens;
    MilterSettings milter;
    std::string log_level = "info";
    int io_threads = 0;   // daemon.io_threads; 0: io_threads_for() picks

    // The daemon's I/O threads on a machine with `cores` CPUs: io_threads when set, else one
    // fewer than the cores, 1 to 4. The proxy runs beside the mail software it serves, and each
    // further thread adds hand-overs between threads to every message.
    unsigned io_threads_for(unsigned cores) const;

    const User* find_user(const std::string& login) const;
    // Maps an envelope sender: exact match first, then "*@domain". nullptr when unmapped.
    const Sender* find_sender(const std::string& address) const;
    const Connection* find_connection(const std::string& name) const;
};

struct Diagnostic {
    std::string file;
    int line = 0;
    std::string key;       // dotted path: "connections.contoso.client_secret"
    std::string message;
    bool error = true;
    std::string text() const;   // "FILE:LINE: key: message"
};

struct LoadResult {
    Config config;
    std::vector<Diagnostic> diagnostics;
    bool ok() const;
};

LoadResult load_config(const std::string& path);
LoadResult load_config_string(const std::string& yaml, const std::string& name = "<string>");

// True when s looks like an e-mail address (local@domain, no spaces or angle brackets).
bool is_address(const std::string& s);

}  // namespace xo::config
