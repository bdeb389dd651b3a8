#include "smtp/api_send.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "diagnose/diagnose.hpp"
#include "oauth/http_client.hpp"
#include "util/text.hpp"

namespace xo::smtp::api {

namespace {
constexpr std::size_t kHeadKeep = 64 * 1024;

std::string temp_dir() {
    const char* t = std::getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}
}  // namespace

Spool::Spool(std::size_t memory_threshold) : threshold_(memory_threshold) {}

Spool::~Spool() {
    if (fd_ >= 0) ::close(fd_);
}

namespace {
// The whole of `data` to `fd`; false (with `error`) when the disk refuses.
bool write_all(int fd, std::string_view data, std::string& error) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = std::string("spool write: ") + (n < 0 ? std::strerror(errno) : "no progress");
            return false;
        }
        data.remove_prefix(std::size_t(n));
    }
    return true;
}
}  // namespace

bool Spool::append(std::string_view data) {
    if (data.empty()) return true;
    if (head_.size() < kHeadKeep) head_.append(data.substr(0, kHeadKeep - head_.size()));
    size_ += data.size();
    if (fd_ < 0 && memory_.size() + data.size() <= threshold_) {
        memory_.append(data);
        return true;
    }
    if (fd_ < 0) {
        // Unlinked at once: the file lives only as long as this descriptor.
        std::string path = temp_dir() + "/xoauth2-proxy-spool-XXXXXX";
        fd_ = ::mkstemp(path.data());
        if (fd_ < 0) {
            error_ = "spool file in " + temp_dir() + ": " + std::strerror(errno);
            return false;
        }
        ::unlink(path.c_str());
        std::string held = std::move(memory_);
        memory_ = std::string();   // its memory given back
        if (!write_all(fd_, held, error_)) return false;
    }
    return write_all(fd_, data, error_);
}

bool Spool::read(std::string& out, std::size_t max) {
    if (read_at_ >= size_) return true;
    std::size_t want = std::size_t(std::min<std::uint64_t>(max, size_ - read_at_));
    if (fd_ < 0) {
        out.append(memory_, std::size_t(read_at_), want);
        read_at_ += want;
        return true;
    }
    std::size_t old = out.size();
    out.resize(old + want);
    ssize_t n;
    do {
        n = ::pread(fd_, out.data() + old, want, off_t(read_at_));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        out.resize(old);
        error_ = std::string("spool read: ") + (n < 0 ? std::strerror(errno) : "short file");
        return false;
    }
    out.resize(old + std::size_t(n));
    read_at_ += std::uint64_t(n);
    return true;
}

ApiGate::Ticket::~Ticket() {
    if (gate_) gate_->give(key_);
}

bool ApiGate::try_take(const std::string& key, std::size_t cap) {
    std::lock_guard lock(mu_);
    auto& n = used_[key];
    if (cap != 0 && n >= cap) return false;
    ++n;
    return true;
}

void ApiGate::give(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = used_.find(key);
    if (it != used_.end() && --it->second == 0) used_.erase(it);
}

std::size_t ApiGate::in_use(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = used_.find(key);
    return it == used_.end() ? 0 : it->second;
}

awaitable<ApiGate::Ticket> ApiGate::enter(std::string key, std::size_t cap, std::chrono::milliseconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        if (try_take(key, cap)) co_return Ticket(shared_from_this(), key);
        if (std::chrono::steady_clock::now() >= deadline) co_return Ticket();
        timer.expires_after(std::chrono::milliseconds(20));
        error_code ec;
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
}

bool SwitchedConnections::contains(const std::string& name) const {
    std::lock_guard lock(mu_);
    return names_.count(name) > 0;
}

bool SwitchedConnections::add(const std::string& name) {
    std::lock_guard lock(mu_);
    return names_.insert(name).second;
}

namespace {

// The request body: the Bcc header, then the spooled message; Graph's as base64.
std::shared_ptr<oauth::BodySource> body_of(Kind kind, Spool& spool, const std::string& bcc) {
    auto src = std::make_shared<oauth::BodySource>();
    src->size = body_size(kind, bcc.size() + spool.size());
    spool.rewind();
    struct State {
        bool bcc_done = false, finished = false;
        Base64Stream b64;
    };
    auto st = std::make_shared<State>();
    Spool* sp = &spool;
    src->next = [kind, sp, bcc, st](std::string& out) {
        while (out.empty() && !st->finished) {
            std::string raw;
            if (!st->bcc_done) {
                raw = bcc;
                st->bcc_done = true;
            }
            if (!sp->read(raw)) return false;
            if (raw.empty()) {
                st->finished = true;
                if (kind == Kind::graph) st->b64.finish(out);
            } else if (kind == Kind::graph) {
                st->b64.feed(raw, out);
            } else {
                out = std::move(raw);
            }
        }
        return true;
    };
    return src;
}

}  // namespace

awaitable<Reply> send(Job job, Spool& spool, std::string bcc) {
    using clock = std::chrono::steady_clock;
    const auto give_up_at = clock::now() + job.patience;
    auto ex = co_await asio::this_coro::executor;
    bool refreshed = false;
    std::string last = "no answer";
    for (int attempt = 1; attempt <= 20; ++attempt) {
        oauth::TokenResult t = co_await job.tokens->get(job.token_source, job.mailbox);
        if (!t.ok()) {
            std::string advice = diagnose::token_error_advice(t.error.code, t.error.error, t.error.description);
            spdlog::warn("smtp session {} connection={} mailbox={} no token for {}: {}; fix: {}", job.session_id,
                         job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                         util::log_escape(t.error.summary()), advice);
            co_return Reply{451, {"4.7.0 No token for " + job.mailbox + ", message not sent; try again later"}};
        }
        oauth::HttpRequest req;
        req.method = "POST";
        req.url = job.url;
        req.content_type = content_type(job.kind);
        req.headers.emplace_back("Authorization", "Bearer " + t.token->access_token);
        req.source = body_of(job.kind, spool, bcc);
        req.timeout = job.http_timeout;
        const auto started = clock::now();
        oauth::HttpResult res = co_await oauth::http_request(std::move(req), job.tls);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started).count();
        if (!res.ok) {
            if (res.sent) {
                spdlog::error("smtp session {} connection={} mailbox={} {}: no answer after the message was sent "
                              "({}, {} ms): outcome unknown, not retried",
                              job.session_id, job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                              util::log_escape(res.error), ms);
                co_return unknown_outcome(job.kind, job.mailbox, res.error);
            }
            spdlog::warn("smtp session {} connection={} mailbox={} {}: request not sent: {}", job.session_id,
                         job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                         util::log_escape(res.error));
            co_return not_sent(job.kind, res.error);
        }
        Outcome o = map_response(job.kind, res.status, res.body, res.retry_after, refreshed);
        last = o.log;
        switch (o.kind) {
            case Outcome::Kind::sent:
                spdlog::info("smtp session {} connection={} mailbox={} sent through {}: {} bytes, {}, {} ms",
                             job.session_id, job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                             spool.size(), util::log_escape(o.log), ms);
                co_return o.reply;
            case Outcome::Kind::refresh:
                spdlog::info("smtp session {} connection={} mailbox={} {} refused the token ({}): fetching a new one",
                             job.session_id, job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                             util::log_escape(o.log));
                job.tokens->invalidate(job.token_source, job.mailbox, t.token->access_token);
                refreshed = true;
                continue;
            case Outcome::Kind::retry: {
                auto wait = std::chrono::duration_cast<clock::duration>(o.wait);
                if (clock::now() + wait > give_up_at) {
                    spdlog::warn("smtp session {} connection={} mailbox={} {}: {}, Retry-After {} s beyond the "
                                 "patience left: giving up (451)",
                                 job.session_id, job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                                 util::log_escape(o.log), o.wait.count());
                    co_return gave_up(job.kind, o.log);
                }
                spdlog::info("smtp session {} connection={} mailbox={} {}: {}, retrying in {} s", job.session_id,
                             job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                             util::log_escape(o.log), o.wait.count());
                asio::steady_timer timer(ex);
                timer.expires_after(wait);
                error_code ec;
                co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
                continue;
            }
            case Outcome::Kind::final:
                spdlog::warn("smtp session {} connection={} mailbox={} {} refused the message: {} -> {}",
                             job.session_id, job.connection, util::log_escape(job.mailbox), to_string(job.kind),
                             util::log_escape(o.log), util::log_escape(o.reply.text()));
                co_return o.reply;
        }
    }
    co_return gave_up(job.kind, last);
}

}  // namespace xo::smtp::api
