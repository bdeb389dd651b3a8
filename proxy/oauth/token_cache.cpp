#include "oauth/token_cache.hpp"

#include <spdlog/spdlog.h>

#include "diagnose/diagnose.hpp"
#include "oauth/token_store.hpp"

namespace xo::oauth {

TokenCache::TokenCache(std::map<std::string, Source> sources, config::TokenSettings settings)
    : sources_(std::move(sources)), settings_(std::move(settings)) {}

std::string TokenCache::key(const std::string& connection, const std::string& mailbox) const {
    auto it = sources_.find(connection);
    bool per_mailbox = it != sources_.end() && it->second.provider->per_mailbox();
    return per_mailbox ? connection + "\n" + mailbox : connection + "\n";
}

awaitable<TokenResult> TokenCache::wait_for(Entry& e, uint64_t generation) {
    // Parks this coroutine's completion handler in e.waiters. The initiation runs
    // after the caller released mu_, so a fetch may have completed meanwhile:
    // the generation tells, and then its result is handed over at once.
    return asio::async_initiate<decltype(use_awaitable), void(TokenResult)>(
        [this, &e, generation](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            auto resume = [h](TokenResult r) {
                auto ex = asio::get_associated_executor(*h);
                asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
            };
            std::unique_lock lock(mu_);
            if (e.generation != generation) {
                TokenResult r = e.last_result;
                lock.unlock();
                resume(std::move(r));
            } else {
                e.waiters.push_back(std::move(resume));
            }
        },
        use_awaitable);
}

awaitable<TokenResult> TokenCache::get(std::string connection, std::string mailbox) {
    auto src = sources_.find(connection);
    if (src == sources_.end()) {
        TokenResult r;
        r.error.error = "unknown_connection";
        r.error.description = "no connection named " + connection;
        co_return r;
    }
    const auto window = src->second.refresh_window;
    Entry* e = nullptr;
    {
        std::unique_lock lock(mu_);
        e = &entries_[key(connection, mailbox)];
        auto now = std::chrono::steady_clock::now();
        if (e->token && now + window < e->token->expires_at) {
            TokenResult r;
            r.token = e->token;
            co_return r;
        }
        if (e->in_flight) {
            uint64_t generation = e->generation;
            lock.unlock();
            co_return co_await wait_for(*e, generation);
        }
        e->in_flight = true;
    }
    TokenResult r = co_await fetch_with_retries(src->second.provider, connection, mailbox, e);
    std::vector<std::function<void(TokenResult)>> waiters;
    {
        std::lock_guard lock(mu_);
        if (r.ok()) {
            e->token = r.token;
            e->last_error.reset();
        } else {
            e->last_error = r.error;
            e->last_error_at = std::chrono::system_clock::now();
            // A token that has not expired yet still works: hand it out.
            if (e->token && std::chrono::steady_clock::now() < e->token->expires_at) r.token = e->token;
        }
        e->in_flight = false;
        ++e->generation;
        e->last_result = r;
        waiters.swap(e->waiters);
    }
    for (auto& w : waiters) w(r);
    co_return r;
}

awaitable<TokenResult> TokenCache::fetch_with_retries(std::shared_ptr<TokenProvider> p,
                                                      std::string connection, std::string mailbox,
                                                      Entry* e) {
    auto ex = co_await asio::this_coro::executor;
    auto delay = settings_.backoff;
    TokenResult r;
    for (int attempt = 1; attempt <= std::max(1, settings_.max_attempts); ++attempt) {
        {
            std::lock_guard lock(mu_);
            ++e->requests;
        }
        auto started = std::chrono::steady_clock::now();
        r = co_await p->fetch(mailbox);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        if (r.ok()) {
            auto secs = std::chrono::duration_cast<std::chrono::seconds>(r.token->expires_at -
                                                                         std::chrono::steady_clock::now());
            spdlog::info("token connection={} mailbox={} obtained expires_in={}s scope=\"{}\" took={}ms",
                         connection, p->per_mailbox() ? mailbox : "*", secs.count(), r.token->scope, ms.count());
            co_return r;
        }
        {
            std::lock_guard lock(mu_);
            ++e->failures;
        }
        spdlog::warn("token connection={} mailbox={} attempt={} failed: {}; fix: {}", connection,
                     p->per_mailbox() ? mailbox : "*", attempt, r.error.summary(),
                     diagnose::token_error_advice(r.error.code, r.error.error, r.error.description));
        if (!r.error.transient || attempt == settings_.max_attempts) break;
        asio::steady_timer t(ex, delay);
        co_await t.async_wait(use_awaitable);
        delay *= 2;
    }
    co_return r;
}

void TokenCache::invalidate(const std::string& connection, const std::string& mailbox,
                            const std::string& token) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key(connection, mailbox));
    if (it != entries_.end() && it->second.token && it->second.token->access_token == token)
        it->second.token.reset();
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
                store = std::make_shared<FileTokenStore>(cfg.tokens.store);
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
        } catch (const std::exception& ex) {
            problems.push_back("connection " + name + ": " + ex.what());
        }
    }
    return std::make_shared<TokenCache>(std::move(sources), cfg.tokens);
}
}  // namespace xo::oauth
