#include "auth/throttle.hpp"

#include <algorithm>

namespace xo::auth {

FailureThrottle::FailureThrottle(clock::duration window, std::size_t max_entries)
    : window_(window), max_entries_(max_entries ? max_entries : 1) {}

std::chrono::milliseconds FailureThrottle::delay_after(unsigned failures) {
    if (failures < 2) return std::chrono::milliseconds(0);
    unsigned shift = std::min(failures - 2, 4u);
    return std::min(std::chrono::milliseconds(1000u << shift), std::chrono::milliseconds(15000));
}

std::chrono::milliseconds FailureThrottle::delay_for(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto it = index_.find(ip);
    if (it == index_.end()) return std::chrono::milliseconds(0);
    if (clock::now() - it->second->last > window_) {
        lru_.erase(it->second);
        index_.erase(it);
        return std::chrono::milliseconds(0);
    }
    return delay_after(it->second->failures);
}

void FailureThrottle::record_failure(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto now = clock::now();
    unsigned failures = 0;
    if (auto it = index_.find(ip); it != index_.end()) {
        if (now - it->second->last <= window_) failures = it->second->failures;
        lru_.erase(it->second);
        index_.erase(it);
    }
    while (index_.size() >= max_entries_) {
        index_.erase(lru_.back().ip);
        lru_.pop_back();
    }
    lru_.push_front(Entry{ip, failures + 1, now});
    index_[ip] = lru_.begin();
}

void FailureThrottle::record_success(const std::string& ip) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(ip); it != index_.end()) {
        lru_.erase(it->second);
        index_.erase(it);
    }
}

std::size_t FailureThrottle::size() const {
    std::lock_guard lock(mu_);
    return index_.size();
}

}  // namespace xo::auth
