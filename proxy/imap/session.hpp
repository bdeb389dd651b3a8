// The IMAP listener's session: the pre-authentication part of IMAP4rev1 for
// the legacy client (CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN with atoms,
// quoted strings and literals, AUTHENTICATE PLAIN with or without SASL-IR).
// After a local login it opens the upstream for the login's connection,
// answers with the upstream's post-login capabilities, and relays bytes both
// ways until either side closes. One log line per session.
#pragma once
#include <memory>

#include "asio.hpp"
#include "config/config.hpp"
#include "server/services.hpp"
#include "server/session_base.hpp"

namespace xo::imap {

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls, server::ListenerLoad::Slot slot);

}  // namespace xo::imap
