#include "oauth/token_cache.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <tuple>

#include "diagnose/diagnose.hpp"
#include "oauth/redis_store.hpp"
#include "oauth/token_store.hpp"
#include "util/text.hpp"

namespace xo::oauth {

// One caller parked until its flight ends or its bound passes, whichever is
// first; deliver() hands over exactly one result. The timer is only touched
// under `mu`, so a flight finishing on another thread cannot race with it.
struct TokenCache::Waiter {
    explicit Waiter(const asio::any_io_executor& ex) : timer(ex) {}
    void deliver(TokenResult r) {
        std::function<void(TokenResult)> f;
        {
            std::lock_guard lock(mu);
            if (done) return;
            done = true;
            timer.cancel();
            f = std::move(resume);
            if (!f) result = r;   // not parked yet: wait_for() picks it up
        }
        if (f) f(std::move(r));
    }
    std::mutex mu;
    asio::steady_timer timer;
    bool done = false;
    std::optional<TokenResult> result;
    std::function<void(TokenResult)> resume;
};

// Ends a flight however its coroutine ends: normally (done), or destroyed with
// its executor. Then the entry is no longer marked in flight; the waiters are
// not woken from here (their executors may be going away too): their own
// bounds end their wait.
struct FlightGuard {
    TokenCache* cache;
    std::string key;
    uint64_t flight;
    bool done = false;
    ~FlightGuard() {
        if (done) return;
        TokenResult r;
        r.error.error = "internal_error";
        r.error.description = "the token request was abandoned";
        r.error.transient = true;
        cache->finish_flight(key, flight, std::move(r), false);
    }
};

namespace {
TokenResult error_result(std::string error, std::string description, bool transient) {
    TokenResult r;
    r.error.error = std::move(error);
    r.error.description = std::move(description);
    r.error.transient = transient;
    return r;
}
}  // namespace

TokenCache::TokenCache(std::map<std::string, Source> sources, config::TokenSettings settings, Clock clock,
                       Limits limits)
    : sources_(std::move(sources)), settings_(std::move(settings)), clock_(std::move(clock)), limits_(limits) {
    if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
    if (limits_.max_wait <= std::chrono::steady_clock::duration::zero()) {
        // Each attempt: connect and exchange, each bounded by http_timeout; the
        // backoffs between attempts; 5 s for the rest (DNS, token store).
        int attempts = std::clamp(settings_.max_attempts, 1, 16);
        auto backoffs = settings_.backoff * ((1 << (attempts - 1)) - 1);
        limits_.max_wait = attempts * 2 * settings_.http_timeout + backoffs + std::chrono::seconds(5);
    }
    last_sweep_ = clock_();
}

void TokenCache::adopt(const TokenCache& old, const std::vector<std::string>& connections) {
    if (&old == this) return;
    std::scoped_lock lock(old.mu_, mu_);
    for (const auto& name : connections) {
        if (!sources_.count(name)) continue;
        const std::string prefix = name + "\n";
        for (auto it = old.entries_.lower_bound(prefix); it != old.entries_.end() && it->first.starts_with(prefix); ++it) {
            const Entry& from = it->second;
            if (!from.token || entries_.count(it->first)) continue;
            Entry& e = entries_[it->first];
            e.token = from.token;
            e.last_used = from.last_used;
            e.per_mailbox = from.per_mailbox;
            e.requests = from.requests;
            e.failures = from.failures;
            e.last_error = from.last_error;
            e.last_error_at = from.last_error_at;
            if (e.per_mailbox) ++mailbox_entries_;
        }
    }
}

std::string TokenCache::key(const std::string& connection, const std::string& mailbox) const {
    auto it = sources_.find(connection);
    bool per_mailbox = it != sources_.end() && it->second.provider->per_mailbox();
    return per_mailbox ? connection + "\n" + mailbox : connection + "\n";
}

awaitable<TokenResult> TokenCache::wait_for(std::shared_ptr<Waiter> w, std::chrono::steady_clock::duration bound) {
    return asio::async_initiate<decltype(use_awaitable), void(TokenResult)>(
        [w, bound](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            auto resume = [h](TokenResult r) {
                auto ex = asio::get_associated_executor(*h);
                asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
            };
            std::unique_lock lock(w->mu);
            if (w->done) {   // the flight ended before this caller parked
                TokenResult r = std::move(*w->result);
                lock.unlock();
                resume(std::move(r));
                return;
            }
            w->resume = std::move(resume);
            w->timer.expires_after(bound);
            long long secs = std::chrono::ceil<std::chrono::seconds>(bound).count();
            w->timer.async_wait([w, secs](error_code ec) {
                if (ec) return;   // cancelled: the result came first
                w->deliver(error_result("timeout", "token request still running after " + std::to_string(secs) + " s",
                                        true));
            });
        },
        use_awaitable);
}

awaitable<TokenResult> TokenCache::get(std::string connection, std::string mailbox) {
    auto src = sources_.find(connection);
    if (src == sources_.end())
        co_return error_result("unknown_connection", "no connection named " + util::utf8_safe(connection), false);
    const bool per_mailbox = src->second.provider->per_mailbox();
    // Never replaced: another name would be another identity (and another cache entry).
    if (per_mailbox && !util::valid_utf8(mailbox))
        co_return error_result("invalid_request", "mailbox is not valid UTF-8", false);
    const auto window = src->second.refresh_window;
    const std::string k = key(connection, mailbox);
    auto ex = co_await asio::this_coro::executor;
    TokenResult r;
    std::shared_ptr<Waiter> w;
    uint64_t spawn = 0;
    {
        std::lock_guard lock(mu_);
        const auto now = clock_();
        auto [it, inserted] = entries_.try_emplace(k);
        Entry& e = it->second;
        if (inserted) {
            e.per_mailbox = per_mailbox;
            if (per_mailbox) ++mailbox_entries_;
        }
        e.last_used = now;
        const bool stuck = e.in_flight && std::chrono::steady_clock::now() - e.flight_started > limits_.max_wait;
        if (e.token) {
            auto left = e.token->expires_at - now;
            if (left > window) {
                r.token = e.token;
            } else if (left >= limits_.min_left) {   // stale-while-revalidate
                r.token = e.token;
                bool backing_off = e.last_failed && now - *e.last_failed < limits_.background_retry;
                if ((!e.in_flight && !backing_off) || stuck) spawn = start_flight_locked(e);
            }
        }
        if (!r.ok()) {
            if (!e.in_flight || stuck) spawn = start_flight_locked(e);
            w = std::make_shared<Waiter>(ex);
            e.waiters.push_back(w);
        }
        if (inserted) evict_locked(now);   // never `e`: it has a waiter
    }
    if (spawn) asio::co_spawn(ex, run_flight(shared_from_this(), connection, mailbox, k, spawn), asio::detached);
    if (r.ok()) co_return r;
    co_return co_await wait_for(std::move(w), limits_.max_wait);
}

uint64_t TokenCache::start_flight_locked(Entry& e) {
    e.in_flight = true;
    e.flight = next_flight_++;
    e.flight_started = std::chrono::steady_clock::now();
    return e.flight;
}

awaitable<void> TokenCache::run_flight(std::shared_ptr<TokenCache> self, std::string connection,
                                       std::string mailbox, std::string key, uint64_t flight) {
    FlightGuard guard{self.get(), key, flight};
    TokenResult r;
    try {
        std::shared_ptr<TokenProvider> provider = self->sources_.at(connection).provider;
        r = co_await self->fetch_with_retries(provider, connection, mailbox, key);
    } catch (const std::exception& ex) {
        // e.g. nlohmann::json::type_error from dump(): its text names a byte
        // position, never the data. Cut and made valid text all the same.
        r = error_result("internal_error",
                         "the token request failed: " + util::utf8_safe(util::truncate_utf8(ex.what(), 200)), false);
        spdlog::error("token connection={} mailbox={} failed with an exception: {}", util::log_escape(connection),
                      util::log_escape(mailbox), util::log_escape(r.error.description));
    }
    guard.done = true;
    self->finish_flight(key, flight, std::move(r), true);
}

void TokenCache::finish_flight(const std::string& key, uint64_t flight, TokenResult r, bool wake) {
    std::vector<std::shared_ptr<Waiter>> waiters;
    {
        std::lock_guard lock(mu_);
        auto it = entries_.find(key);
        if (it == entries_.end()) return;
        Entry& e = it->second;
        const auto now = clock_();
        // A request replaced by a newer one (after max_wait) may still bring a
        // token; its failure says nothing about the newer one.
        const bool current = e.in_flight && e.flight == flight;
        if (r.ok()) {
            e.token = r.token;
            e.last_error.reset();
            e.last_failed.reset();
        } else if (current) {
            e.last_error = r.error;
            e.last_error_at = std::chrono::system_clock::now();
            e.last_failed = now;
            // A token that has not expired yet still works: hand it out.
            if (e.token && now < e.token->expires_at) r.token = e.token;
        }
        if (!current) return;
        e.in_flight = false;
        if (!wake) return;
        for (auto& wp : e.waiters)
            if (auto w = wp.lock()) waiters.push_back(std::move(w));
        e.waiters.clear();
    }
    for (auto& w : waiters) w->deliver(r);
}

void TokenCache::count_request(const std::string& key, bool failure) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    ++(failure ? it->second.failures : it->second.requests);
}

awaitable<TokenResult> TokenCache::fetch_with_retries(std::shared_ptr<TokenProvider> p, std::string connection,
                                                      std::string mailbox, std::string key) {
    auto ex = co_await asio::this_coro::executor;
    const std::string who = p->per_mailbox() ? util::log_escape(mailbox) : "*";
    auto delay = settings_.backoff;
    TokenResult r;
    const int attempts = std::max(1, settings_.max_attempts);
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        count_request(key, false);
        auto started = std::chrono::steady_clock::now();
        r = co_await p->fetch(mailbox);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        if (r.ok()) {
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(r.token->expires_at - clock_());
            spdlog::info("token connection={} mailbox={} obtained expires_in={}s scope=\"{}\" took={}ms",
                         util::log_escape(connection), who, secs.count(), util::log_escape(r.token->scope), ms.count());
            co_return r;
        }
        count_request(key, true);
        spdlog::warn("token connection={} mailbox={} attempt={} failed: {}; fix: {}", util::log_escape(connection), who,
                     attempt, util::log_escape(r.error.summary()),
                     diagnose::token_error_advice(r.error.code, r.error.error, r.error.description));
        if (!r.error.transient || attempt == attempts) break;
        asio::steady_timer t(ex, delay);
        co_await t.async_wait(use_awaitable);
        delay *= 2;
    }
    co_return r;
}

void TokenCache::evict_locked(std::chrono::steady_clock::time_point now) {
    const bool over = mailbox_entries_ > limits_.max_mailbox_entries;
    if (!over && now - last_sweep_ < std::chrono::seconds(60)) return;
    last_sweep_ = now;
    auto busy = [](const Entry& e) {
        return e.in_flight ||
               std::any_of(e.waiters.begin(), e.waiters.end(), [](const auto& w) { return !w.expired(); });
    };
    auto valid = [now](const Entry& e) { return e.token && now < e.token->expires_at; };
    auto erase = [this](std::map<std::string, Entry>::iterator it) {
        if (it->second.per_mailbox) --mailbox_entries_;
        return entries_.erase(it);
    };
    for (auto it = entries_.begin(); it != entries_.end();) {
        const Entry& e = it->second;
        if (!busy(e) && !valid(e) && now - e.last_used >= limits_.idle_evict) it = erase(it);
        else ++it;
    }
    if (mailbox_entries_ <= limits_.max_mailbox_entries) return;
    // Over the cap: least recently used first, those without a valid token before those with one.
    std::vector<std::tuple<bool, std::chrono::steady_clock::time_point, std::string>> order;
    for (const auto& [k, e] : entries_)
        if (e.per_mailbox && !busy(e)) order.emplace_back(valid(e), e.last_used, k);
    std::sort(order.begin(), order.end());
    const std::size_t target = limits_.max_mailbox_entries - limits_.max_mailbox_entries / 10;
    for (const auto& o : order) {
        if (mailbox_entries_ <= target) break;
        erase(entries_.find(std::get<2>(o)));
    }
}

void TokenCache::invalidate(const std::string& connection, const std::string& mailbox,
                            const std::string& token) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key(connection, mailbox));
    if (it != entries_.end() && it->second.token && it->second.token->access_token == token)
        it->second.token.reset();
}

std::size_t TokenCache::size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
}

std::vector<CacheEntryStatus> TokenCache::status() const {
    std::vector<CacheEntryStatus> out;
    std::lock_guard lock(mu_);
    for (const auto& [k, e] : entries_) {
        CacheEntryStatus s;
        auto nl = k.find('\n');
        s.connection = k.substr(0, nl);
        s.mailbox = k.substr(nl + 1);
        auto src = sources_.find(s.connection);
        if (src != sources_.end()) s.provider = src->second.provider->describe();
        s.has_token = e.token.has_value();
        if (e.token) s.expires_wall = e.token->expires_wall;
        s.last_error = e.last_error;
        s.last_error_at = e.last_error_at;
        s.requests = e.requests;
        s.failures = e.failures;
        out.push_back(std::move(s));
    }
    return out;
}

uint64_t TokenCache::total_requests() const {
    std::lock_guard lock(mu_);
    uint64_t n = 0;
    for (const auto& [k, e] : entries_) n += e.requests;
    return n;
}

}  // namespace xo::oauth

namespace xo::oauth {
std::shared_ptr<TokenCache> make_token_cache(const config::Config& cfg, std::vector<std::string>& problems) {
    std::map<std::string, TokenCache::Source> sources;
    std::shared_ptr<TokenStore> store;
    std::string store_error;
    for (const auto& [name, conn] : cfg.connections) {
        bool interactive = conn.flow == config::Flow::authorization_code || conn.flow == config::Flow::device_code;
        if (interactive && !store && store_error.empty()) {
            try {
                store = make_token_store(cfg.tokens);
            } catch (const std::exception& e) {
                store_error = e.what();
            }
        }
        if (interactive && !store) {
            problems.push_back("connection " + name + ": " + store_error);
            continue;
        }
        try {
            sources[name] = TokenCache::Source{make_provider(conn, cfg.tokens, interactive ? store : nullptr),
                                               conn.refresh_window};
            // The API's token (Graph's scope differs from SMTP's): a source of its own.
            if (conn.uses_api() && conn.api_token_source() != name) {
                config::Connection api = conn;
                api.scope = conn.api_scope;
                sources[conn.api_token_source()] = TokenCache::Source{make_provider(api, cfg.tokens, nullptr),
                                                                      conn.refresh_window};
            }
        } catch (const std::exception& ex) {
            problems.push_back("connection " + name + ": " + ex.what());
        }
    }
    auto cache = std::make_shared<TokenCache>(std::move(sources), cfg.tokens);
    cache->set_store(store);
    return cache;
}
}  // namespace xo::oauth
