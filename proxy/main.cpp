// xoauth2-proxy: the daemon and its admin commands.
//   xoauth2-proxy [--config FILE]                 run the listeners
//   xoauth2-proxy --config FILE --check           validate, print every problem
//   xoauth2-proxy hash-password                   read a password on stdin, print its hash
//   xoauth2-proxy --config FILE token CONNECTION [--mailbox M] [--show]
//   xoauth2-proxy --config FILE test CONNECTION [--mailbox M] [--smtp|--imap|--pop3]
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "auth/password.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace {

void usage(std::ostream& out) {
    out << "usage: xoauth2-proxy [--config FILE] [--check]\n"
           "       xoauth2-proxy hash-password            (password on stdin)\n"
           "       xoauth2-proxy [--config FILE] token CONNECTION [--mailbox ADDRESS] [--show]\n"
           "       xoauth2-proxy [--config FILE] authorize CONNECTION [--mailbox ADDRESS] [--device] [--port PORT]\n"
           "       xoauth2-proxy [--config FILE] status [CONNECTION]\n"
           "       xoauth2-proxy [--config FILE] test CONNECTION [--mailbox ADDRESS] [--from A] [--to A] [--smtp] [--imap] [--pop3]\n"
           "       xoauth2-proxy [--config FILE] healthcheck   (GET /healthz of admin.bind; for containers)\n"
           "default config: /etc/xoauth2-proxy/config.yaml\n";
}

}  // namespace

int main(int argc, char** argv) {
    auto logger = spdlog::stderr_logger_mt("xoauth2-proxy");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

    std::string config_path = "/etc/xoauth2-proxy/config.yaml";
    bool check = false;
    std::vector<std::string> rest;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--config" || a == "-c") && i + 1 < argc) config_path = argv[++i];
        else if (a.rfind("--config=", 0) == 0) config_path = a.substr(9);
        else if (a == "--check") check = true;
        else if (a == "--help" || a == "-h") { usage(std::cout); return 0; }
        else if (a == "--version") { std::cout << "xoauth2-proxy " XO_VERSION "\n"; return 0; }
        else rest.push_back(a);
    }
    if (!rest.empty() && rest[0] == "hash-password") {
        std::string password;
        std::getline(std::cin, password);
        if (!password.empty() && password.back() == '\r') password.pop_back();
        if (password.empty()) {
            std::cerr << "hash-password: empty password on stdin\n";
            return 2;
        }
        std::cout << xo::auth::hash_password(password) << "\n";
        return 0;
    }

    auto loaded = xo::config::load_config(config_path);
    for (const auto& d : loaded.diagnostics) std::cerr << d.text() << "\n";
    if (!loaded.ok()) {
        std::cerr << config_path << ": " << std::count_if(loaded.diagnostics.begin(), loaded.diagnostics.end(),
                                                          [](const auto& d) { return d.error; })
                  << " error(s); nothing started\n";
        return 1;
    }
    if (auto lvl = spdlog::level::from_str(loaded.config.log_level); lvl != spdlog::level::off)
        spdlog::set_level(lvl);
    if (check) {
        std::cout << config_path << ": OK (" << loaded.config.listeners.size() << " listener(s), "
                  << loaded.config.connections.size() << " connection(s), " << loaded.config.users.size()
                  << " user(s))\n";
        // What each API path needs at the provider: not visible from here, so said once.
        for (const auto& [name, conn] : loaded.config.connections) {
            using xo::config::SendVia;
            if (conn.send_via == SendVia::graph || conn.send_via == SendVia::auto_)
                std::cout << "connection " << name << ": send_via " << xo::config::to_string(conn.send_via)
                          << " posts to " << conn.graph_url << "/v1.0/users/MAILBOX/sendMail with scope "
                          << conn.api_scope
                          << ". Needs: Azure portal > App registrations > the app > API permissions > Microsoft Graph > "
                             "Application permissions > Mail.Send (delegated flows: Delegated Mail.Send), then "
                             "'Grant admin consent'; restrict the app to the mailboxes it may send as with an "
                             "application access policy (New-ApplicationAccessPolicy -AccessRight RestrictAccess "
                             "-AppId APP -PolicyScopeGroupId GROUP). Messages are limited to 3 MiB (4 MB of base64)"
                          << (conn.send_via == SendVia::auto_ ? "; SMTP is tried first and a 535 5.7.139 switches "
                                                                "the connection to Graph until the next reload"
                                                              : "")
                          << ".\n";
            else if (conn.send_via == SendVia::gmail_api)
                std::cout << "connection " << name << ": send_via gmail_api posts to " << conn.gmail_api_url
                          << "/upload/gmail/v1/users/MAILBOX/messages/send with scope " << conn.api_scope
                          << ". Needs: the Gmail API enabled in the key's Google Cloud project (APIs & Services > "
                             "Library > Gmail API > Enable) and domain-wide delegation of that scope for the service "
                             "account's client ID (Admin console > Security > API controls). Messages up to 35 MB.\n";
        }
        return 0;
    }
    if (!rest.empty() && rest[0] == "token") return xo::cli::token_command(loaded.config, rest);
    if (!rest.empty() && rest[0] == "authorize") return xo::cli::authorize_command(loaded.config, rest);
    if (!rest.empty() && rest[0] == "test") return xo::cli::test_command(loaded.config, rest);
    if (!rest.empty() && rest[0] == "status") return xo::cli::status_command(loaded.config, rest);
    if (!rest.empty() && rest[0] == "healthcheck") return xo::cli::healthcheck_command(loaded.config);
    if (!rest.empty()) {
        std::cerr << "unknown command '" << rest[0] << "'\n";
        usage(std::cerr);
        return 2;
    }
    return xo::cli::run_daemon(loaded.config, config_path);
}
