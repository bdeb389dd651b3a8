// The IMAP pre-authentication dialogue as a pure state machine, no I/O. The
// session feeds it the client's bytes; its CommandParser is the only reader
// of them (literals {n} and {n+} included) and stops at each command, so bytes
// pipelined after a LOGIN stay for the relay. A parser error that leaves
// bytes it cannot skip (an over-limit LITERAL+) closes the connection; a
// command may hold at most kMaxCommandBytes in all. Commands sit in one table
// {name, allowed states, proceed}; enter_state() traces every transition.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "imap/parser.hpp"
#include "server/outcome.hpp"

namespace xo::imap {

enum class State { not_authenticated, authenticate, login, authenticated, closed };
const char* to_string(State s);

inline constexpr std::size_t kMaxCommandBytes = 16384;   // a pre-auth command, literals included

using MachineConfig = server::PreauthConfig;
using Action = server::PreauthAction;
using Actions = server::PreauthActions;

class Machine {
public:
    explicit Machine(MachineConfig cfg);
    Actions start();
    // Consumes client bytes from `in` up to one event; empty actions with `in`
    // empty: more bytes needed.
    Actions feed(std::string_view& in);
    Actions on_tls(bool ok);
    // `capabilities`: the upstream's after login, for the tagged OK.
    Actions on_login(server::LoginOutcome outcome, std::string_view capabilities);

    State state() const { return state_; }
    bool closed() const { return state_ == State::closed; }
    std::string capabilities() const;

    struct CommandSpec;

private:
    void enter_state(State s);
    static void reply(Actions& a, std::string text) { server::PreauthCounter::reply(a, std::move(text)); }
    Actions refuse(Actions a, std::string text);   // counted; too many close
    Actions command(Command c);
    Actions auth_response(std::string_view line);
    Actions begin_login(std::string login, std::string password);

    Actions capability(Command& c);
    Actions noop(Command& c);
    Actions logout(Command& c);
    Actions id(Command& c);
    Actions starttls(Command& c);
    Actions login(Command& c);
    Actions authenticate(Command& c);
    Actions needs_login(Command& c);

    MachineConfig cfg_;
    State state_ = State::not_authenticated;
    CommandParser parser_;
    bool tls_active_ = false;
    std::string tag_;                // of the LOGIN / AUTHENTICATE in progress
    std::size_t command_bytes_ = 0;  // of the command being read
    server::PreauthCounter counter_;
};

}  // namespace xo::imap
