// The POP3 AUTHORIZATION state (RFC 1939, 2449, 5034) as a pure state
// machine, no I/O: the session feeds it the client's lines (read with
// kMaxAuthLine; pop3::parse_command refuses what is too long for its verb) and
// carries out its actions. Commands sit in one table {verb, allowed states,
// proceed}; enter_state() traces every transition.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "pop3/parser.hpp"
#include "server/outcome.hpp"

namespace xo::pop3 {

enum class State { authorization, auth, login, transaction, closed };
const char* to_string(State s);

using MachineConfig = server::PreauthConfig;
using Action = server::PreauthAction;
using Actions = server::PreauthActions;

class Machine {
public:
    explicit Machine(MachineConfig cfg);
    Actions start();
    Actions on_line(std::string_view line);
    Actions on_line_too_long();
    Actions on_tls(bool ok);
    Actions on_login(server::LoginOutcome outcome);

    State state() const { return state_; }
    bool closed() const { return state_ == State::closed; }

    struct CommandSpec;

private:
    void enter_state(State s);
    static void reply(Actions& a, std::string text) { server::PreauthCounter::reply(a, std::move(text)); }
    Actions refuse(Actions a, std::string text);
    bool auth_allowed() const { return tls_active_ || cfg_.plaintext_auth; }
    Actions begin_login(std::string login, std::string password);
    Actions auth_response(std::string_view line);

    Actions capa(const Command& c);
    Actions quit(const Command& c);
    Actions noop(const Command& c);
    Actions stls(const Command& c);
    Actions user(const Command& c);
    Actions pass(const Command& c);
    Actions auth(const Command& c);
    Actions needs_login(const Command& c);

    MachineConfig cfg_;
    State state_ = State::authorization;
    bool tls_active_ = false;
    std::string user_;   // after USER
    server::PreauthCounter counter_;
};

}  // namespace xo::pop3
