#include <ctime>
#include <iostream>

#include "asio.hpp"
#include "cli/commands.hpp"
#include "diagnose/diagnose.hpp"
#include "oauth/token_cache.hpp"

namespace xo::cli {
namespace {

std::string utc(std::chrono::system_clock::time_point t) {
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

awaitable<void> fetch_one(std::shared_ptr<oauth::TokenCache> cache, std::string conn, std::string mailbox,
                          oauth::TokenResult* out) {
    *out = co_await cache->get(conn, mailbox);
}

}  // namespace

int token_command(const config::Config& cfg, const std::vector<std::string>& args) {
    std::string name, mailbox;
    bool show = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--mailbox" && i + 1 < args.size()) mailbox = args[++i];
        else if (args[i] == "--show") show = true;
        else if (name.empty() && args[i].rfind("--", 0) != 0) name = args[i];
        else {
            std::cerr << "token: unexpected argument '" << args[i] << "'\n";
            return 2;
        }
    }
    if (name.empty()) {
        std::cerr << "usage: xoauth2-proxy token CONNECTION [--mailbox ADDRESS] [--show]\n";
        return 2;
    }
    const config::Connection* conn = cfg.find_connection(name);
    if (!conn) {
        std::cerr << "token: no connection named '" << name << "' in " << cfg.file << "\n";
        return 2;
    }
    if (conn->token_per_mailbox() && mailbox.empty()) {
        std::cerr << "token: connection " << name << " issues one token per mailbox: give --mailbox ADDRESS\n";
        return 2;
    }
    std::vector<std::string> problems;
    config::Config one = cfg;
    one.connections = {{name, *conn}};
    auto cache = oauth::make_token_cache(one, problems);
    for (const auto& p : problems) {
        std::cerr << "token: " << p << "\n";
        return 1;
    }
    asio::io_context io;
    oauth::TokenResult r;
    asio::co_spawn(io, fetch_one(cache, name, mailbox, &r), asio::detached);
    io.run();
    if (!r.ok()) {
        const auto& e = r.error;
        std::cerr << "token: connection " << name << ": " << e.summary() << "\n"
                  << "  what to do: " << diagnose::token_error_advice(e.code, e.error, e.description) << "\n";
        return 1;
    }
    auto left = std::chrono::duration_cast<std::chrono::seconds>(r.token->expires_wall -
                                                                 std::chrono::system_clock::now());
    std::cout << "connection " << name;
    if (!mailbox.empty()) std::cout << " mailbox " << mailbox;
    std::cout << ": token obtained, expires " << utc(r.token->expires_wall) << " (in " << left.count()
              << " s), scope " << (r.token->scope.empty() ? conn->scope + " (requested)" : r.token->scope)
              << "\n";
    if (show) std::cout << r.token->access_token << "\n";
    return 0;
}

}  // namespace xo::cli

namespace xo::cli {
namespace {
awaitable<void> get_health(std::string url, oauth::HttpResult* out) {
    oauth::HttpRequest req;
    req.method = "GET";
    req.url = std::move(url);
    req.timeout = std::chrono::seconds(3);
    *out = co_await oauth::http_request(std::move(req), nullptr);
}
}  // namespace

int healthcheck_command(const config::Config& cfg) {
    if (!cfg.admin.port) {
        std::cerr << "healthcheck: no admin.bind in " << cfg.file << "\n";
        return 2;
    }
    std::string host = cfg.admin.host == "0.0.0.0" ? "127.0.0.1" : cfg.admin.host == "::" ? "::1" : cfg.admin.host;
    std::string url = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                      std::to_string(cfg.admin.port) + "/healthz";
    asio::io_context io;
    oauth::HttpResult r;
    asio::co_spawn(io, get_health(url, &r), asio::detached);
    io.run_for(std::chrono::seconds(5));
    if (!r.ok || r.status != 200) {
        std::cerr << "healthcheck: " << url << ": " << (r.ok ? "HTTP " + std::to_string(r.status) : r.error) << "\n";
        return 1;
    }
    std::cout << "ok\n";
    return 0;
}
}  // namespace xo::cli
