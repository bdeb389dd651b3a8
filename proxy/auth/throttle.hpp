// Slows down repeated authentication failures per client address: no delay
// for the first two failures within the window, then 1 s doubling up to 15 s
// (kDelays). An address's count decays after `window` without failures; a
// success clears it. At most `max_entries` addresses are tracked (the least
// recently failing are forgotten first). Thread-safe; never throws.
#pragma once
#include <chrono>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace xo::auth {

class FailureThrottle {
public:
    using clock = std::chrono::steady_clock;
    explicit FailureThrottle(clock::duration window = std::chrono::minutes(10), std::size_t max_entries = 100000);
    // How long to wait before answering this address's next attempt.
    std::chrono::milliseconds delay_for(const std::string& ip);
    void record_failure(const std::string& ip);
    void record_success(const std::string& ip);
    std::size_t size() const;

    static std::chrono::milliseconds delay_after(unsigned failures);   // the schedule

private:
    struct Entry {
        std::string ip;
        unsigned failures = 0;
        clock::time_point last;
    };
    clock::duration window_;
    std::size_t max_entries_;
    mutable std::mutex mu_;
    std::list<Entry> lru_;   // most recent failure first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace xo::auth
