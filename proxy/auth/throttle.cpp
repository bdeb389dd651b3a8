#include "auth/throttle.hpp"

#include <algorithm>

namespace xo::auth {

FailureThrottle::FailureThrottle(clock::duration window, std::size_t max_entries, std::size_t global_threshold,
                                 clock::duration global_window)
    : window_(window),
      max_entries_(max_entries ? max_entries : 1),
      global_threshold_(global_threshold ? global_threshold : 1),
      global_window_(global_window) {}

std::chrono::milliseconds FailureThrottle::delay_after(unsigned failures) {
    if (failures < 2) return std::chrono::milliseconds(0);
    unsigned shift = std::min(failures - 2, 4u);
    return std::min(std::chrono::milliseconds(1000u << shift), std::chrono::milliseconds(15000));
}

FailureThrottle::Entry* FailureThrottle::find_locked(const std::string& ip, clock::time_point now) {
    auto it = index_.find(ip);
    if (it == index_.end()) return nullptr;
    if (now - it->second->last > window_) {
        lru_.erase(it->second);
        index_.erase(it);
        return nullptr;
    }
    return &*it->second;
}

bool FailureThrottle::under_attack_locked(clock::time_point now) const {
    // recent_ holds at most global_threshold_ failures: all of them within the
    // window means at least that many failures in it.
    return recent_.size() >= global_threshold_ && now - recent_.front() <= global_window_;
}

std::chrono::milliseconds FailureThrottle::delay_for(const std::string& ip) {
    std::lock_guard lock(mu_);
    Entry* e = find_locked(ip, clock::now());
    return e ? delay_after(e->failures) : std::chrono::milliseconds(0);
}

bool FailureThrottle::recently_failed(const std::string& ip) {
    std::lock_guard lock(mu_);
    Entry* e = find_locked(ip, clock::now());
    return e && e->failures > 0;
}

bool FailureThrottle::refuse_now(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto now = clock::now();
    if (!under_attack_locked(now)) return false;
    Entry* e = find_locked(ip, now);
    return e && e->failures > 0;
}

bool FailureThrottle::under_attack() {
    std::lock_guard lock(mu_);
    return under_attack_locked(clock::now());
}

void FailureThrottle::record_failure(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto now = clock::now();
    recent_.push_back(now);
    while (recent_.size() > global_threshold_) recent_.pop_front();
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
    auto it = index_.find(ip);
    if (it == index_.end()) return;
    // Decay, not a reset: one good login between many bad ones leaves most of them.
    it->second->failures /= 2;
    if (it->second->failures == 0) {
        lru_.erase(it->second);
        index_.erase(it);
    }
}

std::size_t FailureThrottle::size() const {
    std::lock_guard lock(mu_);
    return index_.size();
}

}  // namespace xo::auth
