#include "server/session_base.hpp"

#include <spdlog/spdlog.h>

#include "util/text.hpp"

namespace xo::server {

const char* to_string(Result r) {
    switch (r) {
        case Result::ok: return "ok";
        case Result::authfail: return "authfail";
        case Result::tempfail: return "tempfail";
        case Result::aborted: return "aborted";
        case Result::error: return "error";
    }
    return "?";
}

ListenerLoad::Slot& ListenerLoad::Slot::operator=(Slot&& o) noexcept {
    if (this != &o) {
        release();
        load_ = std::move(o.load_);
        ip_ = std::move(o.ip_);
    }
    return *this;
}

void ListenerLoad::Slot::release() {
    if (load_) load_->release(ip_);
    load_.reset();
}

std::optional<ListenerLoad::Slot> ListenerLoad::acquire(const std::string& ip, std::string& why) {
    std::lock_guard lock(mu_);
    if (active_.load() >= max_) {
        why = "listener at max_sessions (" + std::to_string(max_) + ")";
        return std::nullopt;
    }
    std::size_t& mine = per_client_[ip];
    if (mine >= max_per_client_) {
        why = "client at max_sessions_per_client (" + std::to_string(max_per_client_) + ")";
        return std::nullopt;
    }
    ++mine;
    ++active_;
    return Slot(shared_from_this(), ip);
}

void ListenerLoad::release(const std::string& ip) {
    std::lock_guard lock(mu_);
    auto it = per_client_.find(ip);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    --active_;
}

SessionBase::SessionBase(const char* protocol, tcp::socket socket, const config::Listener& listener,
                         std::shared_ptr<Services> services, std::shared_ptr<ssl::context> server_tls,
                         ListenerLoad::Slot slot)
    : protocol_(protocol), listener_(listener), s_(std::move(services)),
      client_(std::move(socket), std::move(server_tls)), slot_(std::move(slot)), id_(new_session_id()) {
    ip_ = client_.remote_address();
    port_ = client_.remote_port();
    client_.set_session_deadline(std::chrono::steady_clock::now() + listener_.session_timeout);
    ++s_->counters.sessions;
    ++s_->counters.sessions_active;
}

SessionBase::~SessionBase() {
    *alive_ = false;
    --s_->counters.sessions_active;
}

awaitable<void> SessionBase::run() {
    std::string thrown;
    try {
        co_await serve();
    } catch (const std::exception& ex) {
        thrown = ex.what();
        if (thrown.empty()) thrown = "exception";
    } catch (...) {
        thrown = "unknown exception";
    }
    error_code ec;
    if (!thrown.empty()) {
        // No co_await inside a handler: the reply goes out here.
        set_result(Result::error, "internal error: " + thrown);
        spdlog::error("{} session {} internal error: {}", protocol_, id_, util::log_escape(thrown));
        client_.queue(fatal_reply());
    }
    co_await client_.flush(ec);
    client_.close();
    try {
        co_await finish();
    } catch (const std::exception& ex) {
        spdlog::error("{} session {} closing the upstream: {}", protocol_, id_, util::log_escape(ex.what()));
    }
    log_end();
}

uint64_t SessionBase::wait_idle() {
    client_.trim();
    // Runs on this session's strand; `alive_` tells whether the Link still exists.
    return s_->register_idle_closer([ex = client_.executor(), link = &client_, alive = alive_] {
        asio::post(ex, [link, alive] {
            if (*alive) link->close();
        });
    });
}

void SessionBase::end_idle(uint64_t closer, const error_code& ec) {
    s_->unregister_idle_closer(closer);
    if (ec && ec != asio::error::message_size && draining()) set_result(result_, "shutdown while idle");
}

awaitable<std::string> SessionBase::read_command(std::size_t max_line, error_code& ec) {
    if (client_.has_line()) co_return co_await client_.read_line(max_line, ec);
    co_await client_.flush(ec);
    if (ec) co_return std::string();
    uint64_t closer = wait_idle();
    // One whole line within command_timeout, however slowly it trickles in.
    client_.set_command_deadline(std::chrono::steady_clock::now() + listener_.command_timeout);
    std::string line = co_await client_.read_line(max_line, ec);
    client_.set_command_deadline(std::chrono::steady_clock::time_point::max());
    end_idle(closer, ec);
    co_return line;
}

awaitable<std::string_view> SessionBase::read_input(error_code& ec) {
    if (client_.buffered() != 0) co_return co_await client_.read_some(ec);
    co_await client_.flush(ec);
    if (ec) co_return std::string_view();
    uint64_t closer = wait_idle();
    std::string_view data = co_await client_.read_some(ec);
    end_idle(closer, ec);
    co_return data;
}

awaitable<bool> SessionBase::server_tls() {
    error_code ec;
    co_await client_.flush(ec);
    // Bytes the client pipelined after STARTTLS are plaintext injection
    // (CVE-2011-0411): Link refuses to start TLS over them.
    if (!ec) co_await client_.start_tls(true, "", ec);
    if (!ec) co_return true;
    set_result(Result::error, "TLS handshake: " + ec.message());
    co_return false;
}

void SessionBase::set_result(Result r, std::string reason) {
    result_ = r;
    reason_ = std::move(reason);
}

bool SessionBase::plaintext_auth_allowed() const {
    return server::plaintext_auth_allowed(listener_, client_.tls_active(), ip_);
}

awaitable<bool> SessionBase::open_for(const config::Connection& conn, const std::string& mailbox, std::string& why) {
    conn_ = &conn;   // for the session's log line, whatever happens
    mailbox_ = mailbox;
    if (!upstream_of(conn).set()) {
        why = "connection " + conn.name + " has no " + protocol_ + " upstream";
        co_return false;
    }
    net::UpstreamError err;
    auto started = std::chrono::steady_clock::now();
    bool ok = co_await open_upstream(conn, mailbox, err);
    s_->counters.observe_upstream_open(std::chrono::steady_clock::now() - started);
    if (ok) co_return true;
    why = std::string(net::to_string(err.kind)) + ": " + err.detail;
    spdlog::error("{} session {} connection={} mailbox={} upstream={} {} failure: {}{}{}", protocol_, id_, conn.name,
                  util::log_escape(mailbox), upstream_of(conn).text(), net::to_string(err.kind),
                  util::log_escape(err.detail), err.advice.empty() ? "" : "; fix: ", err.advice);
    co_return false;
}

awaitable<LoginOutcome> SessionBase::login_and_open(std::string login, std::string password) {
    login_ = login;
    LoginResult r = co_await local_login(s_, client_, ip_, std::move(login), std::move(password));
    if (r.busy) {
        set_result(Result::tempfail, "password check queue full");
        spdlog::warn("{} session {} client={} login={} password check queue full", protocol_, id_, ip_,
                     util::log_escape(login_));
        co_return LoginOutcome::busy;
    }
    if (!r.user) {
        set_result(Result::authfail, "authentication failed");
        spdlog::warn("{} session {} client={} login={} authentication failed", protocol_, id_, ip_,
                     util::log_escape(login_));
        co_return LoginOutcome::bad_credentials;
    }
    user_ = r.user;
    const config::Connection* conn = s_->cfg.find_connection(r.user->connection);
    std::string why = "connection " + r.user->connection + " is not configured";
    bool opened = false;   // (no co_await inside && -- g++ 12)
    if (conn) opened = co_await open_for(*conn, r.user->mailbox, why);
    if (!opened) {
        mailbox_ = r.user->mailbox;
        set_result(Result::tempfail, why);
        co_return LoginOutcome::upstream_unavailable;
    }
    ++s_->counters.auth_ok;
    set_result(Result::ok, "");
    co_return LoginOutcome::ok;
}

void SessionBase::log_end() const {
    const config::User* u = user_;
    std::string login = u ? u->login : !login_.empty() ? login_ : "-";
    std::string conn = conn_ ? conn_->name : u ? u->connection : "-";
    std::string mailbox = !mailbox_.empty() ? mailbox_ : u ? u->mailbox : "-";
    std::string upstream = conn_ && upstream_of(*conn_).set() ? upstream_of(*conn_).text() : "-";
    spdlog::info("{} session {} end client={}:{} login={} connection={} mailbox={} upstream={} messages={} "
                 "bytes_in={} bytes_out={} result={} reason=\"{}\"",
                 protocol_, id_, ip_, port_, util::log_escape(login), util::log_escape(conn),
                 util::log_escape(mailbox), util::log_escape(upstream), messages_, bytes_in_, bytes_out_,
                 to_string(result_), util::log_escape(reason_));
}

}  // namespace xo::server
