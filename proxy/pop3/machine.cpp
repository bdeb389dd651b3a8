#include "pop3/machine.hpp"

#include <spdlog/spdlog.h>

#include "sasl/sasl.hpp"
#include "util/text.hpp"

namespace xo::pop3 {

const char* to_string(State s) {
    switch (s) {
        case State::authorization: return "authorization";
        case State::auth: return "auth";
        case State::login: return "login";
        case State::transaction: return "transaction";
        case State::closed: return "closed";
    }
    return "?";
}

struct Machine::CommandSpec {
    const char* verb;
    unsigned allowed;
    Actions (Machine::*proceed)(const Command&);
};

namespace {
constexpr unsigned bit(State s) { return 1u << unsigned(s); }
constexpr unsigned kAuthorization = bit(State::authorization);

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::toupper((unsigned char)s[i]) != prefix[i]) return false;
    return true;
}
}  // namespace

Machine::Machine(MachineConfig cfg)
    : cfg_(std::move(cfg)), tls_active_(cfg_.tls_active), counter_(cfg_.max_errors, cfg_.max_auth_failures) {}

void Machine::enter_state(State s) {
    if (s == state_) return;
    spdlog::debug("session {} pop3 {} -> {}", cfg_.id, to_string(state_), to_string(s));
    state_ = s;
}

Actions Machine::refuse(Actions a, std::string text) {
    a = counter_.refuse(std::move(a), std::move(text), "-ERR Too many errors, closing connection");
    if (counter_.closed()) enter_state(State::closed);
    return a;
}

Actions Machine::start() {
    Actions a;
    reply(a, "+OK xoauth2-proxy ready");
    return a;
}

Actions Machine::on_line_too_long() {
    if (state_ == State::auth) enter_state(State::authorization);
    return refuse({}, "-ERR Line too long");
}

Actions Machine::on_line(std::string_view line) {
    if (state_ == State::auth) return auth_response(line);
    if (state_ != State::authorization) return {};
    // A password may be long (a generated one, a token): PASS gets AUTH's limit.
    Command c = parse_command(line, starts_with_ci(line, "PASS ") ? kMaxAuthLine : kMaxCommandLine);
    if (!c.error.empty()) return refuse({}, c.error);
    static const CommandSpec kCommands[] = {
        {"CAPA", kAuthorization, &Machine::capa},
        {"QUIT", kAuthorization, &Machine::quit},
        {"NOOP", kAuthorization, &Machine::noop},
        {"STLS", kAuthorization, &Machine::stls},
        {"USER", kAuthorization, &Machine::user},
        {"PASS", kAuthorization, &Machine::pass},
        {"AUTH", kAuthorization, &Machine::auth},
        // The TRANSACTION state's commands: the upstream answers them after login.
        {"STAT", 0, &Machine::needs_login}, {"LIST", 0, &Machine::needs_login}, {"RETR", 0, &Machine::needs_login},
        {"DELE", 0, &Machine::needs_login}, {"RSET", 0, &Machine::needs_login}, {"TOP", 0, &Machine::needs_login},
        {"UIDL", 0, &Machine::needs_login},
    };
    for (const auto& spec : kCommands) {
        if (c.verb != spec.verb) continue;
        if (!(spec.allowed & bit(state_))) return needs_login(c);
        return (this->*spec.proceed)(c);
    }
    return refuse({}, "-ERR Unknown command");
}

Actions Machine::needs_login(const Command&) {
    Actions a;
    reply(a, "-ERR Not logged in");
    return a;
}

Actions Machine::capa(const Command&) {
    Actions a;
    std::string r = "+OK Capability list follows\r\nUSER\r\n";
    if (auth_allowed()) r += "SASL PLAIN\r\n";
    if (cfg_.starttls_offered && !tls_active_) r += "STLS\r\n";
    r += "IMPLEMENTATION xoauth2-proxy\r\n.";
    reply(a, r);
    return a;
}

Actions Machine::quit(const Command&) {
    Actions a;
    reply(a, "+OK Bye");
    server::PreauthCounter::close(a);
    enter_state(State::closed);
    return a;
}

Actions Machine::noop(const Command&) {
    Actions a;
    reply(a, "+OK");
    return a;
}

Actions Machine::stls(const Command&) {
    if (!cfg_.starttls_offered || tls_active_) return refuse({}, "-ERR STLS not available");
    Actions a;
    reply(a, "+OK Begin TLS negotiation");
    a.push_back(Action{Action::Kind::start_tls, {}, {}});
    return a;
}

Actions Machine::on_tls(bool ok) {
    Actions a;
    if (!ok) {
        server::PreauthCounter::close(a);
        enter_state(State::closed);
        return a;
    }
    tls_active_ = true;
    user_.clear();   // RFC 2595: forget what came before TLS
    return a;
}

Actions Machine::user(const Command& c) {
    Actions a;
    if (!auth_allowed()) {
        reply(a, "-ERR [AUTH] Use STLS first");
        return a;
    }
    if (c.arg.empty()) return refuse({}, "-ERR Syntax: USER name");
    if (!util::valid_utf8(c.arg)) return refuse({}, "-ERR The user name is not valid UTF-8");
    user_ = c.arg;
    reply(a, "+OK");
    return a;
}

Actions Machine::pass(const Command& c) {
    if (user_.empty()) return refuse({}, "-ERR USER first");
    std::string login = std::move(user_);
    user_.clear();
    return begin_login(std::move(login), c.arg);
}

Actions Machine::auth(const Command& c) {
    sasl::MechanismArg m = sasl::split_mechanism(c.arg);
    Actions a;
    if (m.mechanism != "PLAIN") {
        reply(a, "-ERR Unsupported mechanism (AUTH PLAIN is offered)");
        return a;
    }
    if (!auth_allowed()) {
        reply(a, "-ERR [AUTH] Use STLS first");
        return a;
    }
    if (m.has_initial) return auth_response(m.initial);
    reply(a, "+ ");
    enter_state(State::auth);
    return a;
}

Actions Machine::auth_response(std::string_view line) {
    enter_state(State::authorization);
    if (sasl::is_cancel(line)) return refuse({}, "-ERR Authentication cancelled");
    auto creds = sasl::decode_plain(line);
    if (!creds) return refuse({}, "-ERR Cannot decode AUTH PLAIN response");
    return begin_login(std::move(creds->authcid), std::move(creds->password));
}

Actions Machine::begin_login(std::string login, std::string password) {
    if (!util::valid_utf8(login)) return refuse({}, "-ERR The user name is not valid UTF-8");
    enter_state(State::login);
    Actions a;
    a.push_back(Action{Action::Kind::login, std::move(login), std::move(password)});
    return a;
}

Actions Machine::on_login(server::LoginOutcome outcome) {
    Actions a;
    enter_state(State::authorization);
    switch (outcome) {
        case server::LoginOutcome::ok:
            reply(a, "+OK Logged in.");
            a.push_back(Action{Action::Kind::relay, {}, {}});
            enter_state(State::transaction);
            return a;
        case server::LoginOutcome::busy:
            reply(a, "-ERR [SYS/TEMP] Server busy, try again later");
            return a;
        case server::LoginOutcome::upstream_unavailable:
            reply(a, "-ERR [SYS/TEMP] Temporary failure: the mail server cannot be reached for this account, try again later");
            return a;
        case server::LoginOutcome::bad_credentials: break;
    }
    reply(a, "-ERR [AUTH] Authentication failed.");
    counter_.auth_failed(a, "-ERR Too many authentication failures");
    if (counter_.closed()) enter_state(State::closed);
    return a;
}

}  // namespace xo::pop3
