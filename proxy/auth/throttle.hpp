// Slows down repeated authentication failures, per client address and across
// all of them.
// Per address: no delay for the first two failures within the window, then 1 s
// doubling up to 15 s (delay_after). The count is forgotten after `window` without
// failures; a success halves it (decay), so one good login between many bad
// ones does not wipe them. At most `max_entries` addresses are tracked (the
// least recently failing are forgotten first).
// Across addresses: when `global_threshold` failures or more fell within
// `global_window`, the service is under attack: refuse_now() then tells to
// refuse at once (without a key derivation) attempts from addresses that
// failed recently, so addresses without failures keep their turn.
// Thread-safe; never throws after construction.
#pragma once
#include <chrono>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace xo::auth {

class FailureThrottle {
public:
    using clock = std::chrono::steady_clock;
    explicit FailureThrottle(clock::duration window = std::chrono::minutes(10), std::size_t max_entries = 100000,
                             std::size_t global_threshold = 50, clock::duration global_window = std::chrono::minutes(1));
    // How long to wait before answering this address's next attempt.
    std::chrono::milliseconds delay_for(const std::string& ip);
    // True when the address failed within the window: it has less of a claim
    // on the password-hashing queue.
    bool recently_failed(const std::string& ip);
    // Under attack (global threshold reached) and this address failed recently:
    // answer "busy" now instead of checking.
    bool refuse_now(const std::string& ip);
    bool under_attack();
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
    // Caller holds mu_: the live entry for ip (expired ones are dropped), or nullptr.
    Entry* find_locked(const std::string& ip, clock::time_point now);
    bool under_attack_locked(clock::time_point now) const;

    clock::duration window_;
    std::size_t max_entries_;
    std::size_t global_threshold_;
    clock::duration global_window_;
    mutable std::mutex mu_;
    std::list<Entry> lru_;   // most recent failure first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
    std::deque<clock::time_point> recent_;   // the last global_threshold failures, any address
};

}  // namespace xo::auth
