// The steps of `xoauth2-proxy test`, shared by the command and the admin
// console: token, connect, TLS, AUTH through the sessions' own upstream
// clients, then SMTP MAIL FROM / RCPT TO / RSET (nothing is sent), IMAP
// SELECT INBOX + LOGOUT, POP3 STAT + QUIT. Each step is recorded with its time;
// a failed one with the diagnosis table's cause and fix. Never records a token.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "asio.hpp"
#include "config/config.hpp"
#include "oauth/token_cache.hpp"

namespace xo::diagnose {
struct Row;
}

namespace xo::cli {

struct ProbeStep {
    std::string name;     // "token", "smtp authenticate", "imap SELECT INBOX"
    std::string result;   // "ok" | "FAILED"
    std::string detail;   // what was seen (the server's words)
    std::string cause, fix;   // FAILED only
    long long ms = 0;
};

struct ProbeOptions {
    std::string mailbox, from, to, hostname;
    std::vector<std::string> protocols;   // "smtp", "imap", "pop3", "api" (send_via's API token)
};

struct ProbeReport {
    std::vector<ProbeStep> steps;
    std::string failed_at, cause, fix;    // the first failure
    std::vector<std::string> worked;      // protocols that passed
    std::function<void(const ProbeStep&)> on_step;   // called as each step ends
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now(), last = started;

    bool ok() const { return failed_at.empty(); }
    long long total_ms() const;
    void ok(const std::string& step, const std::string& detail);
    void failed(const std::string& step, const std::string& detail, const diagnose::Row* row,
                const std::string& fallback_fix = "");

private:
    long long lap();
    void add(ProbeStep s);
};

// Runs the steps for `conn` and fills *report; never throws.
awaitable<void> run_probe(config::Connection conn, ProbeOptions o, std::shared_ptr<oauth::TokenCache> cache,
                          std::shared_ptr<ssl::context> tls, std::shared_ptr<ProbeReport> report);

// The first user's (or exact sender's) mailbox on the connection, or "".
std::string default_mailbox(const config::Config& cfg, const std::string& connection);

}  // namespace xo::cli
