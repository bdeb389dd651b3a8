#include "server/services.hpp"

#include <malloc.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "net/tls.hpp"

namespace xo::server {

std::shared_ptr<Services> make_services(const config::Config& cfg, std::vector<std::string>& problems,
                                        const std::shared_ptr<Services>& previous) {
    auto s = std::make_shared<Services>(previous ? previous->shared_counters : nullptr);
    s->cfg = cfg;
    s->tokens = oauth::make_token_cache(s->cfg, problems);
    s->smtp_pools = previous ? previous->smtp_pools : std::make_shared<smtp::PoolRegistry>();
    s->imap_slots = previous ? previous->imap_slots : std::make_shared<smtp::PoolRegistry>();
    if (previous) {
        // What a reload leaves alone keeps its cached tokens and its pooled upstream sessions.
        std::vector<std::string> unchanged;
        for (const auto& [name, conn] : s->cfg.connections) {
            const config::Connection* was = previous->cfg.find_connection(name);
            if (!was || was->token_identity() != conn.token_identity()) continue;
            unchanged.push_back(name);
            if (conn.uses_api() && was->uses_api()) unchanged.push_back(conn.api_token_source());   // NAME#api
        }
        s->tokens->adopt(*previous->tokens, unchanged);
    }
    s->authenticator = std::make_unique<auth::Authenticator>(s->cfg);
    for (const auto& [name, conn] : s->cfg.connections) s->upstream_tls[name] = net::make_client_context(conn.ca_file);
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) std::snprintf(host, sizeof host, "localhost");
    s->hostname = host;
    return s;
}

std::string new_session_id() {
    unsigned char b[5];
    RAND_bytes(b, sizeof b);
    char out[11];
    std::snprintf(out, sizeof out, "%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4]);
    return out;
}

namespace {
// Gives the slot in kdf_pending back however the check ends.
struct KdfSlot {
    std::shared_ptr<Services> s;
    bool held = true;
    void release() {
        if (held) --s->kdf_pending;
        held = false;
    }
    ~KdfSlot() { release(); }
};

awaitable<const config::User*> slow_check(std::shared_ptr<Services> s, std::string login, std::string password) {
    KdfSlot slot{s};
    const config::User* u = s->authenticator->check(login, password);
    malloc_trim(0);   // scrypt used 16 MB on this thread: give it back instead of keeping it as RSS
    slot.release();   // before the caller resumes
    co_return u;
}

bool take_kdf_slot(Services& s, int limit) {
    int n = s.kdf_pending.load();
    do {
        if (n >= limit) return false;
    } while (!s.kdf_pending.compare_exchange_weak(n, n + 1));
    return true;
}
}  // namespace

// The waiters of one login's cold check: their timers are cancelled on their
// own executors when it ends.
struct Services::KdfFlight {
    std::mutex mu;
    bool done = false;
    std::vector<std::shared_ptr<asio::steady_timer>> timers;
};

namespace {
// Registers the check of `login` (unless one is registered already) and ends
// it however the caller's coroutine ends.
struct KdfFlightGuard {
    std::shared_ptr<Services> s;
    std::string login;
    std::shared_ptr<Services::KdfFlight> mine;
    KdfFlightGuard(std::shared_ptr<Services> services, std::string l) : s(std::move(services)), login(std::move(l)) {
        std::lock_guard lock(s->kdf_mu);
        auto& slot = s->kdf_flights[login];
        if (!slot) slot = mine = std::make_shared<Services::KdfFlight>();
    }
    ~KdfFlightGuard() {
        if (!mine) return;
        {
            std::lock_guard lock(s->kdf_mu);
            s->kdf_flights.erase(login);
        }
        std::lock_guard lock(mine->mu);
        mine->done = true;
        for (auto& t : mine->timers) asio::post(t->get_executor(), [t] { t->cancel(); });
    }
};

// The running check of `login`, if any, to wait for.
std::shared_ptr<Services::KdfFlight> running_check(Services& s, const std::string& login) {
    std::lock_guard lock(s.kdf_mu);
    auto it = s.kdf_flights.find(login);
    return it == s.kdf_flights.end() ? nullptr : it->second;
}
}  // namespace

awaitable<LoginResult> check_login(std::shared_ptr<Services> s, std::string login, std::string password, int limit) {
    LoginResult r;
    r.user = s->authenticator->check_cached(login, password);
    if (r.user) co_return r;
    if (auto running = running_check(*s, login)) {
        auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, std::chrono::seconds(2));
        bool wait = false;
        {
            std::lock_guard lock(running->mu);
            if (!running->done) {
                running->timers.push_back(timer);
                wait = true;
            }
        }
        running.reset();
        if (wait) {
            error_code ec;
            co_await timer->async_wait(asio::redirect_error(use_awaitable, ec));
        }
        r.user = s->authenticator->check_cached(login, password);
        if (r.user) co_return r;
    }
    if (!take_kdf_slot(*s, limit)) {
        r.busy = true;
        co_return r;
    }
    KdfFlightGuard flight(s, login);
    r.user = co_await asio::co_spawn(s->kdf_pool.get_executor(), slow_check(s, login, std::move(password)),
                                     use_awaitable);
    co_return r;
}

awaitable<LoginResult> attempt_login(std::shared_ptr<Services> s, std::string ip, std::string login,
                                     std::string password) {
    LoginResult r;
    if (s->throttle.refuse_now(ip)) {
        r.busy = true;
        co_return r;
    }
    int limit = s->kdf_max_pending;
    if (s->throttle.recently_failed(ip)) limit = std::max(1, limit / 2);
    r = co_await check_login(s, std::move(login), std::move(password), limit);
    if (r.busy) co_return r;
    if (r.user) {
        s->throttle.record_success(ip);
    } else {
        s->throttle.record_failure(ip);
        ++s->counters.auth_failed;
    }
    co_return r;
}

uint64_t Services::register_idle_closer(std::function<void()> close) {
    std::lock_guard lock(closers_mu_);
    uint64_t id = next_closer_++;
    closers_[id] = std::move(close);
    if (draining) {   // raced with drain(): close at once
        auto f = std::move(closers_[id]);
        closers_.erase(id);
        f();
    }
    return id;
}

void Services::unregister_idle_closer(uint64_t id) {
    std::lock_guard lock(closers_mu_);
    closers_.erase(id);
}

void Services::drain() {
    std::map<uint64_t, std::function<void()>> closers;
    {
        std::lock_guard lock(closers_mu_);
        draining = true;
        closers.swap(closers_);
    }
    for (auto& [id, close] : closers) close();
}

awaitable<LoginResult> local_login(std::shared_ptr<Services> s, net::Link& client, std::string ip,
                                   std::string login, std::string password) {
    if (auto delay = s->throttle.delay_for(ip); delay.count() > 0) {
        error_code ec;
        co_await client.flush(ec);
        asio::steady_timer t(co_await asio::this_coro::executor, delay);
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    co_return co_await attempt_login(s, std::move(ip), std::move(login), std::move(password));
}

bool plaintext_auth_allowed(const config::Listener& l, bool tls_active, const std::string& ip) {
    return tls_active || l.allow_plaintext_auth || is_loopback(ip);
}

bool is_loopback(const std::string& ip) {
    error_code ec;
    auto a = asio::ip::make_address(ip, ec);
    return !ec && a.is_loopback();
}

}  // namespace xo::server
