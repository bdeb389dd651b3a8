// What the IMAP and POP3 sessions share beyond SessionBase: until login they
// carry out a pre-authentication machine's actions (replies, STARTTLS, the
// login), then they relay the client and the upstream both ways. A protocol
// supplies how input reaches its machine and what its machine answers.
#pragma once
#include <chrono>

#include "server/outcome.hpp"
#include "server/session_base.hpp"

namespace xo::server {

class PreauthSession : public SessionBase {
protected:
    using SessionBase::SessionBase;

    virtual PreauthActions greet() = 0;
    // Reads client input and feeds it to the machine; ec set when the client is gone.
    virtual awaitable<PreauthActions> next(error_code& ec) = 0;
    virtual PreauthActions tls_done(bool ok) = 0;
    virtual PreauthActions login_done(LoginOutcome o) = 0;
    virtual bool machine_closed() const = 0;
    virtual std::string shutdown_reply() const = 0;   // with CRLF
    virtual net::Link* upstream_link() = 0;           // after login
    virtual std::chrono::steady_clock::duration relay_idle() const = 0;

    awaitable<void> serve() final;
    awaitable<void> finish() final;

private:
    awaitable<bool> execute(PreauthActions actions);   // false: the session ends
    bool relay_ = false;
};

}  // namespace xo::server
