// xoauth2-proxy test CONNECTION [--mailbox M] [--from A] [--to A] [--smtp] [--imap] [--pop3] [--api]:
// gets a token, connects, checks TLS, authenticates with the upstream client
// the sessions use, then SMTP MAIL FROM / RCPT TO / RSET (nothing is sent),
// IMAP SELECT INBOX + LOGOUT, POP3 STAT + QUIT; --api (the default for send_via
// graph / gmail_api): the API's token. One line per step with its
// time; a failure is explained from the diagnosis table (cause and fix); the
// last line is the verdict. Exit 0 when it works, 1 when not, 2 for usage.
// Never prints a token or a secret.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/probe.hpp"
#include "diagnose/diagnose.hpp"
#include "net/tls.hpp"

namespace xo::cli {
namespace {

struct Options {
    std::string connection;
    ProbeOptions probe;
};

void print_step(const ProbeStep& s) {
    char head[64];
    std::snprintf(head, sizeof head, "  %6lld ms  %-18s %-6s ", s.ms, s.name.c_str(), s.result.c_str());
    std::cout << head << s.detail << "\n";
    if (s.result != "ok") std::cout << "             cause: " << s.cause << "\n             fix:   " << s.fix << "\n";
    std::cout << std::flush;
}

}  // namespace

int test_command(const config::Config& cfg, const std::vector<std::string>& args) {
    Options opt;
    ProbeOptions& o = opt.probe;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--mailbox" && i + 1 < args.size()) o.mailbox = args[++i];
        else if (a == "--from" && i + 1 < args.size()) o.from = args[++i];
        else if (a == "--to" && i + 1 < args.size()) o.to = args[++i];
        else if (a == "--smtp" || a == "--imap" || a == "--pop3" || a == "--api") o.protocols.push_back(a.substr(2));
        else if (opt.connection.empty() && a.rfind("--", 0) != 0) opt.connection = a;
        else {
            std::cerr << "test: unexpected argument '" << a << "'\n";
            return 2;
        }
    }
    if (opt.connection.empty()) {
        std::cerr << "usage: xoauth2-proxy test CONNECTION [--mailbox ADDRESS] [--from A] [--to A] [--smtp] [--imap] [--pop3] [--api]\n";
        return 2;
    }
    const config::Connection* conn = cfg.find_connection(opt.connection);
    if (!conn) {
        std::cerr << "test: no connection named '" << opt.connection << "' in " << cfg.file << "\n";
        return 2;
    }
    if (o.mailbox.empty()) o.mailbox = default_mailbox(cfg, opt.connection);
    if (o.mailbox.empty()) {
        std::cerr << "test: no user or sender uses connection " << opt.connection << ": give --mailbox ADDRESS\n";
        return 2;
    }
    // The steps say what happened; the token cache's info lines would only repeat it.
    if (spdlog::get_level() == spdlog::level::info) spdlog::set_level(spdlog::level::err);
    if (o.from.empty()) o.from = o.mailbox;
    if (o.to.empty()) o.to = o.mailbox;
    if (o.protocols.empty())
        o.protocols.push_back(conn->send_via == config::SendVia::graph || conn->send_via == config::SendVia::gmail_api
                                  ? "api"
                                  : "smtp");
    char host[256] = {};
    o.hostname = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "localhost";

    std::string protocols;
    for (const auto& p : o.protocols) protocols += (protocols.empty() ? "" : ", ") + p;
    std::cout << "testing connection " << opt.connection << " (" << config::to_string(conn->provider) << " "
              << config::to_string(conn->flow) << ") for mailbox " << o.mailbox << ": " << protocols << "\n";
    auto rep = std::make_shared<ProbeReport>();
    rep->on_step = print_step;
    auto verdict = [&]() {
        if (rep->ok()) {
            std::cout << "verdict: OK: connection " << opt.connection << " works for " << o.mailbox << " over "
                      << protocols << " (" << rep->total_ms() << " ms)\n";
            return 0;
        }
        std::cout << "verdict: FAILED at " << rep->failed_at << ": " << rep->cause << "\n";
        return 1;
    };
    std::vector<std::string> problems;
    config::Config one = cfg;
    one.connections = {{opt.connection, *conn}};
    std::shared_ptr<oauth::TokenCache> cache = oauth::make_token_cache(one, problems);
    if (!problems.empty()) {
        // A token store that cannot be opened has its row; other problems are settings.
        const diagnose::Row* row = problems.front().find("token store") != std::string::npos
                                       ? diagnose::match_token_error("", "token_store", problems.front())
                                       : nullptr;
        rep->failed("token", problems.front(), row, "fix the connection's settings named above (xoauth2-proxy --check)");
        return verdict();
    }
    std::shared_ptr<ssl::context> tls;
    try {
        tls = net::make_client_context(conn->ca_file);
    } catch (const std::exception& e) {
        rep->failed("tls", e.what(), nullptr, "fix ca_file");
        return verdict();
    }
    asio::io_context io;
    asio::co_spawn(io, run_probe(*conn, o, cache, tls, rep), asio::detached);
    io.run();
    return verdict();
}

}  // namespace xo::cli
