// The SMTP listener's session: a real ESMTP server for the legacy client
// (EHLO, AUTH PLAIN/LOGIN, STARTTLS, MAIL/RCPT/DATA, PIPELINING, SIZE,
// 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8) relaying each transaction to the
// upstream opened for the login's connection. A message is acknowledged only
// after the upstream acknowledged it; upstream or token trouble gives 4xx.
// Every session ends with exactly one log line.
#pragma once
#include <memory>

#include "asio.hpp"
#include "config/config.hpp"
#include "server/services.hpp"
#include "server/session_base.hpp"

namespace xo::smtp {

// Runs one client connection to its end. `server_tls` is the listener's TLS
// context (nullptr when the listener has tls: none).
awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services,
                            std::shared_ptr<ssl::context> server_tls, server::ListenerLoad::Slot slot);

}  // namespace xo::smtp
