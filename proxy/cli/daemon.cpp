#include <spdlog/spdlog.h>

#include <thread>

#include "cli/commands.hpp"
#include "diagnose/expiry.hpp"
#include "oauth/token_cache.hpp"
#include "oauth/token_store.hpp"
#include "server/admin.hpp"
#include "server/listeners.hpp"

namespace xo::cli {
namespace {

constexpr auto kGrace = std::chrono::seconds(25);

// SIGTERM/SIGINT: stop accepting, let running sessions finish (bounded), stop.
awaitable<void> wait_for_signal(asio::io_context& io, server::Listeners* listeners,
                                std::shared_ptr<server::Services> services) {
    asio::signal_set signals(io, SIGTERM, SIGINT);
    int sig = co_await signals.async_wait(use_awaitable);
    spdlog::info("signal {}: no new sessions; waiting up to {}s for {} running", sig, kGrace.count(),
                 listeners->active_sessions());
    listeners->stop();
    services->drain();   // idle sessions close now; those mid-message finish it
    auto deadline = std::chrono::steady_clock::now() + kGrace;
    asio::steady_timer t(io);
    while (listeners->active_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(use_awaitable);
    }
    spdlog::info("stopping with {} session(s) still running", listeners->active_sessions());
    io.stop();
}

// SIGHUP (systemctl reload): the config is read at start only, so it is logged
// and otherwise ignored; without this the default action would end the daemon.
awaitable<void> ignore_hangups(asio::io_context& io) {
    asio::signal_set hup(io, SIGHUP);
    for (;;) {
        error_code ec;
        co_await hup.async_wait(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        spdlog::warn("SIGHUP: reloading the configuration is not supported yet; restart to apply changes "
                     "(systemctl restart xoauth2-proxy)");
    }
}

// Credentials that expire within 30 days (or cannot be read): warned at start, then daily.
awaitable<void> expiry_warnings(config::Config cfg) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        long long now = diagnose::unix_now();
        for (const auto& e : diagnose::credential_expiries(cfg)) {
            if (diagnose::due(e, now))
                spdlog::warn("credential expiry: {}; fix: {}", diagnose::describe(e, now), diagnose::expiry_advice(e));
            else if (!e.expires_at)
                spdlog::warn("credential expiry: {}", diagnose::describe(e, now));
        }
        timer.expires_after(std::chrono::hours(24));
        error_code ec;
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
    }
}

}  // namespace

int run_daemon(const config::Config& cfg) {
    std::vector<std::string> problems;
    std::shared_ptr<server::Services> services;
    try {
        services = server::make_services(cfg, problems);
    } catch (const std::exception& ex) {
        spdlog::critical("{}", ex.what());
        return 1;
    }
    for (const auto& p : problems) spdlog::error("{}; its sessions will get a temporary failure", p);
    asio::io_context io;
    server::Listeners listeners(io, services);
    try {
        listeners.start();
        server::start_admin(io, services);
    } catch (const std::exception& ex) {
        spdlog::critical("{}", ex.what());
        return 1;
    }
    asio::co_spawn(io, wait_for_signal(io, &listeners, services), asio::detached);
    asio::co_spawn(io, expiry_warnings(cfg), asio::detached);
    asio::co_spawn(io, ignore_hangups(io), asio::detached);
    spdlog::info("xoauth2-proxy " XO_VERSION " ready: {} connection(s), {} user(s)", cfg.connections.size(),
                 cfg.users.size());
    unsigned n = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < n; ++i) threads.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
    if (auto store = services->tokens->store()) store->close();   // before `io` goes: its handlers post to it
    spdlog::info("xoauth2-proxy stopped");
    return 0;
}

}  // namespace xo::cli
