#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <set>
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
constexpr std::size_t kFdMargin = 64;   // logs, the admin listener, token requests, TLS files

// SIGTERM/SIGINT: stop accepting, let running sessions finish (bounded), stop.
awaitable<void> wait_for_signal(asio::io_context& io, asio::signal_set* signals, server::Listeners* listeners) {
    int sig = co_await signals->async_wait(use_awaitable);
    spdlog::info("signal {}: no new sessions; waiting up to {}s for {} running", sig, kGrace.count(),
                 listeners->active_sessions());
    listeners->stop();
    listeners->drain();   // idle sessions close now; those mid-message finish it
    auto deadline = std::chrono::steady_clock::now() + kGrace;
    asio::steady_timer t(io);
    while (listeners->active_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(use_awaitable);
    }
    spdlog::info("stopping with {} session(s) still running", listeners->active_sessions());
    io.stop();
}

// One reload: the file must pass what --check checks, and every part of the
// new Services must build; otherwise nothing changes.
void reload(const std::string& path, server::Listeners* listeners, server::CurrentServices* current,
            int started_io_threads) {
    auto loaded = config::load_config(path);
    int errors = 0;
    for (const auto& d : loaded.diagnostics) {
        if (d.error) {
            ++errors;
            spdlog::error("reload: {}", d.text());
        } else {
            spdlog::warn("reload: {}", d.text());
        }
    }
    if (!loaded.ok()) {
        spdlog::error("reload refused: {} has {} error(s); still serving with the previous configuration", path, errors);
        return;
    }
    std::shared_ptr<server::Services> next;
    std::vector<std::string> problems;
    std::vector<std::string> notes;
    try {
        next = server::make_services(loaded.config, problems, current->get());
        notes = listeners->reload(next);
    } catch (const std::exception& ex) {
        spdlog::error("reload refused: {}; still serving with the previous configuration", ex.what());
        return;
    }
    current->set(next);
    next->smtp_pools->retain(next->cfg);   // pooled upstream sessions of changed connections close
    std::set<std::string> imap_keep;
    for (const auto& [name, c] : next->cfg.connections) imap_keep.insert(c.imap_identity());
    next->imap_slots->retain(imap_keep);
    for (const auto& p : problems) spdlog::error("{}; its sessions will get a temporary failure", p);
    if (loaded.config.io_threads != started_io_threads)
        notes.push_back("daemon.io_threads changed: the number of I/O threads needs a restart; it keeps running with "
                        "what it started with");
    for (const auto& n : notes) spdlog::warn("reload: {}", n);
    if (auto lvl = spdlog::level::from_str(loaded.config.log_level); lvl != spdlog::level::off) spdlog::set_level(lvl);
    spdlog::info("configuration reloaded from {}: {} connection(s), {} user(s); running sessions keep the previous one",
                 path, loaded.config.connections.size(), loaded.config.users.size());
}

// SIGHUP (systemctl reload, logrotate): reload the configuration; sessions go on.
awaitable<void> reload_on_hup(asio::signal_set* signals, std::string path, server::Listeners* listeners,
                              std::shared_ptr<server::CurrentServices> current, int started_io_threads) {
    for (;;) {
        error_code ec;
        co_await signals->async_wait(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        spdlog::info("signal SIGHUP: reloading {}", path);
        reload(path, listeners, current.get(), started_io_threads);
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

// Raises the soft RLIMIT_NOFILE to the hard limit; warns when that is below
// what the listeners' max_sessions need (a client and an upstream socket each).
void raise_fd_limit(const config::Config& cfg) {
    std::size_t need = kFdMargin;
    for (const auto& l : cfg.listeners) need += 2 * l.max_sessions;
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t before = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            spdlog::info("open files limit raised from {} to {} (the hard limit)", before, rl.rlim_cur);
        else
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        spdlog::warn("open files limit {} is below the {} that max_sessions needs (2 per session + {}): sessions past "
                     "it will be refused; raise it (systemd: LimitNOFILE={}; shell: ulimit -Hn {}) or lower max_sessions",
                     rl.rlim_cur, need, kFdMargin, need, need);
}

}  // namespace

int run_daemon(const config::Config& cfg, const std::string& config_path) {
    raise_fd_limit(cfg);
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
    // Handlers before the first socket is bound: a SIGHUP as soon as the port
    // answers (systemd's ExecReload) must not end the daemon.
    asio::signal_set term(io, SIGTERM, SIGINT);
    asio::signal_set hup(io, SIGHUP);
    auto current = std::make_shared<server::CurrentServices>(services);
    const unsigned n = cfg.io_threads_for(std::thread::hardware_concurrency());
    server::Listeners listeners(io, services, n);
    try {
        listeners.start();
        server::start_admin(io, current);
    } catch (const std::exception& ex) {
        spdlog::critical("{}", ex.what());
        return 1;
    }
    services.reset();   // the listeners and `current` hold it; a reload may replace it
    asio::co_spawn(io, wait_for_signal(io, &term, &listeners), asio::detached);
    asio::co_spawn(io, reload_on_hup(&hup, config_path, &listeners, current, cfg.io_threads), asio::detached);
    asio::co_spawn(io, expiry_warnings(cfg), asio::detached);
    spdlog::info("xoauth2-proxy " XO_VERSION " ready: {} connection(s), {} user(s), {} I/O thread(s)",
                 cfg.connections.size(), cfg.users.size(), n);
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < n; ++i) threads.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
    // The token store's thread ends before `io` goes: its handlers post to it.
    if (auto now = current->get())
        if (auto store = now->tokens->store()) store->close();
    spdlog::info("xoauth2-proxy stopped");
    return 0;
}

}  // namespace xo::cli
