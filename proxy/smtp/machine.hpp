// The SMTP server dialogue as a pure state machine, no I/O: the session feeds
// it the client's lines and the results of what it asked for (a login check,
// an upstream reply, the end of a message) and carries out the actions it
// returns, in order. Commands sit in one table {verb, allowed states,
// proceed}; every transition goes through enter_state(). The machine never
// throws on input: bad bytes become replies.
#pragma once
#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "server/outcome.hpp"
#include "smtp/parser.hpp"

namespace xo::smtp {

enum class State { connected, greeted, auth, mail, rcpt, data, closed };
const char* to_string(State s);

enum class BareNewline { reject, normalize };   // Postfix's smtpd_forbid_bare_newline

struct MachineConfig {
    std::string id;                  // session id, for the debug trace
    std::string hostname;
    bool starttls_offered = false;   // the listener has tls: starttls
    bool tls_active = false;         // implicit TLS
    bool plaintext_auth = false;     // AUTH allowed without TLS (loopback or allow_plaintext_auth)
    bool trusted = false;            // a trusted network: MAIL without AUTH, mapped by sender
    std::size_t max_message_size = 50u << 20;
    BareNewline bare_newline = BareNewline::reject;
    int max_errors = 10, max_auth_failures = 3;
};

// What a forwarded command's reply will mean when it arrives.
enum class Pending : char { mail, rcpt, data, rset };

struct Action {
    enum class Kind {
        reply,          // text: reply lines with CRLF, for the client, after the replies still pending
        relay,          // text: the reply to a forwarded command (in its place already)
        start_tls,      // flush, then the server-side handshake; then on_tls()
        login,          // text: login, secret: password; check locally, open the upstream; then on_login()
        prepare_mail,   // text: the sender; make sure an upstream is open for it; then on_prepared()
        forward,        // text: a command line for the upstream; its reply comes to on_upstream()
        drop_upstream,  // close the upstream session (its state no longer matches the client's)
        begin_data,     // stream the message (after the 354); then on_data_end(). With text
                        // ("DATA\r\n": the client had its 354 from here, nothing went upstream):
                        // the session sends the message as BDAT, or sends DATA and relays the
                        // message only after the upstream's 354, any other reply to DATA being
                        // the reply at the end of data (DataEnd::refused_at_data)
        close,          // flush and end the session
    };
    Kind kind;
    std::string text;
    std::string secret;
    Pending pending = Pending::rset;   // forward only
};
using Actions = std::vector<Action>;

using server::LoginOutcome;

struct DataEnd {
    enum class Kind { relayed, too_big, bare_newline, upstream_lost, refused_at_data } kind = Kind::relayed;
    Reply reply;   // relayed: the upstream's final reply; refused_at_data: its reply to DATA
};

class Machine {
public:
    explicit Machine(MachineConfig cfg);

    Actions start();   // the greeting
    // A line the client sent (without CRLF), or a line over max_line().
    Actions on_line(std::string_view line);
    Actions on_line_too_long();
    // True when the upstream's replies to earlier forwards must be read before
    // `line` is fed (only RCPT and DATA ride in a pipelined group).
    bool wants_sync(std::string_view line) const;
    std::size_t max_line() const { return state_ == State::auth ? kMaxAuthLine : kMaxCommandLine; }

    Actions on_tls(bool ok);
    Actions on_login(LoginOutcome outcome, std::string_view mailbox);
    // After prepare_mail: ok, or the refusal to send (4xx/5xx line without CRLF).
    // `smtputf8`: the upstream offers SMTPUTF8.
    Actions on_prepared(bool ok, std::string_view refusal, bool smtputf8);
    Actions on_upstream(const Reply& r);   // the reply to the oldest forward
    Actions on_upstream_lost();            // every forward still waiting fails
    Actions on_data_end(const DataEnd& end);
    void set_upstream_smtputf8(bool on) { upstream_smtputf8_ = on; }
    // The upstream offers CHUNKING (RFC 3030) and PIPELINING: a client in lockstep gets its 354 at
    // once and the message goes up as BDAT, one round trip to the upstream fewer (see data()).
    void set_upstream_chunking(bool on) { upstream_chunking_ = on; }
    // The login's path has a lower limit (Graph sendMail: 3 MiB): SIZE and MAIL ... SIZE= follow it.
    // `note` follows the 552 to MAIL ... SIZE= ("(the limit of Microsoft Graph sendMail: N bytes)").
    void set_max_message_size(std::size_t n, std::string note = "") {
        cfg_.max_message_size = n;
        size_note_ = std::move(note);
    }

    State state() const { return state_; }
    bool closed() const { return state_ == State::closed; }
    bool authenticated() const { return authenticated_; }
    bool has_pending() const { return !pending_.empty(); }
    // A MAIL went upstream and its transaction has not ended there (DATA's reply, RSET, a
    // refused MAIL): the upstream session must not serve another client in this state.
    bool upstream_transaction() const { return upstream_txn_; }
    // DATA ends a pipelined group: its reply must be read before anything else.
    bool must_resolve() const { return !pending_.empty() && pending_.back() == Pending::data; }
    bool tls_active() const { return tls_active_; }
    bool bare_newline_allowed() const { return cfg_.bare_newline == BareNewline::normalize; }
    std::size_t max_message_size() const { return cfg_.max_message_size; }
    uint64_t messages() const { return messages_; }

    struct CommandSpec;
    struct Table;   // the command table, in machine.cpp
    static unsigned allowed_states(Verb v);   // the table's bit mask (1 << State)

private:
    void enter_state(State s);
    Actions refuse(Actions a, std::string text);   // an error reply, counted; too many close the session
    void reply(Actions& a, std::string text) const;
    void relay(Actions& a, std::string wire) const;
    void forward(Actions& a, std::string line, Pending p);
    void reset_upstream_transaction(Actions& a);
    bool auth_allowed() const { return tls_active_ || cfg_.plaintext_auth; }
    std::string ehlo_reply(bool extended) const;
    Actions finish_auth(std::string login, std::string password);

    Actions helo(const ParsedCommand& c);
    Actions starttls(const ParsedCommand& c);
    Actions auth(const ParsedCommand& c);
    Actions auth_response(std::string_view line);
    Actions mail(const ParsedCommand& c);
    Actions rcpt(const ParsedCommand& c);
    Actions data(const ParsedCommand& c);
    Actions rset(const ParsedCommand& c);
    Actions noop(const ParsedCommand& c);
    Actions vrfy(const ParsedCommand& c);
    Actions help(const ParsedCommand& c);
    Actions quit(const ParsedCommand& c);

    MachineConfig cfg_;
    State state_ = State::connected;
    bool tls_active_ = false, authenticated_ = false, upstream_smtputf8_ = false, upstream_chunking_ = false;
    bool upstream_txn_ = false;       // a MAIL went upstream and no end of transaction since
    bool txn_utf8_ = false;           // MAIL had SMTPUTF8
    std::deque<Pending> pending_;
    enum class AuthStep { plain, login_user, login_pass } auth_step_ = AuthStep::plain;
    std::string auth_user_;
    std::string held_mail_;           // the MAIL line, sent once prepare_mail succeeded
    std::string size_note_;
    bool held_utf8_ = false, held_8bit_ = false;
    int recipients_ = 0, errors_ = 0, auth_failures_ = 0;
    uint64_t messages_ = 0;
};

}  // namespace xo::smtp
