#include "smtp/machine.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "sasl/sasl.hpp"
#include "util/base64.hpp"
#include "util/text.hpp"

namespace xo::smtp {

const char* to_string(State s) {
    switch (s) {
        case State::connected: return "connected";
        case State::greeted: return "greeted";
        case State::auth: return "auth";
        case State::mail: return "mail";
        case State::rcpt: return "rcpt";
        case State::data: return "data";
        case State::closed: return "closed";
    }
    return "?";
}

namespace {
constexpr unsigned bit(State s) { return 1u << unsigned(s); }
constexpr unsigned kSession = bit(State::connected) | bit(State::greeted) | bit(State::mail) | bit(State::rcpt);
constexpr unsigned kTransaction = bit(State::mail) | bit(State::rcpt);

bool is_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}
}  // namespace

// The command table (OpenSMTPD's smtp_session.c, Postfix's smtpd_cmd_table):
// a verb is refused with refusal() in a state outside `allowed`.
struct Machine::CommandSpec {
    Verb verb;
    unsigned allowed;
    Actions (Machine::*proceed)(const ParsedCommand&);
};

namespace {
// Why a verb is refused in a state where the table does not allow it.
std::string refusal(Verb v, State s) {
    switch (v) {
        case Verb::Auth:
            if (s == State::connected) return "503 5.5.1 Send EHLO first";
            return "503 5.5.1 AUTH not allowed during a mail transaction";
        case Verb::Mail:
            if (s == State::connected) return "503 5.5.1 Send EHLO/HELO first";
            return "503 5.5.1 Nested MAIL command";
        case Verb::Rcpt: return "503 5.5.1 Need MAIL before RCPT";
        case Verb::Data: return "503 5.5.1 Need MAIL command";
        case Verb::Bdat: return "502 5.5.1 BDAT not supported";
        default: return "503 5.5.1 Bad sequence of commands";
    }
}
}  // namespace

struct Machine::Table {
    static const CommandSpec* get(std::size_t& n) {
        static const CommandSpec kCommands[] = {
            {Verb::Ehlo, kSession, &Machine::helo},
            {Verb::Helo, kSession, &Machine::helo},
            {Verb::Starttls, kSession, &Machine::starttls},
            {Verb::Auth, bit(State::greeted), &Machine::auth},
            {Verb::Mail, bit(State::greeted), &Machine::mail},
            {Verb::Rcpt, kTransaction, &Machine::rcpt},
            {Verb::Data, kTransaction, &Machine::data},
            {Verb::Rset, kSession, &Machine::rset},
            {Verb::Noop, kSession, &Machine::noop},
            {Verb::Vrfy, kSession, &Machine::vrfy},
            {Verb::Help, kSession, &Machine::help},
            {Verb::Quit, kSession, &Machine::quit},
            {Verb::Bdat, 0, nullptr},
        };
        n = sizeof kCommands / sizeof kCommands[0];
        return kCommands;
    }
};

Machine::Machine(MachineConfig cfg) : cfg_(std::move(cfg)), tls_active_(cfg_.tls_active) {}

void Machine::enter_state(State s) {
    if (s == state_) return;
    spdlog::debug("session {} smtp {} -> {}", cfg_.id, to_string(state_), to_string(s));
    state_ = s;
}

void Machine::reply(Actions& a, std::string text) const {
    text += "\r\n";
    a.push_back(Action{Action::Kind::reply, std::move(text), {}, Pending::rset});
}

void Machine::relay(Actions& a, std::string wire) const {
    a.push_back(Action{Action::Kind::relay, std::move(wire), {}, Pending::rset});
}

void Machine::forward(Actions& a, std::string line, Pending p) {
    line += "\r\n";
    a.push_back(Action{Action::Kind::forward, std::move(line), {}, p});
    pending_.push_back(p);
}

Actions Machine::refuse(Actions a, std::string text) {
    reply(a, std::move(text));
    if (++errors_ >= cfg_.max_errors) {
        reply(a, "421 4.7.0 Too many errors, closing connection");
        a.push_back(Action{Action::Kind::close, {}, {}, Pending::rset});
        enter_state(State::closed);
    }
    return a;
}

// EHLO, HELO, STARTTLS and RSET inside a transaction: the upstream holds the
// transaction too, and must forget it (else every later MAIL is "nested").
void Machine::reset_upstream_transaction(Actions& a) {
    if (upstream_txn_) forward(a, "RSET", Pending::rset);
    upstream_txn_ = false;
    recipients_ = 0;
}

Actions Machine::start() {
    Actions a;
    reply(a, "220 " + cfg_.hostname + " ESMTP xoauth2-proxy");
    return a;
}

bool Machine::wants_sync(std::string_view line) const {
    if (pending_.empty()) return false;
    if (state_ == State::auth || state_ == State::data) return true;
    Verb v = parse_command(line).verb;
    return v != Verb::Rcpt && v != Verb::Data;
}

Actions Machine::on_line(std::string_view line) {
    if (state_ == State::closed || state_ == State::data) return {};
    if (state_ == State::auth) return auth_response(line);
    ParsedCommand cmd = parse_command(line);
    if (!cmd.error.empty()) return refuse({}, cmd.error);
    if (cmd.verb == Verb::Unknown) return refuse({}, "500 5.5.2 Command not recognized");
    std::size_t n = 0;
    const CommandSpec* table = Table::get(n);
    for (std::size_t i = 0; i < n; ++i) {
        const CommandSpec& spec = table[i];
        if (spec.verb != cmd.verb) continue;
        if (!(spec.allowed & bit(state_)) || !spec.proceed) return refuse({}, refusal(cmd.verb, state_));
        return (this->*spec.proceed)(cmd);
    }
    return refuse({}, "500 5.5.2 Command not recognized");
}

unsigned Machine::allowed_states(Verb v) {
    std::size_t n = 0;
    const CommandSpec* t = Table::get(n);
    for (std::size_t i = 0; i < n; ++i)
        if (t[i].verb == v) return t[i].allowed;
    return 0;
}

Actions Machine::on_line_too_long() {
    if (state_ == State::auth) {
        enter_state(State::greeted);
        return refuse({}, "500 5.5.6 Authentication exchange line is too long");
    }
    return refuse({}, "500 5.5.6 Line too long");
}

std::string Machine::ehlo_reply(bool extended) const {
    if (!extended) return "250 " + cfg_.hostname;
    std::string r = "250-" + cfg_.hostname + " greets you\r\n250-PIPELINING\r\n250-SIZE " +
                    std::to_string(cfg_.max_message_size) + "\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n";
    if (upstream_smtputf8_) r += "250-SMTPUTF8\r\n";
    if (cfg_.starttls_offered && !tls_active_) r += "250-STARTTLS\r\n";
    if (auth_allowed() && !authenticated_) r += "250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n";
    return r + "250 HELP";
}


Actions Machine::helo(const ParsedCommand& c) {
    if (c.arg.empty())
        return refuse({}, std::string("501 5.5.4 Syntax: ") + (c.verb == Verb::Ehlo ? "EHLO" : "HELO") + " hostname");
    Actions a;
    reset_upstream_transaction(a);
    enter_state(State::greeted);
    reply(a, ehlo_reply(c.verb == Verb::Ehlo));
    return a;
}

Actions Machine::starttls(const ParsedCommand&) {
    if (!cfg_.starttls_offered || tls_active_) return refuse({}, "502 5.5.1 STARTTLS not available");
    Actions a;
    reset_upstream_transaction(a);
    reply(a, "220 2.0.0 Ready to start TLS");
    a.push_back(Action{Action::Kind::start_tls, {}, {}, Pending::rset});
    return a;
}

Actions Machine::on_tls(bool ok) {
    Actions a;
    if (!ok) {
        a.push_back(Action{Action::Kind::close, {}, {}, Pending::rset});
        enter_state(State::closed);
        return a;
    }
    // RFC 3207 section 4.2: forget everything learnt before TLS (HELO, AUTH).
    tls_active_ = true;
    if (authenticated_) a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});
    authenticated_ = false;
    enter_state(State::connected);
    return a;
}

Actions Machine::auth(const ParsedCommand& c) {
    if (authenticated_) return refuse({}, "503 5.5.1 Already authenticated");
    if (!auth_allowed()) return refuse({}, "538 5.7.11 Encryption required for requested authentication mechanism");
    sasl::MechanismArg m = sasl::split_mechanism(c.arg);
    Actions a;
    if (m.mechanism == "PLAIN") {
        if (m.has_initial) return auth_response(m.initial);   // handled as the answer to "334 "
        auth_step_ = AuthStep::plain;
        enter_state(State::auth);
        reply(a, "334 ");
        return a;
    }
    if (m.mechanism == "LOGIN") {
        enter_state(State::auth);
        if (m.has_initial) {
            auth_step_ = AuthStep::login_user;
            return auth_response(m.initial);
        }
        auth_step_ = AuthStep::login_user;
        reply(a, std::string("334 ") + sasl::kLoginUsernamePrompt);
        return a;
    }
    return refuse({}, "504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)");
}

Actions Machine::auth_response(std::string_view line) {
    enter_state(State::greeted);
    if (sasl::is_cancel(line)) return refuse({}, "501 5.0.0 Authentication cancelled");
    switch (auth_step_) {
        case AuthStep::plain: {
            auto creds = sasl::decode_plain(line);
            if (!creds) return refuse({}, "501 5.5.2 Cannot decode AUTH PLAIN response");
            return finish_auth(creds->authcid, creds->password);
        }
        case AuthStep::login_user: {
            auto u = sasl::decode_login_field(line);
            if (!u) return refuse({}, "501 5.5.2 Cannot decode AUTH LOGIN response");
            auth_user_ = *u;
            auth_step_ = AuthStep::login_pass;
            enter_state(State::auth);
            Actions a;
            reply(a, std::string("334 ") + sasl::kLoginPasswordPrompt);
            return a;
        }
        case AuthStep::login_pass: {
            auto p = sasl::decode_login_field(line);
            if (!p) return refuse({}, "501 5.5.2 Cannot decode AUTH LOGIN response");
            return finish_auth(std::move(auth_user_), *p);
        }
    }
    return {};
}

Actions Machine::finish_auth(std::string login, std::string password) {
    auth_user_.clear();
    if (!util::valid_utf8(login)) return refuse({}, "501 5.5.2 The login name is not valid UTF-8");
    Actions a;
    a.push_back(Action{Action::Kind::login, std::move(login), std::move(password), Pending::rset});
    return a;
}

Actions Machine::on_login(LoginOutcome outcome, std::string_view mailbox) {
    Actions a;
    switch (outcome) {
        case LoginOutcome::ok:
            authenticated_ = true;
            reply(a, "235 2.7.0 Authentication successful");
            return a;
        case LoginOutcome::busy:
            reply(a, "454 4.7.0 Temporary authentication failure: server busy, try again later");
            return a;
        case LoginOutcome::upstream_unavailable:
            // The password was right: the fault is upstream, and the client must keep its message.
            reply(a, "454 4.7.0 Temporary authentication failure: upstream unavailable for " + std::string(mailbox));
            return a;
        case LoginOutcome::bad_credentials: break;
    }
    reply(a, "535 5.7.8 Authentication credentials invalid");
    if (++auth_failures_ >= cfg_.max_auth_failures) {
        reply(a, "421 4.7.0 Too many authentication failures, closing connection");
        a.push_back(Action{Action::Kind::close, {}, {}, Pending::rset});
        enter_state(State::closed);
    }
    return a;
}

Actions Machine::mail(const ParsedCommand& c) {
    auto path = parse_mail_from(c.arg);
    if (!path.ok()) return refuse({}, path.error);
    const std::string& from = path.path.address;
    if (!util::valid_utf8(from)) return refuse({}, "553 5.6.7 The sender address is not valid UTF-8");
    std::string params;
    bool utf8 = false;
    for (const auto& [k, v] : path.path.params) {
        if (k == "SIZE" && std::strtoull(v.c_str(), nullptr, 10) > cfg_.max_message_size) {
            Actions a;
            reply(a, "552 5.3.4 Message size exceeds fixed maximum message size" +
                         (size_note_.empty() ? std::string() : " " + size_note_));
            return a;
        }
        if (k == "SMTPUTF8") utf8 = true;
        if (k == "AUTH") continue;   // our AUTH identity is not the upstream's
        params += " " + k + (v.empty() ? "" : "=" + v);
    }
    if (!is_ascii(params)) return refuse({}, "501 5.5.4 MAIL parameters must be ASCII");
    if (!is_ascii(from) && !utf8) return refuse({}, "553 5.6.7 An 8-bit address needs MAIL FROM ... SMTPUTF8 (RFC 6531)");
    if (!authenticated_ && !cfg_.trusted) {
        Actions a;
        reply(a, "530 5.7.0 Authentication required");
        return a;
    }
    held_mail_ = "MAIL FROM:<" + from + ">" + params;
    held_utf8_ = utf8;
    held_8bit_ = !is_ascii(from);
    Actions a;
    a.push_back(Action{Action::Kind::prepare_mail, from, {}, Pending::rset});
    return a;
}

Actions Machine::on_prepared(bool ok, std::string_view refusal_text, bool smtputf8) {
    Actions a;
    upstream_smtputf8_ = smtputf8;
    if (!ok) {
        reply(a, std::string(refusal_text));
        return a;
    }
    if (held_8bit_ && !smtputf8) {
        reply(a, "553 5.6.7 The upstream server does not support SMTPUTF8");
        return a;
    }
    if (held_utf8_ && !smtputf8) {
        reply(a, "555 5.6.7 The upstream server does not support SMTPUTF8");
        return a;
    }
    txn_utf8_ = held_utf8_;
    upstream_txn_ = true;
    recipients_ = 0;
    forward(a, std::move(held_mail_), Pending::mail);
    held_mail_.clear();
    enter_state(State::mail);
    return a;
}

Actions Machine::rcpt(const ParsedCommand& c) {
    auto path = parse_rcpt_to(c.arg);
    if (!path.ok()) return refuse({}, path.error);
    const std::string& to = path.path.address;
    if (!util::valid_utf8(to)) return refuse({}, "553 5.6.7 The recipient address is not valid UTF-8");
    if (!is_ascii(to) && !txn_utf8_) return refuse({}, "553 5.6.7 An 8-bit address needs MAIL FROM ... SMTPUTF8 (RFC 6531)");
    std::string params;
    for (const auto& [k, v] : path.path.params) params += " " + k + (v.empty() ? "" : "=" + v);
    if (!is_ascii(params)) return refuse({}, "501 5.5.4 RCPT parameters must be ASCII");
    Actions a;
    forward(a, "RCPT TO:<" + to + ">" + params, Pending::rcpt);
    return a;
}

Actions Machine::data(const ParsedCommand&) {
    bool pipelined = false;
    for (Pending p : pending_) pipelined |= p == Pending::mail || p == Pending::rcpt;
    // Pipelined MAIL/RCPT/DATA: DATA goes with them and the upstream decides
    // (it answers 554/503 itself when no recipient was accepted).
    if (!pipelined && recipients_ == 0) {
        Actions a;
        reply(a, "554 5.5.1 No valid recipients");
        return a;
    }
    Actions a;
    if (pending_.empty() && upstream_chunking_) {
        // Every recipient's reply is in (a client in lockstep, as most printers send) and the
        // upstream takes BDAT: 354 from here, and the message goes up as BDAT ... LAST without
        // the round trip DATA's 354 costs. The final reply is still the upstream's. (A message
        // too large to hold goes up after DATA after all; a refusal of that DATA becomes the
        // reply at the end of data.)
        relay(a, "354 End data with <CR><LF>.<CR><LF>\r\n");
        a.push_back(Action{Action::Kind::begin_data, "DATA\r\n", {}, Pending::rset});
        enter_state(State::data);
        return a;
    }
    forward(a, "DATA", Pending::data);
    return a;
}

Actions Machine::rset(const ParsedCommand&) {
    Actions a;
    reset_upstream_transaction(a);
    if (state_ != State::connected) enter_state(State::greeted);
    reply(a, "250 2.0.0 Ok");
    return a;
}

Actions Machine::noop(const ParsedCommand&) {
    Actions a;
    reply(a, "250 2.0.0 Ok");
    return a;
}

Actions Machine::vrfy(const ParsedCommand&) {
    Actions a;
    reply(a, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
    return a;
}

Actions Machine::help(const ParsedCommand&) {
    Actions a;
    reply(a, "214 2.0.0 Commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS");
    return a;
}

Actions Machine::quit(const ParsedCommand&) {
    Actions a;
    reply(a, "221 2.0.0 Bye");
    a.push_back(Action{Action::Kind::close, {}, {}, Pending::rset});
    enter_state(State::closed);
    return a;
}

}  // namespace xo::smtp
