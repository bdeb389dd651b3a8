#include "imap/machine.hpp"

#include <spdlog/spdlog.h>

#include "sasl/sasl.hpp"
#include "util/text.hpp"

namespace xo::imap {

const char* to_string(State s) {
    switch (s) {
        case State::not_authenticated: return "not_authenticated";
        case State::authenticate: return "authenticate";
        case State::login: return "login";
        case State::authenticated: return "authenticated";
        case State::closed: return "closed";
    }
    return "?";
}

struct Machine::CommandSpec {
    const char* name;
    unsigned allowed;
    Actions (Machine::*proceed)(Command&);
};

namespace {
constexpr unsigned bit(State s) { return 1u << unsigned(s); }
constexpr unsigned kPreAuth = bit(State::not_authenticated);
}  // namespace

Machine::Machine(MachineConfig cfg)
    : cfg_(std::move(cfg)), tls_active_(cfg_.tls_active), counter_(cfg_.max_errors, cfg_.max_auth_failures) {}

void Machine::enter_state(State s) {
    if (s == state_) return;
    spdlog::debug("session {} imap {} -> {}", cfg_.id, to_string(state_), to_string(s));
    state_ = s;
}

Actions Machine::refuse(Actions a, std::string text) {
    a = counter_.refuse(std::move(a), std::move(text), "* BYE Too many errors");
    if (counter_.closed()) enter_state(State::closed);
    return a;
}

std::string Machine::capabilities() const {
    std::string c = "IMAP4rev1 SASL-IR LITERAL+ ID";
    if (cfg_.starttls_offered && !tls_active_) c += " STARTTLS";
    c += (tls_active_ || cfg_.plaintext_auth) ? " AUTH=PLAIN" : " LOGINDISABLED";
    return c;
}

Actions Machine::start() {
    Actions a;
    reply(a, "* OK [CAPABILITY " + capabilities() + "] xoauth2-proxy ready");
    return a;
}

Actions Machine::feed(std::string_view& in) {
    if (state_ != State::not_authenticated && state_ != State::authenticate) return {};
    const std::size_t before = in.size();
    CommandParser::Event e = parser_.feed(in);
    command_bytes_ += before - in.size();
    Actions a;
    switch (e) {
        case CommandParser::Event::need_more:
            if (command_bytes_ > kMaxCommandBytes) {
                reply(a, "* BAD Command too large");
                reply(a, "* BYE Command too large");
                server::PreauthCounter::close(a);
                enter_state(State::closed);
            }
            return a;
        case CommandParser::Event::continuation:
            if (command_bytes_ > kMaxCommandBytes) {
                reply(a, "* BYE Command too large");
                server::PreauthCounter::close(a);
                enter_state(State::closed);
                return a;
            }
            reply(a, "+ Ready for literal data");
            return a;
        case CommandParser::Event::line:
            command_bytes_ = 0;
            return auth_response(parser_.raw_line());
        case CommandParser::Event::complete:
            command_bytes_ = 0;
            return command(parser_.take());
        case CommandParser::Event::error: {
            command_bytes_ = 0;
            std::string tag = parser_.tag().empty() ? "*" : parser_.tag();
            if (parser_.fatal()) {   // the bytes that follow cannot be told from commands
                reply(a, tag + " BAD " + parser_.error());
                reply(a, "* BYE Cannot continue after that command");
                server::PreauthCounter::close(a);
                enter_state(State::closed);
                return a;
            }
            if (state_ == State::authenticate) enter_state(State::not_authenticated);
            return refuse({}, tag + " BAD " + parser_.error());
        }
    }
    return a;
}

Actions Machine::command(Command c) {
    static const CommandSpec kCommands[] = {
        {"CAPABILITY", kPreAuth, &Machine::capability},
        {"NOOP", kPreAuth, &Machine::noop},
        {"LOGOUT", kPreAuth, &Machine::logout},
        {"ID", kPreAuth, &Machine::id},
        {"STARTTLS", kPreAuth, &Machine::starttls},
        {"LOGIN", kPreAuth, &Machine::login},
        {"AUTHENTICATE", kPreAuth, &Machine::authenticate},
        // The authenticated state's commands: the upstream answers them after login.
        {"SELECT", 0, &Machine::needs_login},      {"EXAMINE", 0, &Machine::needs_login},
        {"LIST", 0, &Machine::needs_login},        {"LSUB", 0, &Machine::needs_login},
        {"STATUS", 0, &Machine::needs_login},      {"FETCH", 0, &Machine::needs_login},
        {"APPEND", 0, &Machine::needs_login},      {"CREATE", 0, &Machine::needs_login},
        {"DELETE", 0, &Machine::needs_login},      {"RENAME", 0, &Machine::needs_login},
        {"SUBSCRIBE", 0, &Machine::needs_login},   {"UNSUBSCRIBE", 0, &Machine::needs_login},
        {"IDLE", 0, &Machine::needs_login},        {"ENABLE", 0, &Machine::needs_login},
        {"NAMESPACE", 0, &Machine::needs_login},   {"SEARCH", 0, &Machine::needs_login},
        {"STORE", 0, &Machine::needs_login},       {"COPY", 0, &Machine::needs_login},
        {"UID", 0, &Machine::needs_login},         {"EXPUNGE", 0, &Machine::needs_login},
        {"CLOSE", 0, &Machine::needs_login},       {"CHECK", 0, &Machine::needs_login},
    };
    for (const auto& spec : kCommands) {
        if (c.name != spec.name) continue;
        if (!(spec.allowed & bit(state_))) return needs_login(c);
        return (this->*spec.proceed)(c);
    }
    return refuse({}, c.tag + " BAD Unknown command");
}

Actions Machine::needs_login(Command& c) {
    Actions a;
    reply(a, c.tag + " NO Log in first");
    return a;
}

Actions Machine::capability(Command& c) {
    Actions a;
    reply(a, "* CAPABILITY " + capabilities());
    reply(a, c.tag + " OK CAPABILITY completed");
    return a;
}

Actions Machine::noop(Command& c) {
    Actions a;
    reply(a, c.tag + " OK NOOP completed");
    return a;
}

Actions Machine::logout(Command& c) {
    Actions a;
    reply(a, "* BYE xoauth2-proxy logging out");
    reply(a, c.tag + " OK LOGOUT completed");
    server::PreauthCounter::close(a);
    enter_state(State::closed);
    return a;
}

Actions Machine::id(Command& c) {
    Actions a;
    reply(a, "* ID (\"name\" \"xoauth2-proxy\" \"version\" \"" XO_VERSION "\")");
    reply(a, c.tag + " OK ID completed");
    return a;
}

Actions Machine::starttls(Command& c) {
    if (!cfg_.starttls_offered || tls_active_) return refuse({}, c.tag + " BAD STARTTLS not available");
    Actions a;
    reply(a, c.tag + " OK Begin TLS negotiation now");
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
    tls_active_ = true;   // RFC 9051 section 6.2.1: capabilities are asked again
    return a;
}

Actions Machine::login(Command& c) {
    if (!(tls_active_ || cfg_.plaintext_auth)) {
        Actions a;
        reply(a, c.tag + " NO [PRIVACYREQUIRED] LOGIN needs TLS: use STARTTLS first");
        return a;
    }
    if (c.args.size() != 2) return refuse({}, c.tag + " BAD Syntax: LOGIN user password");
    tag_ = c.tag;
    return begin_login(std::move(c.args[0]), std::move(c.args[1]));
}

Actions Machine::authenticate(Command& c) {
    Actions a;
    std::string mech = c.args.empty() ? "" : c.args[0];
    for (auto& ch : mech) ch = char(std::toupper((unsigned char)ch));
    if (mech != "PLAIN" || c.args.size() > 2) {
        reply(a, c.tag + " NO [CANNOT] Unsupported mechanism (AUTHENTICATE PLAIN is offered)");
        return a;
    }
    if (!(tls_active_ || cfg_.plaintext_auth)) {
        reply(a, c.tag + " NO [PRIVACYREQUIRED] AUTHENTICATE needs TLS: use STARTTLS first");
        return a;
    }
    tag_ = c.tag;
    if (c.args.size() == 2) {
        enter_state(State::authenticate);
        return auth_response(c.args[1]);   // SASL-IR
    }
    reply(a, "+ ");
    parser_.next_line();
    enter_state(State::authenticate);
    return a;
}

Actions Machine::auth_response(std::string_view line) {
    enter_state(State::not_authenticated);
    if (sasl::is_cancel(line)) return refuse({}, tag_ + " BAD Authentication cancelled");
    auto creds = sasl::decode_plain(line);
    if (!creds) return refuse({}, tag_ + " BAD Cannot decode AUTHENTICATE PLAIN response");
    return begin_login(std::move(creds->authcid), std::move(creds->password));
}

Actions Machine::begin_login(std::string login, std::string password) {
    if (!util::valid_utf8(login)) return refuse({}, tag_ + " BAD The login name is not valid UTF-8");
    enter_state(State::login);
    Actions a;
    a.push_back(Action{Action::Kind::login, std::move(login), std::move(password)});
    return a;
}

Actions Machine::on_login(server::LoginOutcome outcome, std::string_view capabilities) {
    Actions a;
    enter_state(State::not_authenticated);
    switch (outcome) {
        case server::LoginOutcome::ok:
            reply(a, tag_ + " OK " + (capabilities.empty() ? "" : "[CAPABILITY " + std::string(capabilities) + "] ") +
                         "Logged in");
            a.push_back(Action{Action::Kind::relay, {}, {}});
            enter_state(State::authenticated);
            return a;
        case server::LoginOutcome::busy:
            reply(a, tag_ + " NO [UNAVAILABLE] Server busy, try again later");
            return a;
        case server::LoginOutcome::upstream_unavailable:
            reply(a, tag_ + " NO [UNAVAILABLE] Temporary failure: the mail server cannot be reached for this account, "
                            "try again later");
            return a;
        case server::LoginOutcome::bad_credentials: break;
    }
    reply(a, tag_ + " NO [AUTHENTICATIONFAILED] Authentication failed.");
    counter_.auth_failed(a, "* BYE Too many authentication failures");
    if (counter_.closed()) enter_state(State::closed);
    return a;
}

}  // namespace xo::imap
