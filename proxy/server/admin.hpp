// The loopback admin listener (Beast HTTP/1.1): GET /healthz (200 "ok"),
// GET /status (JSON: each connection's token state, last error with its code
// and advice, credential expiries with warnings from 30 days ahead, counters)
// and GET /metrics (Prometheus text format 0.0.4, with
// xoauth2_credential_expiry_seconds{connection,kind}); with admin.password_hash
// also the web console (server/console.hpp).
// Nothing it serves contains a secret or a token.
#pragma once
#include <memory>
#include <string>

#include "asio.hpp"
#include "server/services.hpp"

namespace xo::server {

// Binds cfg.admin (when its port is set); throws std::runtime_error on failure.
// /status and /metrics report the newest Services (a reload swaps it); the
// admin address and the web console keep the start's configuration.
void start_admin(asio::io_context& io, std::shared_ptr<CurrentServices> current);

std::string render_status_json(const Services& s);
std::string render_metrics(const Services& s);

}  // namespace xo::server
