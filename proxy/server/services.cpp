#include "server/services.hpp"

#include <malloc.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdio>

#include "net/tls.hpp"

namespace xo::server {

std::shared_ptr<Services> make_services(const config::Config& cfg, std::vector<std::string>& problems) {
    auto s = std::make_shared<Services>();
    s->cfg = cfg;
    s->tokens = oauth::make_token_cache(s->cfg, problems);
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
awaitable<const config::User*> slow_check(std::shared_ptr<Services> s, std::string login, std::string password) {
    const config::User* u = s->authenticator->check(login, password);
    malloc_trim(0);   // scrypt used 16 MB on this thread: give it back instead of keeping it as RSS
    co_return u;
}
}  // namespace

awaitable<const config::User*> check_login(std::shared_ptr<Services> s, std::string login, std::string password) {
    if (const config::User* u = s->authenticator->check_cached(login, password)) co_return u;
    co_return co_await asio::co_spawn(s->kdf_pool.get_executor(), slow_check(s, std::move(login), std::move(password)),
                                      use_awaitable);
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
    const config::User* u = co_await check_login(s, std::move(login), std::move(password));
    if (u) {
        s->throttle.record_success(ip);
    } else {
        s->throttle.record_failure(ip);
        ++s->counters.auth_failed;
    }
    co_return LoginResult{u, false};
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
