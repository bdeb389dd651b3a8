// The POP3 listener's session: CAPA, USER/PASS, AUTH PLAIN, STLS, QUIT for
// the legacy client; after a local login the upstream for the login's
// connection is opened (POP3S on 995 or STLS on 110, verified), authenticated
// with AUTH XOAUTH2, and the session relayed as bytes. One log line per session.
#pragma once
#include <memory>

#include "asio.hpp"
#include "config/config.hpp"
#include "server/services.hpp"
#include "server/session_base.hpp"

namespace xo::pop3 {

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls, server::ListenerLoad::Slot slot);

}  // namespace xo::pop3
