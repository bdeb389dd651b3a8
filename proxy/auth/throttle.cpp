#include "auth/throttle.hpp"

#include <algorithm>

namespace xo::auth {

FailureThrottle::FailureThrottle(std::chrono::seconds window, std::size_t max_entries)
    : window_(window), max_entries_(max_entries) {}

std::chrono::milliseconds FailureThrottle::delay_for(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(ip);
    if (it == entries_.end()) return std::chrono::milliseconds(0);
    if (std::chrono::steady_clock::now() - it->second.last > window_) {
        entries_.erase(it);
        return std::chrono::milliseconds(0);
    }
    unsigned f = it->second.failures;
    if (f < 2) return std::chrono::milliseconds(0);
    unsigned shift = std::min(f - 2, 4u);
    return std::min(std::chrono::milliseconds(1000u << shift), std::chrono::milliseconds(15000));
}

void FailureThrottle::record_failure(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (entries_.size() >= max_entries_) {
        for (auto it = entries_.begin(); it != entries_.end();)
            it = now - it->second.last > window_ ? entries_.erase(it) : std::next(it);
        if (entries_.size() >= max_entries_) entries_.clear();
    }
    auto& e = entries_[ip];
    if (e.failures && now - e.last > window_) e.failures = 0;
    ++e.failures;
    e.last = now;
}

void FailureThrottle::record_success(const std::string& ip) {
    std::lock_guard lock(mu_);
    entries_.erase(ip);
}

}  // namespace xo::auth
