#include "oauth/redis_client.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "net/tls.hpp"

namespace xo::oauth {

struct RedisClient::Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    redisReader* reader = nullptr;
    ~Conn() {
        if (ssl) SSL_free(ssl);
        if (fd >= 0) ::close(fd);
        if (reader) redisReaderFree(reader);
    }
};

namespace {

constexpr auto kIdlePing = std::chrono::seconds(3);

RedisReply convert(const redisReply* r) {
    RedisReply out;
    switch (r->type) {
        case REDIS_REPLY_STATUS: out.kind = RedisReply::Kind::status; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_ERROR: out.kind = RedisReply::Kind::error; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_INTEGER: out.kind = RedisReply::Kind::integer; out.integer = r->integer; break;
        case REDIS_REPLY_STRING: out.kind = RedisReply::Kind::string; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_ARRAY:
            out.kind = RedisReply::Kind::array;
            for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
            break;
        default: out.kind = RedisReply::Kind::nil;
    }
    return out;
}

// connect() with a bound, then blocking I/O with SO_RCVTIMEO/SO_SNDTIMEO.
int connect_tcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout, std::string& why) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        why = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            int n = ::poll(&p, 1, int(timeout.count()));
            int err = 0;
            socklen_t len = sizeof err;
            if (n == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) break;
            why = n == 0 ? "connect timed out" : std::string("connect: ") + std::strerror(err ? err : errno);
        } else {
            why = std::string("connect: ") + std::strerror(errno);
        }
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0) return -1;
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{long(timeout.count() / 1000), long((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

}  // namespace

RedisClient::RedisClient(RedisOptions opts) : opts_(std::move(opts)) {
    if (opts_.url.tls) tls_ = net::make_client_context(opts_.ca_file);
    worker_ = std::thread([this] { run(); });
}

RedisClient::~RedisClient() { stop(); }

void RedisClient::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    // The worker never owns the client: completions are posted, and the daemon
    // calls stop() before its io_context (and the coroutines it holds) is destroyed.
    if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void RedisClient::enqueue(std::vector<std::string> argv, Done done) {
    std::unique_lock lock(mu_);
    if (stopping_ || queue_.size() >= opts_.queue_limit) {
        lock.unlock();
        RedisResult r;
        r.error = stopping_ ? "Redis client stopping" : "Redis command queue full";
        done(std::move(r));
        return;
    }
    queue_.push_back(Job{std::move(argv), std::move(done)});
    lock.unlock();
    cv_.notify_one();
}

RedisResult RedisClient::command(std::vector<std::string> argv) {
    auto p = std::make_shared<std::promise<RedisResult>>();
    auto f = p->get_future();
    enqueue(std::move(argv), [p](RedisResult r) { p->set_value(std::move(r)); });
    return f.get();   // bounded: every job ends within the I/O timeouts
}

std::string RedisClient::state() const {
    std::lock_guard lock(mu_);
    if (up_) return "connected to " + opts_.url.display();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - down_since_).count();
    return opts_.url.display() + " unavailable for " + std::to_string(secs) + " s: " + down_reason_ + "; retrying";
}

void RedisClient::mark_down(const std::string& why) {
    conn_.reset();
    std::lock_guard lock(mu_);
    if (up_) down_since_ = std::chrono::steady_clock::now();
    up_ = false;
    down_reason_ = why;
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(5000));
}

bool RedisClient::connect_locked_out(std::string& why) {
    auto c = std::make_unique<Conn>();
    c->fd = connect_tcp(opts_.url.host, opts_.url.port, opts_.io_timeout, why);
    if (c->fd < 0) return false;
    if (opts_.url.tls) {
        auto* ctx = static_cast<ssl::context*>(tls_.get());
        c->ssl = SSL_new(ctx->native_handle());
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || !net::verify_peer(c->ssl, opts_.url.host)) {
            why = "TLS setup failed: " + net::openssl_error();
            return false;
        }
        if (SSL_connect(c->ssl) != 1) {
            std::string v = net::verify_error(c->ssl);
            why = "TLS handshake failed: " + (v.empty() ? net::openssl_error() : v);
            return false;
        }
    }
    c->reader = redisReaderCreate();
    conn_ = std::move(c);
    auto check = [&](std::vector<std::string> argv, const char* what) {
        RedisResult r = exec(argv);
        if (!r.ok) { why = r.error; return false; }
        if (r.reply.kind == RedisReply::Kind::error) {
            why = std::string(what) + " refused: " + r.reply.str.substr(0, 120);
            return false;
        }
        return true;
    };
    const std::string& pw = opts_.password.empty() ? opts_.url.password : opts_.password;
    if (!pw.empty() && !check({"AUTH", pw}, "AUTH")) return false;
    if (opts_.url.db != 0 && !check({"SELECT", std::to_string(opts_.url.db)}, "SELECT")) return false;
    if (!check({"PING"}, "PING")) return false;
    return true;
}

RedisResult RedisClient::exec(const std::vector<std::string>& argv) {
    RedisResult out;
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) ptrs.push_back(a.data()), lens.push_back(a.size());
    char* cmd = nullptr;
    int n = redisFormatCommandArgv(&cmd, int(argv.size()), ptrs.data(), lens.data());
    if (n < 0) {
        out.error = "cannot format the Redis command";
        return out;
    }
    std::string wire(cmd, std::size_t(n));
    free(cmd);
    Conn& c = *conn_;
    std::size_t off = 0;
    while (off < wire.size()) {
        long w = c.ssl ? SSL_write(c.ssl, wire.data() + off, int(wire.size() - off))
                       : ::send(c.fd, wire.data() + off, wire.size() - off, MSG_NOSIGNAL);
        if (w <= 0) {
            out.error = std::string("write to Redis failed: ") + (c.ssl ? net::openssl_error() : std::strerror(errno));
            return out;
        }
        off += std::size_t(w);
    }
    for (;;) {
        void* reply = nullptr;
        if (redisReaderGetReply(c.reader, &reply) != REDIS_OK) {
            out.error = std::string("Redis protocol error: ") + c.reader->errstr;
            return out;
        }
        if (reply) {
            out.reply = convert(static_cast<redisReply*>(reply));
            freeReplyObject(reply);
            out.ok = true;
            return out;
        }
        char buf[16384];
        long r = c.ssl ? SSL_read(c.ssl, buf, int(sizeof buf)) : ::recv(c.fd, buf, sizeof buf, 0);
        if (r <= 0) {
            if (r == 0 && !c.ssl) out.error = "Redis closed the connection";
            else if (errno == EAGAIN || errno == EWOULDBLOCK) out.error = "Redis did not answer in time";
            else out.error = std::string("read from Redis failed: ") + (c.ssl ? net::openssl_error() : std::strerror(errno));
            return out;
        }
        redisReaderFeed(c.reader, buf, std::size_t(r));
    }
}

void RedisClient::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        if (stopping_) break;
        bool want_connect = !up_ && std::chrono::steady_clock::now() >= next_attempt_;
        if (queue_.empty() && !want_connect) {
            if (!up_) {
                cv_.wait_until(lock, next_attempt_);
                continue;
            }
            // Idle: a PING every few seconds notices a dead Redis before a session does
            // (and /status says so).
            if (cv_.wait_for(lock, kIdlePing) == std::cv_status::timeout && queue_.empty() && up_ && !stopping_) {
                lock.unlock();
                RedisResult r = exec({"PING"});
                if (!r.ok) mark_down(r.error);
                lock.lock();
            }
            continue;
        }
        if (!up_) {
            if (!want_connect) {   // down and backing off: fail fast, with the reason
                Job job = std::move(queue_.front());
                queue_.pop_front();
                RedisResult r;
                r.error = "unavailable: " + down_reason_;
                lock.unlock();
                job.done(std::move(r));
                lock.lock();
                continue;
            }
            lock.unlock();
            std::string why;
            bool ok = connect_locked_out(why);
            if (!ok) mark_down(why);
            lock.lock();
            if (ok) {
                up_ = true;
                backoff_ = std::chrono::milliseconds(100);
            }
            continue;
        }
        Job job = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        RedisResult r = exec(job.argv);
        if (!r.ok) mark_down(r.error);
        job.done(std::move(r));
        lock.lock();
    }
    std::deque<Job> rest;
    rest.swap(queue_);
    lock.unlock();
    for (auto& j : rest) {
        RedisResult r;
        r.error = "Redis client stopping";
        j.done(std::move(r));
    }
    conn_.reset();
}

}  // namespace xo::oauth
