// The token cache against a scripted provider and a fake clock (no sleeping on
// token lifetimes): exceptions become error results for every waiter, waits
// are bounded, the cached token is served while one background refresh runs,
// unused entries are evicted, a mailbox that is not UTF-8 is refused.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "oauth/provider.hpp"
#include "oauth/token_cache.hpp"

using namespace xo;
using namespace xo::oauth;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct FakeClock {
    steady::time_point base = steady::now();
    std::atomic<long long> offset_s{0};
    steady::time_point now() const { return base + std::chrono::seconds(offset_s.load()); }
    TokenCache::Clock fn() {
        return [this] { return now(); };
    }
};

// Answers, fails, throws or hangs, as told; counts its requests.
class ScriptedProvider : public TokenProvider {
public:
    enum class Mode { answer, fail, throw_json, hang };
    ScriptedProvider(FakeClock* clock, std::chrono::seconds lifetime, bool per_mailbox = false)
        : clock_(clock), lifetime_(lifetime), per_mailbox_(per_mailbox) {}
    awaitable<TokenResult> fetch(std::string mailbox) override {
        int n = ++calls;
        Mode m = mode.load();
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer t(ex, m == Mode::hang ? std::chrono::milliseconds(3600 * 1000) : delay);
        error_code ec;
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        TokenResult r;
        if (m == Mode::throw_json) {
            nlohmann::json j = {{"sub", "\xff" "0@domain"}};
            r.error.description = j.dump();   // throws nlohmann::json::type_error 316
        }
        if (m == Mode::fail) {
            r.error.error = "invalid_client";
            r.error.http_status = 401;
            r.error.description = description;
            co_return r;
        }
        Token tok;
        tok.access_token = "token-" + std::to_string(n) + "-" + mailbox;
        tok.expires_at = clock_->now() + lifetime_;
        tok.expires_wall = std::chrono::system_clock::now() + lifetime_;
        r.token = tok;
        co_return r;
    }
    bool per_mailbox() const override { return per_mailbox_; }
    std::string describe() const override { return "scripted"; }
    std::atomic<int> calls{0};
    std::atomic<Mode> mode{Mode::answer};
    std::chrono::milliseconds delay{5};
    std::string description = "bad";

private:
    FakeClock* clock_;
    std::chrono::seconds lifetime_;
    bool per_mailbox_;
};

struct Got {
    bool done = false;
    std::string value;   // the token, or "error:ERROR:DESCRIPTION"
    steady::duration took{};
};

awaitable<void> get_into(std::shared_ptr<TokenCache> c, std::string conn, std::string mailbox, Got* out) {
    auto t0 = steady::now();
    auto r = co_await c->get(conn, mailbox);
    out->took = steady::now() - t0;
    out->value = r.ok() ? r.token->access_token : "error:" + r.error.error + ":" + r.error.description;
    out->done = true;
}

// Runs io until pred() holds or `limit` passes; every test stays bounded in time.
bool run_until(asio::io_context& io, const std::function<bool()>& pred, steady::duration limit = 5s) {
    auto deadline = steady::now() + limit;
    while (!pred() && steady::now() < deadline) {
        io.restart();
        io.run_for(10ms);
    }
    return pred();
}

config::TokenSettings fast_settings() {
    config::TokenSettings s;
    s.backoff = 1ms;
    s.max_attempts = 2;
    return s;
}

std::shared_ptr<TokenCache> make_cache(std::shared_ptr<ScriptedProvider> p, FakeClock& clock,
                                       TokenCacheLimits limits = {}) {
    return std::make_shared<TokenCache>(std::map<std::string, TokenCache::Source>{{"c", {p, 300s}}}, fast_settings(),
                                        clock.fn(), limits);
}

}  // namespace

TEST(TokenCache, ProviderExceptionBecomesAnErrorForEveryWaiter) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    p->mode = ScriptedProvider::Mode::throw_json;
    auto cache = make_cache(p, clock);
    asio::io_context io;
    std::vector<Got> got(5);
    for (auto& g : got) asio::co_spawn(io, get_into(cache, "c", "", &g), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.done; }); }));
    for (const auto& g : got) {
        EXPECT_EQ(g.value.rfind("error:internal_error:the token request failed: [json.exception.type_error.316]", 0), 0u)
            << g.value;
        EXPECT_EQ(g.value.find("\xff"), std::string::npos);
    }
    EXPECT_EQ(p->calls.load(), 1);   // an exception is not worth a retry
    auto st = cache->status();
    ASSERT_EQ(st.size(), 1u);
    ASSERT_TRUE(st[0].last_error);
    EXPECT_EQ(st[0].last_error->error, "internal_error");
    // Nothing is left "in flight": the next caller asks again and succeeds.
    p->mode = ScriptedProvider::Mode::answer;
    Got next;
    asio::co_spawn(io, get_into(cache, "c", "", &next), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return next.done; }));
    EXPECT_EQ(next.value, "token-2-");
}

TEST(TokenCache, EveryWaitIsBounded) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    p->mode = ScriptedProvider::Mode::hang;
    TokenCacheLimits limits;
    limits.max_wait = 300ms;
    auto cache = make_cache(p, clock, limits);
    asio::io_context io;
    std::vector<Got> got(3);
    for (auto& g : got) asio::co_spawn(io, get_into(cache, "c", "", &g), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.done; }); }));
    for (const auto& g : got) {
        EXPECT_EQ(g.value, "error:timeout:token request still running after 1 s");
        EXPECT_LT(g.took, 2s);
        EXPECT_GE(g.took, 250ms);
    }
    EXPECT_EQ(p->calls.load(), 1);
    // Past the bound the hung request no longer blocks the key: a new one is made.
    p->mode = ScriptedProvider::Mode::answer;
    Got next;
    asio::co_spawn(io, get_into(cache, "c", "", &next), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return next.done; }));
    EXPECT_EQ(next.value, "token-2-");
    io.stop();
}

TEST(TokenCache, DefaultWaitBoundFollowsTheSettings) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    config::TokenSettings s;   // 3 attempts, 30 s timeout, 500 ms backoff
    TokenCache cache({{"c", {p, 300s}}}, s);
    EXPECT_EQ(cache.max_wait(), 3 * 2 * 30s + 1500ms + 5s);
}

TEST(TokenCache, ServesTheCachedTokenWhileOneBackgroundRefreshRuns) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    auto cache = make_cache(p, clock);
    asio::io_context io;
    Got first;
    asio::co_spawn(io, get_into(cache, "c", "", &first), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return first.done; }));
    EXPECT_EQ(first.value, "token-1-");

    // 59 minutes later: 60 s left, inside the 300 s window. The identity provider hangs.
    clock.offset_s = 3600 - 60;
    p->mode = ScriptedProvider::Mode::hang;
    std::vector<Got> got(20);
    for (auto& g : got) asio::co_spawn(io, get_into(cache, "c", "", &g), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return std::all_of(got.begin(), got.end(), [](auto& g) { return g.done; }); }, 1s));
    for (const auto& g : got) {
        EXPECT_EQ(g.value, "token-1-");
        EXPECT_LT(g.took, 500ms);
    }
    EXPECT_EQ(p->calls.load(), 2);   // one background refresh for all twenty
    io.stop();
}

TEST(TokenCache, BackgroundRefreshReplacesTheToken) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    auto cache = make_cache(p, clock);
    asio::io_context io;
    Got a, b, c;
    asio::co_spawn(io, get_into(cache, "c", "", &a), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return a.done; }));
    clock.offset_s = 3600 - 200;   // in the window, 200 s left
    const auto first_expiry = cache->status()[0].expires_wall;
    asio::co_spawn(io, get_into(cache, "c", "", &b), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return b.done && p->calls.load() == 2 && cache->status()[0].requests == 2; }));
    // The refresh has finished once the cache holds the new token's expiry.
    ASSERT_TRUE(run_until(io, [&] { return cache->status()[0].expires_wall != first_expiry; }));
    EXPECT_EQ(b.value, "token-1-");
    asio::co_spawn(io, get_into(cache, "c", "", &c), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return c.done; }));
    EXPECT_EQ(c.value, "token-2-");   // fresh again: no further request
    EXPECT_EQ(p->calls.load(), 2);
}

TEST(TokenCache, CallersWaitWhenLessThanAMinuteIsLeft) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s);
    auto cache = make_cache(p, clock);
    asio::io_context io;
    Got a, b;
    asio::co_spawn(io, get_into(cache, "c", "", &a), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return a.done; }));
    clock.offset_s = 3600 - 59;
    asio::co_spawn(io, get_into(cache, "c", "", &b), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return b.done; }));
    EXPECT_EQ(b.value, "token-2-");
    // A failed refresh still hands out the old token while it has not expired.
    clock.offset_s = clock.offset_s + 3600 - 30;   // token-2 has 30 s left
    p->mode = ScriptedProvider::Mode::fail;
    Got c;
    asio::co_spawn(io, get_into(cache, "c", "", &c), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return c.done; }));
    EXPECT_EQ(c.value, "token-2-");
}

namespace {
awaitable<void> many_gets(std::shared_ptr<TokenCache> c, int n, bool* done) {
    for (int i = 0; i < n; ++i) (void)co_await c->get("c", "random" + std::to_string(i) + "@x");
    *done = true;
}
}  // namespace

TEST(TokenCache, UnusedEntriesAreEvicted) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s, true);
    p->mode = ScriptedProvider::Mode::fail;
    p->delay = 0ms;
    TokenCacheLimits limits;
    limits.max_mailbox_entries = 50;
    auto cache = make_cache(p, clock, limits);
    asio::io_context io;
    // Random mailbox names, one after the other (as MAIL FROM on a trusted listener would bring them).
    bool all = false;
    asio::co_spawn(io, many_gets(cache, 500, &all), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return all; }, 20s));
    EXPECT_LE(cache->size(), 51u);   // capped
    // Unused for longer than idle_evict, without a valid token: gone at the next sweep.
    clock.offset_s = 11 * 60;
    Got one;
    asio::co_spawn(io, get_into(cache, "c", "late@x", &one), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return one.done; }));
    EXPECT_EQ(cache->size(), 1u);
}

TEST(TokenCache, MailboxThatIsNotUtf8IsRefusedNotReplaced) {
    FakeClock clock;
    auto p = std::make_shared<ScriptedProvider>(&clock, 3600s, true);
    auto cache = make_cache(p, clock);
    asio::io_context io;
    Got g;
    asio::co_spawn(io, get_into(cache, "c", "\xff" "0@domain", &g), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return g.done; }));
    EXPECT_EQ(g.value, "error:invalid_request:mailbox is not valid UTF-8");
    EXPECT_EQ(p->calls.load(), 0);
    EXPECT_EQ(cache->size(), 0u);
}

TEST(TokenCache, AReloadAdoptsTheTokensOfUnchangedConnectionsOnly) {
    FakeClock clock;
    auto old_c = std::make_shared<ScriptedProvider>(&clock, 3600s);
    auto old_d = std::make_shared<ScriptedProvider>(&clock, 3600s, true);
    auto old_cache = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"c", {old_c, 300s}}, {"d", {old_d, 300s}}}, fast_settings(),
        clock.fn());
    asio::io_context io;
    Got c1, d1;
    asio::co_spawn(io, get_into(old_cache, "c", "", &c1), asio::detached);
    asio::co_spawn(io, get_into(old_cache, "d", "m@contoso.test", &d1), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return c1.done && d1.done; }));

    // The reload left "c" alone and changed "d" (e.g. a new key).
    auto new_c = std::make_shared<ScriptedProvider>(&clock, 3600s);
    auto new_d = std::make_shared<ScriptedProvider>(&clock, 3600s, true);
    auto cache = std::make_shared<TokenCache>(
        std::map<std::string, TokenCache::Source>{{"c", {new_c, 300s}}, {"d", {new_d, 300s}}}, fast_settings(),
        clock.fn());
    cache->adopt(*old_cache, {"c", "gone"});
    Got c2, d2;
    asio::co_spawn(io, get_into(cache, "c", "", &c2), asio::detached);
    asio::co_spawn(io, get_into(cache, "d", "m@contoso.test", &d2), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return c2.done && d2.done; }));
    EXPECT_EQ(c2.value, "token-1-");   // the old token, no request
    EXPECT_EQ(new_c->calls.load(), 0);
    EXPECT_EQ(d2.value, "token-1-m@contoso.test");   // from the new provider
    EXPECT_EQ(new_d->calls.load(), 1);
    EXPECT_EQ(cache->total_requests(), 2u);   // the adopted entry keeps its count for /status

    // Adopted tokens renew as usual once in the window.
    clock.offset_s = 3600 - 30;
    Got c3;
    asio::co_spawn(io, get_into(cache, "c", "", &c3), asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return c3.done; }));
    EXPECT_EQ(c3.value, "token-1-");
    EXPECT_EQ(new_c->calls.load(), 1);
}
