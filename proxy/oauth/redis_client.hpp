// One Redis connection for the shared token store. hiredis (Debian's 0.14) is
// the RESP codec only (redisFormatCommandArgv, redisReader): it has no TLS, and
// its I/O blocks. So one worker thread owns the socket (TLS with the upstream
// rules: system CAs or ca_file, host name verified) and serves a bounded queue
// in order; coroutines await results with async_command(), which never blocks
// the io_context; command() blocks (CLI only). A lost connection is retried in
// the background with backoff (100 ms doubling to 5 s), an idle one is checked
// with PING every 3 s; while it is down every command fails at once with the
// reason (state()), none waits for a timeout.
// Results never carry the password; errors are the caller's to word.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "asio.hpp"
#include "config/config.hpp"

namespace xo::oauth {

struct RedisReply {
    enum class Kind { nil, status, error, integer, string, array };
    Kind kind = Kind::nil;
    long long integer = 0;
    std::string str;
    std::vector<RedisReply> elements;
};

struct RedisResult {
    bool ok = false;        // false: no answer (unreachable, timeout, queue full, protocol error)
    std::string error;      // why, when !ok
    RedisReply reply;       // may itself be Kind::error (a Redis error reply)
};

struct RedisOptions {
    config::RedisUrl url;
    std::string password;   // tokens.redis_password, else the URL's
    std::string ca_file;    // rediss://: extra CA
    std::chrono::milliseconds io_timeout{3000};
    std::size_t queue_limit = 4096;
};

class RedisClient {
public:
    // Throws std::runtime_error when the TLS context cannot be made (bad ca_file).
    explicit RedisClient(RedisOptions opts);
    ~RedisClient();   // stop()
    // Fails queued commands ("stopping") and joins the worker. Call it before the
    // io_context of any waiting coroutine is destroyed. Idempotent.
    void stop();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    RedisResult command(std::vector<std::string> argv);   // blocking: the CLI

    template <class CompletionToken>
    auto async_command(std::vector<std::string> argv, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(RedisResult)>(
            [this](auto handler, std::vector<std::string> args) {
                auto h = std::make_shared<decltype(handler)>(std::move(handler));
                // Tracked: io_context::run() does not return while a command is out.
                auto ex = asio::prefer(asio::get_associated_executor(*h), asio::execution::outstanding_work.tracked);
                enqueue(std::move(args), [h, ex](RedisResult r) {
                    asio::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
                });
            },
            token, std::move(argv));
    }

    bool up() const { return up_.load(); }
    // "connected to redis://h:p/0" or "redis://h:p/0 unavailable for 12 s: connection refused; retrying"
    std::string state() const;
    const config::RedisUrl& url() const { return opts_.url; }

private:
    struct Conn;
    using Done = std::function<void(RedisResult)>;
    struct Job {
        std::vector<std::string> argv;
        Done done;
    };
    void enqueue(std::vector<std::string> argv, Done done);
    void run();
    bool connect_locked_out(std::string& why);   // worker thread only
    RedisResult exec(const std::vector<std::string>& argv);
    void mark_down(const std::string& why);

    RedisOptions opts_;
    std::shared_ptr<void> tls_;   // ssl::context, rediss:// only
    std::unique_ptr<Conn> conn_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> queue_;
    bool stopping_ = false;
    std::atomic<bool> up_{false};
    std::string down_reason_ = "not connected yet";
    std::chrono::steady_clock::time_point down_since_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point next_attempt_{};
    std::chrono::milliseconds backoff_{100};
    std::thread worker_;
};

}  // namespace xo::oauth
