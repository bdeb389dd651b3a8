// xoauth2-proxy status [CONNECTION]: asks each connection for a token (per
// mailbox for per-mailbox flows) and says what state it is in and what to do;
// lists each credential's expiry, with a warning from 30 days ahead.
#include <ctime>
#include <iostream>
#include <set>

#include "asio.hpp"
#include "cli/commands.hpp"
#include "diagnose/diagnose.hpp"
#include "diagnose/expiry.hpp"
#include "oauth/jwt.hpp"
#include "oauth/token_cache.hpp"
#include "oauth/redis_store.hpp"
#include "oauth/token_store.hpp"
#include "util/text.hpp"

namespace xo::cli {
namespace {

std::string age(long long seconds) {
    if (seconds < 120) return std::to_string(seconds) + " s";
    if (seconds < 7200) return std::to_string(seconds / 60) + " min";
    if (seconds < 2 * 86400) return std::to_string(seconds / 3600) + " h";
    return std::to_string(seconds / 86400) + " days";
}

awaitable<void> fetch(std::shared_ptr<oauth::TokenCache> cache, std::string conn, std::string mailbox,
                      oauth::TokenResult* out) {
    *out = co_await cache->get(conn, mailbox);
}

}  // namespace

int status_command(const config::Config& cfg, const std::vector<std::string>& args) {
    std::string only = args.size() > 1 ? args[1] : "";
    if (!only.empty() && !cfg.find_connection(only)) {
        std::cerr << "status: no connection named '" << only << "'\n";
        return 2;
    }
    config::Config one = cfg;
    if (!only.empty()) one.connections = {{only, *cfg.find_connection(only)}};
    std::vector<std::string> problems;
    auto cache = oauth::make_token_cache(one, problems);
    std::shared_ptr<oauth::TokenStore> store;
    std::string store_error;
    long long now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    int bad = 0;
    auto expiries = diagnose::credential_expiries(one);
    for (const auto& [name, conn] : one.connections) {
        bool interactive = conn.flow == config::Flow::authorization_code || conn.flow == config::Flow::device_code;
        std::cout << "connection " << name << " (" << config::to_string(conn.provider) << " " << config::to_string(conn.flow)
                  << ")\n";
        for (const auto& e : expiries) {
            if (e.connection != name) continue;
            std::cout << "  " << diagnose::describe(e, now) << "\n";
            if (diagnose::due(e, now)) std::cout << "    WARNING: " << diagnose::expiry_advice(e) << "\n";
        }
        std::set<std::string> mailboxes;
        if (conn.token_per_mailbox()) {
            for (const auto& u : cfg.users)
                if (u.connection == name) mailboxes.insert(u.mailbox);
            for (const auto& s : cfg.senders)
                if (s.connection == name && !s.mailbox.empty()) mailboxes.insert(s.mailbox);
        } else {
            mailboxes.insert("");
        }
        if (interactive) {
            if (!store && store_error.empty()) {
                try {
                    store = oauth::make_token_store(cfg.tokens);
                } catch (const std::exception& e) {
                    store_error = e.what();
                }
            }
            if (store) {
                try {
                    for (const auto& [key, g] : store->all())
                        if (key.substr(0, key.find('\n')) == name) mailboxes.insert(key.substr(key.find('\n') + 1));
                    if (!store->health().empty()) std::cout << "  token store: " << store->health() << "\n";
                } catch (const std::exception& e) {
                    std::cout << "  token store: " << util::log_escape(e.what()) << "\n";
                    ++bad;
                }
            }
        }
        for (const auto& p : problems)
            if (p.rfind("connection " + name + ":", 0) == 0) {
                std::cout << "  unusable: " << p << "\n";
                ++bad;
            }
        for (const auto& mailbox : mailboxes) {
            // Mailboxes and providers' texts are outside bytes: escaped, never trusted as text.
            std::string who = mailbox.empty() ? "  app-only token" : "  " + util::log_escape(mailbox);
            if (interactive && store) {
                std::optional<oauth::StoredGrant> g;
                try {
                    g = store->get(name, mailbox);
                } catch (const std::exception& e) {
                    std::cout << who << ": token store: " << util::log_escape(e.what()) << "\n";
                }
                if (g) std::cout << who << ": refresh token obtained " << age(now - g->obtained) << " ago, last rotated "
                                 << age(now - g->updated) << " ago\n";
            }
            asio::io_context io;
            oauth::TokenResult r;
            asio::co_spawn(io, fetch(cache, name, mailbox, &r), asio::detached);
            io.run();
            if (r.ok()) {
                auto left = std::chrono::duration_cast<std::chrono::seconds>(r.token->expires_wall - std::chrono::system_clock::now());
                std::cout << who << ": active, access token expires in " << left.count() << " s\n";
                continue;
            }
            ++bad;
            const auto& e = r.error;
            bool needs_auth = e.error == "needs_authorization" || e.description.find("needs authorization") != std::string::npos;
            if (needs_auth)
                std::cout << who << ": needs authorization: run 'xoauth2-proxy authorize " << name << " --mailbox "
                          << util::log_escape(mailbox)
                          << (conn.flow == config::Flow::device_code ? " --device" : "") << "'\n";
            std::cout << who << ": last error: " << util::log_escape(e.summary()) << "\n"
                      << "    what to do: "
                      << util::log_escape(diagnose::token_error_advice(e.code, e.error, e.description)) << "\n";
        }
        if (interactive && !store) {
            std::cout << "  token store: " << store_error << "\n";
            ++bad;
        }
    }
    return bad ? 1 : 0;
}

}  // namespace xo::cli
