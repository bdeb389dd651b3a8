#include "smtp/pool.hpp"

#include <spdlog/spdlog.h>

namespace xo::smtp {

using clock = std::chrono::steady_clock;

bool UpstreamPool::usable(const Upstream& up, clock::time_point now) const {
    return up.messages() < limits_.max_messages && now + std::chrono::seconds(60) < up.token_expires_at();
}

awaitable<UpstreamPool::Lease> UpstreamPool::acquire() {
    auto ex = co_await asio::this_coro::executor;
    auto waiter = std::make_shared<Waiter>();
    {
        std::lock_guard lock(mu_);
        auto now = clock::now();
        sweep(now);
        while (!idle_.empty()) {   // the most recently used first: it is the warmest
            Idle i = std::move(idle_.back());
            idle_.pop_back();
            if (usable(*i.up, now) && now - i.since < limits_.idle) co_return Lease{std::move(i.up), false};
            i.up->link().close();
            --total_;
        }
        if (waiters_.empty() && (limits_.max_sessions == 0 || total_ < limits_.max_sessions)) {
            ++total_;
            co_return Lease{nullptr, true};
        }
        waiter->ex = ex;
        waiter->timer = std::make_shared<asio::steady_timer>(ex, limits_.wait);
        waiters_.push_back(waiter);
    }
    // hand_over() cancels the timer on this executor, so the wake-up cannot be lost.
    error_code ec;
    co_await waiter->timer->async_wait(asio::redirect_error(use_awaitable, ec));
    std::lock_guard lock(mu_);
    if (!waiter->done) {   // timed out: leave the queue
        for (auto it = waiters_.begin(); it != waiters_.end(); ++it)
            if (*it == waiter) {
                waiters_.erase(it);
                break;
            }
        co_return Lease{};
    }
    co_return Lease{std::move(waiter->up), waiter->room};
}

void UpstreamPool::hand_over(std::unique_lock<std::mutex>& lock, std::unique_ptr<Upstream> up) {
    if (!waiters_.empty()) {
        auto w = waiters_.front();
        waiters_.pop_front();
        w->done = true;
        if (up) w->up = std::move(up);
        else w->room = true;   // the slot passes to the waiter: total_ unchanged
        auto timer = w->timer;
        lock.unlock();
        asio::post(w->ex, [timer] { timer->cancel(); });
        return;
    }
    if (up) {
        auto ex = up->link().executor();
        idle_.push_back(Idle{std::move(up), clock::now()});
        schedule_sweep(ex);
    } else {
        --total_;
    }
}

void UpstreamPool::release(std::unique_ptr<Upstream> up, bool reusable) {
    if (up && up->owes()) {   // nobody may wait on a reply that no one reads
        if (reusable && pass_on(up)) return;
        auto ex = up->link().executor();
        asio::co_spawn(ex, settle_then_release(shared_from_this(), std::move(up), reusable), asio::detached);
        return;
    }
    std::unique_lock lock(mu_);
    if (!up) {
        hand_over(lock, nullptr);
        return;
    }
    if (!reusable || retired_ || !usable(*up, clock::now())) {
        up->link().close();
        up.reset();
    } else {
        proved(*up);
    }
    hand_over(lock, std::move(up));
}

awaitable<void> UpstreamPool::settle_then_release(std::shared_ptr<UpstreamPool> self, std::unique_ptr<Upstream> up,
                                                  bool reusable) {
    error_code ec;
    co_await up->settle(ec);
    self->release(std::move(up), reusable && !ec);
}

void UpstreamPool::proved(const Upstream& up) {
    proven_ = clock::now();
    smtputf8_ = up.capabilities().smtputf8;
}

bool UpstreamPool::pass_on(std::unique_ptr<Upstream>& up) {
    std::unique_lock lock(mu_);
    if (waiters_.empty() || retired_ || !usable(*up, clock::now())) return false;
    proved(*up);   // it has just taken a whole transaction
    hand_over(lock, std::move(up));
    return true;
}

void UpstreamPool::forfeit() {
    std::unique_lock lock(mu_);
    hand_over(lock, nullptr);
}

void UpstreamPool::retire() {
    {
        std::lock_guard lock(mu_);
        retired_ = true;
    }
    drop_idle();
}

void UpstreamPool::drop_idle() {
    std::lock_guard lock(mu_);
    for (auto& i : idle_) i.up->link().close();
    total_ -= idle_.size();   // no waiter queues while a session is idle: nobody to hand the room to
    idle_.clear();
}

void UpstreamPool::sweep(clock::time_point now) {
    for (auto it = idle_.begin(); it != idle_.end();) {
        if (now - it->since >= limits_.idle || !usable(*it->up, now)) {
            it->up->link().close();
            --total_;
            it = idle_.erase(it);
        } else {
            ++it;
        }
    }
}

// Idle sessions are closed once upstream_idle has passed, before the
// provider's own idle cut-off, whether or not anyone asks for one again.
void UpstreamPool::schedule_sweep(const asio::any_io_executor& ex) {
    if (sweep_scheduled_) return;
    sweep_scheduled_ = true;
    auto timer = std::make_shared<asio::steady_timer>(ex, limits_.idle + std::chrono::milliseconds(50));
    timer->async_wait([timer, weak = weak_from_this()](const error_code&) {
        auto self = weak.lock();
        if (!self) return;
        std::lock_guard lock(self->mu_);
        self->sweep_scheduled_ = false;
        self->sweep(clock::now());
        if (!self->idle_.empty()) self->schedule_sweep(timer->get_executor());
    });
}

bool UpstreamPool::busy_and_proven(bool& smtputf8) const {
    std::lock_guard lock(mu_);
    if (retired_ || total_ == 0 || !idle_.empty() || clock::now() - proven_ > limits_.idle) return false;
    smtputf8 = smtputf8_;
    return true;
}

std::size_t UpstreamPool::open_sessions() const {
    std::lock_guard lock(mu_);
    return total_;
}

std::size_t UpstreamPool::idle_sessions() const {
    std::lock_guard lock(mu_);
    return idle_.size();
}

std::size_t UpstreamPool::waiting() const {
    std::lock_guard lock(mu_);
    return waiters_.size();
}

std::shared_ptr<UpstreamPool> PoolRegistry::get(const config::Connection& c, const std::string& mailbox) {
    PoolLimits l;
    l.max_sessions = c.max_upstream_sessions;
    l.wait = c.upstream_wait;
    l.idle = c.upstream_idle;
    l.max_messages = c.upstream_max_messages;
    return get(c.smtp_identity(), mailbox, l);
}

std::shared_ptr<UpstreamPool> PoolRegistry::get(const std::string& identity, const std::string& mailbox,
                                                const PoolLimits& limits) {
    std::lock_guard lock(mu_);
    auto& p = pools_[identity + "\n" + mailbox];
    if (!p) p = std::make_shared<UpstreamPool>(limits);
    return p;
}

void PoolRegistry::retain(const config::Config& cfg) {
    std::set<std::string> keep;
    for (const auto& [name, c] : cfg.connections) keep.insert(c.smtp_identity());
    retain(keep);
}

void PoolRegistry::retain(const std::set<std::string>& keep) {
    std::vector<std::shared_ptr<UpstreamPool>> gone;
    {
        std::lock_guard lock(mu_);
        for (auto it = pools_.begin(); it != pools_.end();) {
            if (keep.count(it->first.substr(0, it->first.find('\n')))) {
                ++it;
            } else {
                gone.push_back(std::move(it->second));
                it = pools_.erase(it);
            }
        }
    }
    for (auto& p : gone) p->retire();
}

}  // namespace xo::smtp
