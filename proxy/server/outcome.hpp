// What the protocol machines and the sessions exchange, with no I/O here:
// the outcome of a local login, and the actions of the IMAP and POP3
// pre-authentication machines (the SMTP machine has richer ones of its own).
#pragma once
#include <string>
#include <vector>

namespace xo::server {

enum class LoginOutcome {
    ok,                     // password right, upstream open
    bad_credentials,        // unknown login or wrong password
    busy,                   // the password-hashing queue is full: try again later
    upstream_unavailable,   // password right, but no token or no upstream session
};

// What an IMAP or POP3 pre-authentication machine is told about its session.
struct PreauthConfig {
    std::string id;                 // session id, for the debug trace
    bool starttls_offered = false;  // the listener has tls: starttls
    bool tls_active = false;        // implicit TLS
    bool plaintext_auth = false;    // logins allowed without TLS (loopback or allow_plaintext_auth)
    int max_errors = 10, max_auth_failures = 3;
};

struct PreauthAction {
    enum class Kind {
        reply,       // text, with CRLF
        start_tls,   // flush, handshake; then the machine's on_tls()
        login,       // text: login, secret: password; then the machine's on_login()
        relay,       // logged in: relay the client and the upstream from now on
        close,
    };
    Kind kind;
    std::string text, secret;
};
using PreauthActions = std::vector<PreauthAction>;

// The counting every pre-authentication machine does: replies, refusals
// (too many close the session) and failed logins.
class PreauthCounter {
public:
    PreauthCounter(int max_errors, int max_auth_failures) : max_errors_(max_errors), max_auth_failures_(max_auth_failures) {}
    static void reply(PreauthActions& a, std::string text) {
        a.push_back(PreauthAction{PreauthAction::Kind::reply, std::move(text) + "\r\n", {}});
    }
    static void close(PreauthActions& a) { a.push_back(PreauthAction{PreauthAction::Kind::close, {}, {}}); }
    // An error reply; the last one allowed is followed by `bye` and a close (closed() then true).
    PreauthActions refuse(PreauthActions a, std::string text, const std::string& bye) {
        reply(a, std::move(text));
        if (++errors_ >= max_errors_) {
            reply(a, bye);
            close(a);
            closed_ = true;
        }
        return a;
    }
    // A failed login; the last one allowed is followed by `bye` and a close.
    void auth_failed(PreauthActions& a, const std::string& bye) {
        if (++auth_failures_ >= max_auth_failures_) {
            reply(a, bye);
            close(a);
            closed_ = true;
        }
    }
    bool closed() const { return closed_; }

private:
    int max_errors_, max_auth_failures_;
    int errors_ = 0, auth_failures_ = 0;
    bool closed_ = false;
};

}  // namespace xo::server
