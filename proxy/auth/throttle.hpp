// Slows down repeated authentication failures per client address: no delay
// for the first two failures within the window, then 1 s doubling up to 15 s.
// Entries decay after `window` without failures; memory is bounded. Thread-safe.
#pragma once
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace xo::auth {

class FailureThrottle {
public:
    explicit FailureThrottle(std::chrono::seconds window = std::chrono::minutes(10), std::size_t max_entries = 100000);
    std::chrono::milliseconds delay_for(const std::string& ip);
    void record_failure(const std::string& ip);
    void record_success(const std::string& ip);

private:
    struct Entry {
        unsigned failures = 0;
        std::chrono::steady_clock::time_point last;
    };
    std::chrono::seconds window_;
    std::size_t max_entries_;
    std::mutex mu_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace xo::auth
