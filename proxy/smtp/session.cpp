// The SMTP session moves bytes between the client's Link, the Machine and the
// upstream: it reads lines, carries out the machine's actions, reads the
// upstream's replies in order (pipelined groups go out in one write), and
// streams DATA through the DataScanner.
#include "smtp/session.hpp"

#include <spdlog/spdlog.h>

#include <deque>

#include "server/session_base.hpp"
#include "diagnose/diagnose.hpp"
#include "smtp/api.hpp"
#include "smtp/api_send.hpp"
#include "smtp/machine.hpp"
#include "smtp/parser.hpp"
#include "smtp/pool.hpp"
#include "smtp/upstream.hpp"
#include "util/text.hpp"

namespace xo::smtp {
namespace {

class Session final : public server::SessionBase {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls, server::ListenerLoad::Slot slot)
        : SessionBase("smtp", std::move(socket), l, std::move(s), std::move(tls), std::move(slot)),
          machine_(machine_config()) {
        client_.set_timeout(listener_.idle_timeout);
    }

private:
    MachineConfig machine_config() const {
        MachineConfig c;
        c.id = id_;
        c.hostname = s_->hostname;
        c.starttls_offered = listener_.tls == config::ListenerTls::starttls;
        c.tls_active = listener_.tls == config::ListenerTls::implicit;
        c.plaintext_auth = listener_.allow_plaintext_auth || server::is_loopback(ip_);
        for (const auto& n : listener_.trusted_networks)
            if (n.contains(ip_)) c.trusted = true;
        c.max_message_size = listener_.max_message_size;
        c.bare_newline = listener_.bare_newline == config::BareNewline::normalize ? BareNewline::normalize : BareNewline::reject;
        return c;
    }

    awaitable<void> serve() override;
    std::string fatal_reply() const override { return "421 4.3.0 Internal error, closing connection\r\n"; }
    const config::Upstream& upstream_of(const config::Connection& c) const override { return c.smtp; }
    awaitable<bool> open_upstream(const config::Connection& c, const std::string& mailbox,
                                  net::UpstreamError& err) override;
    // The upstream goes back to its pool only between transactions: a client that QUITs (or
    // is closed after too many errors) with MAIL and RCPT accepted leaves the upstream inside
    // the transaction, and the next client of the mailbox would get "503 nested MAIL".
    awaitable<void> finish() override {
        give_back(!machine_.has_pending() && !machine_.upstream_transaction() && machine_.state() != State::mail &&
                  machine_.state() != State::rcpt && machine_.state() != State::data);
        co_return;
    }

    awaitable<bool> execute(Actions actions);          // false: the session ends
    awaitable<bool> resolve_pending();                 // reads the upstream's replies to what was forwarded
    awaitable<bool> prepare_mail(const std::string& sender, std::string& refusal);
    // `first` (DATA): the machine gave the client its 354 already; the message goes up as
    // BDAT ... LAST, or after `first` and the upstream's 354 to it.
    awaitable<DataEnd> stream_data(bool& client_lost, std::string first);
    awaitable<void> data_after_early_354(const std::string& command, DataEnd& end, bool& upstream_ok, bool& discard,
                                         std::string& upstream_error);
    // A client in lockstep's message is held up to this size to go up as one BDAT ... LAST.
    static constexpr std::size_t kBdatHold = 256 * 1024;
    // The upstream takes a message as BDAT ... LAST with RSET behind it (CHUNKING, PIPELINING).
    bool upstream_takes_bdat() const {
        return upstream_ && upstream_->capabilities().chunking && upstream_->capabilities().pipelining;
    }
    // One piece of the message from the client through `scanner` into `out`
    // (res: what the scanner took, whether the message ended). False when the
    // client went away (the session's result says so). A message over
    // max_message_size, or with a bare CR/LF the listener refuses, sets
    // end.kind and clears `ok`; the rest of it is still read.
    awaitable<bool> read_data(DataScanner& scanner, std::string& out, DataScanner::Result& res, DataEnd& end,
                              bool& ok);
    // send_via graph / gmail_api: the envelope is kept here, the message spooled, then one API request.
    awaitable<bool> open_api(const config::Connection& c, const std::string& mailbox, net::UpstreamError& err);
    awaitable<DataEnd> stream_api(bool& client_lost);
    bool api_for(const config::Connection& c) const;
    awaitable<void> drop_upstream(bool polite);
    void give_back(bool reusable);   // the upstream session back to its pool
    void count_relayed(uint64_t bytes);           // a message the upstream (or API) accepted
    void count_refused_here(DataEnd::Kind kind);  // too big, or a bare CR/LF: refused by the proxy itself
    awaitable<bool> retry_elsewhere(); // after 432/421 to MAIL: the same commands on another session

    Machine machine_;
    std::unique_ptr<Upstream> upstream_;            // leased from pool_
    std::shared_ptr<UpstreamPool> pool_;
    bool pool_timeout_ = false;                     // the last open failed: no session free in time
    bool retried_ = false;                          // this transaction moved once already
    bool retire_ = false;                           // the upstream refused more work (432)
    std::deque<std::string> inflight_;              // forwarded lines whose replies are still due
    bool flush_upstream_ = false;                   // forwards queued, not yet written
    bool for_auth_ = false;                         // open_upstream() runs for AUTH, not for a MAIL
    bool api_ = false;                              // the transaction goes out through an API, not SMTP
    api::Kind api_kind_ = api::Kind::graph;
    api::Envelope env_;                             // api_: MAIL and RCPT so far
    std::deque<Reply> api_replies_;                 // api_: the local answers to forwarded lines
};

awaitable<void> Session::serve() {
    bool ok = true;   // (no co_await inside && -- g++ 12)
    if (listener_.tls == config::ListenerTls::implicit) ok = co_await server_tls();
    if (!ok) co_return;
    Actions greeting = machine_.start();
    if (!co_await execute(std::move(greeting))) co_return;
    while (!machine_.closed()) {
        if (draining() && (machine_.state() == State::connected || machine_.state() == State::greeted)) {
            client_.queue("421 4.3.2 Service shutting down, try again later\r\n");
            set_result(result_, "shutdown");
            co_return;
        }
        error_code ec;
        std::string line = co_await read_command(machine_.max_line(), ec);
        Actions actions;
        if (ec == asio::error::message_size) {
            actions = machine_.on_line_too_long();
        } else if (ec) {
            const bool timeout = ec == beast::error::timeout;
            if (reason_.empty()) reason_ = timeout ? "client timeout (idle, command or session)" : "client disconnected";
            if (timeout || machine_.state() == State::mail || machine_.state() == State::rcpt)
                result_ = server::Result::aborted;
            co_return;
        } else {
            if (machine_.wants_sync(line)) {
                if (!co_await resolve_pending()) co_return;
            }
            actions = machine_.on_line(line);
        }
        if (!co_await execute(std::move(actions))) co_return;
        // Pipelining: forwards wait while the client has more lines for the same group.
        bool more = upstream_ && upstream_->capabilities().pipelining && client_.has_line();
        if (machine_.has_pending() && (!more || machine_.must_resolve())) {
            if (!co_await resolve_pending()) co_return;
        }
        // Between transactions the upstream session goes back to its pool for any client of the mailbox.
        if (upstream_ && !machine_.has_pending() &&
            (machine_.state() == State::greeted || machine_.state() == State::connected))
            give_back(!retire_);
    }
}

// Carries out the machine's actions in order. What the machine answers to a
// result is held in a named value before co_await (g++ 12 destroys a
// temporary in a co_await expression twice).
awaitable<bool> Session::execute(Actions actions) {
    for (auto& a : actions) {
        switch (a.kind) {
            case Action::Kind::reply:
                // Local answers keep their place after the upstream's answers to earlier commands.
                if (machine_.has_pending()) {
                    if (!co_await resolve_pending()) co_return false;
                }
                client_.queue(a.text);
                break;
            case Action::Kind::relay: client_.queue(a.text); break;
            case Action::Kind::start_tls: {
                bool ok = co_await server_tls();
                Actions next = machine_.on_tls(ok);
                if (!co_await execute(std::move(next))) co_return false;
                if (!ok) co_return false;
                break;
            }
            case Action::Kind::login: {
                for_auth_ = true;
                server::LoginOutcome o = co_await login_and_open(std::move(a.text), std::move(a.secret));
                for_auth_ = false;
                if (o != server::LoginOutcome::ok) co_await drop_upstream(false);
                if (upstream_) machine_.set_upstream_smtputf8(upstream_->capabilities().smtputf8);
                give_back(true);   // proved: the first MAIL takes it (or another) from the pool
                Actions next = machine_.on_login(o, user_ ? user_->mailbox : "");
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case Action::Kind::prepare_mail: {
                std::string refusal;
                bool ok = co_await prepare_mail(a.text, refusal);
                machine_.set_upstream_chunking(upstream_takes_bdat());
                Actions next = machine_.on_prepared(ok, refusal, upstream_ && upstream_->capabilities().smtputf8);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case Action::Kind::forward:
                if (api_) {   // answered here; the API sees the envelope at the end of data
                    api_replies_.push_back(api::local_reply(a.text, env_, api_kind_));
                    break;
                }
                if (!upstream_) {   // it went away: every forward waiting for it fails
                    Actions next = machine_.on_upstream_lost();
                    if (!co_await execute(std::move(next))) co_return false;
                    break;
                }
                upstream_->link().queue(a.text);
                inflight_.push_back(a.text);
                flush_upstream_ = true;
                break;
            case Action::Kind::drop_upstream: co_await drop_upstream(false); break;
            case Action::Kind::begin_data: {
                bool client_lost = false;
                DataEnd end;
                if (api_) end = co_await stream_api(client_lost);
                else end = co_await stream_data(client_lost, std::move(a.text));
                if (client_lost) co_return false;
                Actions next = machine_.on_data_end(end);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case Action::Kind::close: co_return false;
        }
    }
    co_return true;
}

awaitable<bool> Session::resolve_pending() {
    if (api_) {
        while (machine_.has_pending()) {
            Reply r{451, {"4.3.0 Internal error: no reply to a forwarded command"}};
            if (!api_replies_.empty()) {
                r = std::move(api_replies_.front());
                api_replies_.pop_front();
            }
            Actions next = machine_.on_upstream(r);
            if (!co_await execute(std::move(next))) co_return false;
        }
        co_return true;
    }
    error_code ec;
    if (upstream_ && flush_upstream_) co_await upstream_->link().flush(ec);
    flush_upstream_ = false;
    while (machine_.has_pending()) {
        Reply r;
        if (upstream_ && !ec) r = co_await upstream_->read_reply(ec);
        if (upstream_ && ec && !retried_ && !inflight_.empty() && inflight_.front().rfind("MAIL ", 0) == 0) {
            // Closed before it answered MAIL: an upstream restarted, or one that cut the session
            // while it sat idle in the pool. Nothing happened there, so the same commands go
            // once to a fresh session (the pool's other idle sessions to it are closed too).
            retried_ = true;
            spdlog::info("smtp session {} upstream lost before its reply to MAIL ({}): retrying on another session",
                         id_, ec.message());
            if (pool_) pool_->drop_idle();
            ec = {};
            co_await retry_elsewhere();   // failing, it leaves no upstream: every command then gets its 451
            continue;
        }
        if (!upstream_ || ec) {   // one reply per command the client sent, whatever happened
            if (reason_.empty() || result_ == server::Result::ok)
                set_result(result_, "upstream lost: " + (ec ? ec.message() : std::string("closed")));
            inflight_.clear();
            Actions next = machine_.on_upstream_lost();
            co_return co_await execute(std::move(next));
        }
        const bool to_mail = !inflight_.empty() && inflight_.front().rfind("MAIL ", 0) == 0;
        if (to_mail && (r.code == 432 || r.code == 421)) {
            // Exchange's "sender thread limit exceeded", or a session going away:
            // retire it and run the same commands once on another session.
            spdlog::info("smtp session {} upstream answered MAIL with {} {}: {}", id_, r.code,
                         util::log_escape(r.text()), retried_ ? "giving up" : "retrying on another session");
            if (!retried_) {
                retried_ = true;
                bool moved = co_await retry_elsewhere();
                if (moved) continue;
            }
            if (r.code == 432) {
                r = Reply{451, {"4.3.2 Too many sessions for this mailbox at the upstream, try again later"}};
                retire_ = true;
            }
        }
        if (!inflight_.empty()) inflight_.pop_front();
        Actions next = machine_.on_upstream(r);
        if (!co_await execute(std::move(next))) co_return false;
    }
    co_return true;
}

awaitable<bool> Session::retry_elsewhere() {
    const config::Connection* conn = conn_;
    std::string mailbox = mailbox_;
    std::deque<std::string> lines = std::move(inflight_);
    inflight_.clear();
    co_await drop_upstream(false);
    std::string why;
    bool opened = false;   // (no co_await inside && -- g++ 12)
    if (conn) opened = co_await open_for(*conn, mailbox, why);
    if (!opened) {
        inflight_ = std::move(lines);
        co_return false;
    }
    for (const auto& l : lines) upstream_->link().queue(l);
    inflight_ = std::move(lines);
    error_code ec;
    co_await upstream_->link().flush(ec);
    co_return !ec;
}

// The pool of (connection, mailbox) gives an idle authenticated session, or
// room to open one, or nothing within upstream_wait.
awaitable<bool> Session::open_upstream(const config::Connection& c, const std::string& mailbox,
                                       net::UpstreamError& err) {
    give_back(!retire_);
    retire_ = false;
    pool_timeout_ = false;
    api_ = false;
    env_.clear();
    api_replies_.clear();
    machine_.set_max_message_size(listener_.max_message_size);
    if (api_for(c)) co_return co_await open_api(c, mailbox, err);
    auto pool = s_->smtp_pools->get(c, mailbox);
    // The warm path for AUTH: while every session of the mailbox is busy and one came back
    // healthy lately, the upstream is proven; with a token from the cache the login is
    // answered at once instead of queueing for a session that clients with mail wait for.
    bool smtputf8 = false;
    if (for_auth_ && pool->busy_and_proven(smtputf8)) {
        oauth::TokenResult t = co_await s_->tokens->get(c.name, mailbox);
        if (t.ok()) {
            machine_.set_upstream_smtputf8(smtputf8);
            co_return true;
        }
    }
    UpstreamPool::Lease lease = co_await pool->acquire();
    if (!lease.ok()) {
        pool_timeout_ = true;
        err = {net::UpstreamError::Kind::connect,
               "no upstream session free for " + mailbox + " within upstream_wait (max_upstream_sessions " +
                   std::to_string(c.max_upstream_sessions) + ")",
               "raise upstream_wait, or send fewer messages at once to this mailbox"};
        co_return false;
    }
    if (lease.up) {
        upstream_ = std::move(lease.up);
        pool_ = std::move(pool);
        co_return true;
    }
    if (!co_await open_as(upstream_, c, mailbox, err, s_->hostname)) {
        upstream_.reset();
        pool->forfeit();
        // send_via: auto: SMTP AUTH is off for the tenant or mailbox (535 5.7.139): Graph from now on.
        if (c.send_via == config::SendVia::auto_ && err.kind == net::UpstreamError::Kind::auth &&
            err.detail.find("5.7.139") != std::string::npos) {
            if (s_->api_switched.add(c.name))
                spdlog::warn("smtp connection {}: the upstream refused SMTP AUTH ({}); send_via auto: sending "
                             "through Microsoft Graph sendMail from now on, until the next reload",
                             c.name, util::log_escape(err.detail));
            co_return co_await open_api(c, mailbox, err);
        }
        co_return false;
    }
    pool_ = std::move(pool);
    co_return true;
}

void Session::give_back(bool reusable) {
    if (!upstream_) return;
    flush_upstream_ = false;
    inflight_.clear();
    if (pool_) pool_->release(std::move(upstream_), reusable);
    else upstream_->link().close();
    upstream_.reset();
    pool_.reset();
}

// Before MAIL: an authenticated client uses its login's upstream (reopened if
// it was dropped); a trusted one is mapped by its sender through `senders:`.
awaitable<bool> Session::prepare_mail(const std::string& sender, std::string& refusal) {
    const config::Connection* conn = nullptr;
    std::string mailbox;
    if (machine_.authenticated() && user_) {
        conn = s_->cfg.find_connection(user_->connection);
        mailbox = user_->mailbox;
    } else {
        const config::Sender* map = s_->cfg.find_sender(sender);
        if (login_.empty()) login_ = "(trusted)";
        if (!map) {
            spdlog::warn("smtp session {} client={} trusted sender <{}> maps to no connection", id_, ip_,
                         util::log_escape(sender));
            refusal = "550 5.7.1 Sender <" + sender + "> is not mapped to a connection";
            co_return false;
        }
        conn = s_->cfg.find_connection(map->connection);
        mailbox = map->mailbox.empty() ? sender : map->mailbox;
    }
    retried_ = false;
    if (upstream_ && conn == conn_ && mailbox == mailbox_) co_return true;
    if (api_ && conn == conn_ && mailbox == mailbox_ && api_for(*conn)) co_return true;
    std::string why = "connection is not configured";
    bool opened = false;   // (no co_await inside && -- g++ 12)
    if (conn) opened = co_await open_for(*conn, mailbox, why);
    if (opened) co_return true;
    set_result(server::Result::tempfail, why);
    refusal = pool_timeout_ ? "451 4.3.2 All upstream sessions for " + mailbox + " are busy, try again later"
                            : "451 4.7.0 Temporary failure: upstream unavailable for " + mailbox + ", try again later";
    co_return false;
}

// Streams the message from the client to the upstream, unchanged but for line
// ends, until CRLF.CRLF; only then is the upstream's final reply read.
awaitable<bool> Session::read_data(DataScanner& scanner, std::string& out, DataScanner::Result& res, DataEnd& end,
                                   bool& ok) {
    error_code ec;
    std::string_view chunk = co_await client_.read_some(ec);
    if (ec) {
        set_result(server::Result::aborted, "client lost during DATA: " + ec.message());
        co_return false;
    }
    out.clear();
    res = scanner.feed(chunk, out);
    client_.consume(res.consumed);
    if (ok && scanner.message_bytes() > listener_.max_message_size) {
        end.kind = DataEnd::Kind::too_big;
        ok = false;
    } else if (ok && scanner.bare_newlines() > 0 && !machine_.bare_newline_allowed()) {
        end.kind = DataEnd::Kind::bare_newline;
        ok = false;
    }
    co_return true;
}

// DATA (`command`) after the client already had its 354: the message may follow only the
// upstream's own 354; any other reply is the client's answer at the end of data (the message
// is read and dropped, the session kept), a lost upstream its 451.
awaitable<void> Session::data_after_early_354(const std::string& command, DataEnd& end, bool& upstream_ok,
                                              bool& discard, std::string& upstream_error) {
    error_code ec;
    Reply r;
    if (upstream_) {
        upstream_->link().queue(command);
        co_await upstream_->link().flush(ec);
        if (!ec) r = co_await upstream_->read_reply(ec);
    }
    if (!upstream_ || ec) {
        upstream_ok = false;
        end.kind = DataEnd::Kind::upstream_lost;
        upstream_error = "upstream lost before its reply to DATA: " + (ec ? ec.message() : std::string("closed"));
    } else if (r.code != 354) {
        upstream_ok = false;
        discard = true;
        end.kind = DataEnd::Kind::refused_at_data;
        end.reply = std::move(r);
    }
}

awaitable<DataEnd> Session::stream_data(bool& client_lost, std::string first) {
    DataScanner scanner;
    std::string out;
    DataEnd end;
    bool upstream_ok = true;
    bool discard = false;   // the upstream refused DATA: the message is read and dropped, the session kept
    std::string upstream_error;
    if (upstream_) upstream_->link().set_timeout(std::chrono::minutes(10));
    client_.set_timeout(listener_.data_timeout);   // between two chunks of the message
    client_.expect_bulk();
    error_code ec;
    // `first` (DATA): the machine gave a client in lockstep its 354 already. With CHUNKING the
    // message is held, up to kBdatHold, and goes up as one BDAT ... LAST: no round trip for a
    // 354 from the upstream. A larger one, or an upstream without CHUNKING: DATA now, and the
    // message after the upstream's 354.
    bool bdat = !first.empty() && upstream_takes_bdat();   // (the upstream may have changed since MAIL: a retry)
    std::string held;   // bdat: the message as it came (dot-stuffed, CRLF), its end included
    if (!first.empty()) {
        error_code cec;
        co_await client_.flush(cec);   // the 354 (a failed flush shows as the read below failing)
        if (!bdat) co_await data_after_early_354(first, end, upstream_ok, discard, upstream_error);
    }
    for (;;) {
        DataScanner::Result res;
        bool more = co_await read_data(scanner, out, res, end, upstream_ok);
        if (!more) {
            // The client went away mid-message: the upstream never sees the final
            // dot, so nothing is delivered; the client was told nothing either.
            client_lost = true;
            co_await drop_upstream(false);
            co_return end;
        }
        if (!upstream_ok && !discard && upstream_) upstream_->link().close();   // the partial message is never ended
        if (upstream_ok && bdat && !out.empty()) {
            held += out;
            if (held.size() > kBdatHold) {   // too large to hold: DATA after all
                bdat = false;
                co_await data_after_early_354(first, end, upstream_ok, discard, upstream_error);
                out.swap(held);
                std::string().swap(held);
            } else {
                out.clear();
            }
        }
        if (upstream_ok && !out.empty()) {
            error_code uec;
            co_await upstream_->link().write(out, uec);
            if (uec) {
                upstream_ok = false;
                end.kind = DataEnd::Kind::upstream_lost;
                upstream_error = "upstream lost during DATA: " + uec.message();
            }
        }
        if (res.done) break;
    }
    if (upstream_ok && bdat) {
        // The message itself (dot-stuffing and the final dot gone), then RSET: whatever the reply
        // to BDAT ... LAST, the session is between transactions after it, so that the pipelined
        // hand-over below may put the next client's MAIL behind it.
        std::string body;
        api::Unstuffer unstuff;
        unstuff.feed(held, body);
        std::string().swap(held);
        upstream_->link().queue("BDAT " + std::to_string(body.size()) + " LAST\r\n");
        upstream_->link().queue(body);
        upstream_->link().queue("RSET\r\n");
        error_code uec;
        co_await upstream_->link().flush(uec);
        if (uec) {
            upstream_ok = false;
            end.kind = DataEnd::Kind::upstream_lost;
            upstream_error = "upstream lost during BDAT: " + uec.message();
        }
    }
    if (upstream_ok) {
        upstream_->message_sent();
        asio::any_io_executor ex = co_await asio::this_coro::executor;
        // Pipelined hand-over: a client of the mailbox waits for a session, so this one goes
        // to it now, and its commands follow the message in the same round trip; whoever
        // reads next delivers our final reply here (and takes the RSET's after a BDAT).
        std::shared_ptr<OwedReply> owed;
        if (pool_ && upstream_->capabilities().pipelining && pool_->waiting() > 0) {
            owed = std::make_shared<OwedReply>(ex);
            upstream_->owe(owed);
            if (bdat) upstream_->owe(std::make_shared<OwedReply>(ex));
            if (pool_->pass_on(upstream_)) {
                pool_.reset();
            } else {
                if (bdat) upstream_->unowe();
                upstream_->unowe();
                owed.reset();
            }
        }
        if (owed) end.reply = co_await owed->wait(std::chrono::minutes(11), ec);
        else end.reply = co_await upstream_->read_reply(ec);
        if (ec) {
            end.kind = DataEnd::Kind::upstream_lost;
            upstream_error = "upstream lost before its final reply: " + ec.message();
        } else if (bdat && upstream_) {
            upstream_->owe(std::make_shared<OwedReply>(ex));   // the RSET's reply: read by whoever reads next
        }
    }
    if (upstream_) upstream_->link().set_timeout(std::chrono::minutes(5));
    client_.set_timeout(listener_.idle_timeout);
    switch (end.kind) {
        case DataEnd::Kind::relayed:
            if (end.reply.code / 100 == 2) {
                count_relayed(scanner.message_bytes());
            } else {
                ++s_->counters.messages_refused;
                spdlog::info("smtp session {} upstream refused message at end of data: {} {}", id_, end.reply.code,
                             util::log_escape(end.reply.text()));
            }
            break;
        case DataEnd::Kind::too_big:
        case DataEnd::Kind::bare_newline: count_refused_here(end.kind); break;
        case DataEnd::Kind::upstream_lost:
            ++s_->counters.messages_failed;
            set_result(server::Result::tempfail, upstream_error);
            spdlog::warn("smtp session {} connection={} {}", id_, conn_ ? conn_->name : "-", upstream_error);
            break;
        case DataEnd::Kind::refused_at_data:
            ++s_->counters.messages_refused;
            spdlog::info("smtp session {} upstream refused DATA (the client had its 354; its message was read and "
                         "dropped): {} {}",
                         id_, end.reply.code, util::log_escape(end.reply.text()));
            break;
    }
    co_return end;
}

void Session::count_relayed(uint64_t bytes) {
    ++messages_;
    bytes_in_ += bytes;
    ++s_->counters.messages_relayed;
    s_->counters.bytes_relayed += bytes;
}

void Session::count_refused_here(DataEnd::Kind kind) {
    ++s_->counters.messages_refused;
    spdlog::warn("smtp session {} message refused: {}", id_,
                 kind == DataEnd::Kind::too_big ? "larger than max_message_size"
                                                : "bare CR or LF (possible SMTP smuggling)");
}

bool Session::api_for(const config::Connection& c) const {
    return c.send_via == config::SendVia::graph || c.send_via == config::SendVia::gmail_api ||
           (c.send_via == config::SendVia::auto_ && s_->api_switched.contains(c.name));
}

// The API path has no session to open: a token for the API proves the setup.
awaitable<bool> Session::open_api(const config::Connection& c, const std::string& mailbox, net::UpstreamError& err) {
    std::string source = c.api_token_source();
    oauth::TokenResult t = co_await s_->tokens->get(source, mailbox);
    if (!t.ok()) {
        err = {net::UpstreamError::Kind::token, t.error.summary(),
               diagnose::token_error_advice(t.error.code, t.error.error, t.error.description)};
        co_return false;
    }
    api_ = true;
    api_kind_ = c.send_via == config::SendVia::gmail_api ? api::Kind::gmail : api::Kind::graph;
    std::size_t limit = std::min<std::size_t>(listener_.max_message_size, std::size_t(api::max_message(api_kind_)));
    machine_.set_max_message_size(limit, "(the limit of " + std::string(api::to_string(api_kind_)) + ": " +
                                             std::to_string(api::max_message(api_kind_)) + " bytes)");
    spdlog::info("smtp session {} sending for {} through {} (connection {})", id_, util::log_escape(mailbox),
                 api::to_string(api_kind_), c.name);
    co_return true;
}

// The message is spooled as it streams in (un-stuffed); at its end one API
// request carries it, and its answer is the client's reply.
awaitable<DataEnd> Session::stream_api(bool& client_lost) {
    DataScanner scanner;
    api::Unstuffer unstuff;
    api::Spool spool;
    std::string out, plain;
    DataEnd end;
    bool ok = true;
    std::string spool_error;
    client_.set_timeout(listener_.data_timeout);
    client_.expect_bulk();
    for (;;) {
        DataScanner::Result res;
        bool more = co_await read_data(scanner, out, res, end, ok);
        if (!more) {   // nothing sent; the spool (and its file) goes with this frame
            client_lost = true;
            env_.clear();
            co_return end;
        }
        if (ok) {
            plain.clear();
            unstuff.feed(out, plain);
            if (!spool.append(plain)) {
                ok = false;
                end.kind = DataEnd::Kind::upstream_lost;
                spool_error = spool.error();
            }
        }
        if (res.done) break;
    }
    client_.set_timeout(listener_.idle_timeout);
    const config::Connection* conn = conn_;
    if (ok && conn) {
        end.kind = DataEnd::Kind::relayed;
        std::string bcc = api::bcc_header(env_.rcpts, spool.head());
        auto extra = api::extra_header_recipients(env_.rcpts, spool.head());
        if (!extra.empty())
            spdlog::warn("smtp session {} the header names {} recipient(s) not in the envelope (first {}): {} sends "
                         "to the header's recipients",
                         id_, extra.size(), util::log_escape(extra.front()), api::to_string(api_kind_));
        if (bcc.size() + spool.size() > api::max_message(api_kind_)) {
            end.reply = api::too_big(api_kind_);
        } else {
            std::string key = conn->name + "\n" + mailbox_;
            std::size_t cap = api_kind_ == api::Kind::graph ? api::kGraphMaxConcurrent : conn->max_upstream_sessions;
            api::ApiGate::Ticket ticket = co_await s_->api_gate->enter(key, cap, conn->upstream_wait);
            if (!ticket.ok()) {
                end.reply = Reply{451, {"4.3.2 Too many messages at once for " + mailbox_ + ", try again later"}};
                spdlog::warn("smtp session {} connection={} mailbox={} no API slot within upstream_wait ({} at once)",
                             id_, conn->name, util::log_escape(mailbox_), cap);
            } else {
                api::Job job;
                job.kind = api_kind_;
                job.connection = conn->name;
                job.token_source = conn->api_token_source();
                job.mailbox = mailbox_;
                job.url = api::request_url(api_kind_, api_kind_ == api::Kind::graph ? conn->graph_url : conn->gmail_api_url,
                                           mailbox_);
                job.tokens = s_->tokens;
                auto tls = s_->upstream_tls.find(conn->name);
                if (tls != s_->upstream_tls.end()) job.tls = tls->second;
                job.patience = conn->upstream_wait;
                job.session_id = id_;
                end.reply = co_await api::send(std::move(job), spool, std::move(bcc));
            }
        }
    } else if (ok) {
        end.kind = DataEnd::Kind::upstream_lost;
        spool_error = "no connection for the message";
    }
    env_.clear();
    switch (end.kind) {
        case DataEnd::Kind::relayed:
            if (end.reply.code / 100 == 2) {
                count_relayed(scanner.message_bytes());
            } else if (end.reply.code / 100 == 4) {
                ++s_->counters.messages_failed;
                set_result(server::Result::tempfail, "API: " + end.reply.text());
            } else {
                ++s_->counters.messages_refused;
            }
            break;
        case DataEnd::Kind::too_big:
        case DataEnd::Kind::bare_newline: count_refused_here(end.kind); break;
        case DataEnd::Kind::upstream_lost:
            ++s_->counters.messages_failed;
            set_result(server::Result::tempfail, spool_error);
            spdlog::error("smtp session {} message not sent: {}", id_, util::log_escape(spool_error));
            break;
        case DataEnd::Kind::refused_at_data: break;   // (SMTP upstreams only: the API answers DATA here)
    }
    co_return end;
}

awaitable<void> Session::drop_upstream(bool polite) {
    env_.clear();   // (the API path holds no connection: only its envelope goes)
    api_replies_.clear();
    if (!upstream_) co_return;
    if (polite) co_await upstream_->quit();
    give_back(false);
}

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls,
                            server::ListenerLoad::Slot slot) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls), std::move(slot));
    co_await session.run();
}

}  // namespace xo::smtp
