// The admin commands and the daemon's run loop, behind main(). Each returns
// the process exit status: 0 success, 1 failure explained on stderr, 2 usage.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace xo::cli {

// token CONNECTION [--mailbox M] [--show]: fetch one token and print its expiry
// and scope; the token itself only with --show.
int token_command(const config::Config& cfg, const std::vector<std::string>& args);

// GET http://ADMIN/healthz: 0 when the daemon answers 200 within 3 s (container health checks).
int healthcheck_command(const config::Config& cfg);

// authorize CONNECTION [--mailbox M] [--device] [--port P]: the interactive flows' first sign-in.
int authorize_command(const config::Config& cfg, const std::vector<std::string>& args);

// status [CONNECTION]: token state per connection and mailbox, refresh token age,
// certificate expiry. 0 when every token could be had.
int status_command(const config::Config& cfg, const std::vector<std::string>& args);

// test CONNECTION [--mailbox M] [--from A] [--to A] [--smtp] [--imap] [--pop3]: token,
// connect, TLS, AUTH, then a transaction without sending; each step timed; a failure
// with its cause and fix; last line "verdict: OK ..." or "verdict: FAILED at STEP: cause".
int test_command(const config::Config& cfg, const std::vector<std::string>& args);

// Runs the listeners until SIGTERM/SIGINT. SIGHUP reloads `config_path`: a
// file with errors is refused (logged as FILE:LINE) and the running
// configuration kept; running sessions keep the one they started with. At
// start the open files limit is raised to its hard limit.
int run_daemon(const config::Config& cfg, const std::string& config_path);

}  // namespace xo::cli
