// Delivery through Graph sendMail / the Gmail API, the I/O part: the spool
// that holds a message while it streams in (memory up to a threshold, then an
// already-unlinked temporary file, so it is gone on every path, a crash
// included), the per-mailbox cap on concurrent requests, and send(): token,
// request, Retry-After within the caller's bound, one token refresh on 401.
// Nothing is retried once the whole request was written and no answer came.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "asio.hpp"
#include "oauth/token_cache.hpp"
#include "smtp/api.hpp"

namespace xo::smtp::api {

class Spool {
public:
    explicit Spool(std::size_t memory_threshold = 256 * 1024);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    bool append(std::string_view data);   // false: the temporary file could not be written
    std::uint64_t size() const { return size_; }
    bool on_disk() const { return fd_ >= 0; }
    // The first bytes of the message (at least its header block when it is under 64 KiB).
    std::string_view head() const { return head_; }
    // Reading back from the start: next piece into `out` (empty at the end); false on a read error.
    void rewind() { read_at_ = 0; }
    bool read(std::string& out, std::size_t max = 64 * 1024);
    const std::string& error() const { return error_; }

private:
    std::size_t threshold_;
    std::string memory_, head_, error_;
    int fd_ = -1;
    std::uint64_t size_ = 0, read_at_ = 0;
};

// At most `cap` requests at once per key (connection + mailbox): Graph allows 4
// concurrent requests per mailbox. Thread-safe; a Ticket holds one place.
class ApiGate : public std::enable_shared_from_this<ApiGate> {
public:
    class Ticket {
    public:
        Ticket() = default;
        Ticket(std::shared_ptr<ApiGate> g, std::string key) : gate_(std::move(g)), key_(std::move(key)) {}
        Ticket(Ticket&&) noexcept = default;
        Ticket& operator=(Ticket&&) noexcept = default;
        ~Ticket();
        bool ok() const { return gate_ != nullptr; }

    private:
        std::shared_ptr<ApiGate> gate_;
        std::string key_;
    };
    // A ticket, or an empty one after `wait`.
    awaitable<Ticket> enter(std::string key, std::size_t cap, std::chrono::milliseconds wait);
    std::size_t in_use(const std::string& key) const;

private:
    bool try_take(const std::string& key, std::size_t cap);
    void give(const std::string& key);
    mutable std::mutex mu_;
    std::map<std::string, std::size_t> used_;
};

// Connections that send_via: auto moved to Graph (535 5.7.139), until the next
// reload (a new Services). Thread-safe.
class SwitchedConnections {
public:
    bool contains(const std::string& name) const;
    bool add(const std::string& name);   // true the first time
private:
    mutable std::mutex mu_;
    std::set<std::string> names_;
};

struct Job {
    Kind kind = Kind::graph;
    std::string connection, token_source, mailbox, url;
    std::shared_ptr<oauth::TokenCache> tokens;
    std::shared_ptr<ssl::context> tls;
    std::chrono::milliseconds patience{60000};   // the most time spent waiting for Retry-After in all
    std::chrono::seconds http_timeout{120};
    std::string session_id;                      // for the log
};

// Sends the spooled message with `bcc` in front of it; the client's reply.
awaitable<Reply> send(Job job, Spool& spool, std::string bcc);

}  // namespace xo::smtp::api
