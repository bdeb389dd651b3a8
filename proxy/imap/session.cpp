// The IMAP session: the client's bytes go to the Machine (its CommandParser
// reads them) until login; then PreauthSession relays both ways.
#include "imap/session.hpp"

#include "imap/machine.hpp"
#include "imap/upstream.hpp"
#include "server/preauth_session.hpp"
#include "smtp/pool.hpp"

namespace xo::imap {
namespace {

class Session final : public server::PreauthSession {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls, server::ListenerLoad::Slot slot)
        : PreauthSession("imap", std::move(socket), l, std::move(s), std::move(tls), std::move(slot)),
          machine_(MachineConfig{id_, l.tls == config::ListenerTls::starttls, l.tls == config::ListenerTls::implicit,
                                 l.allow_plaintext_auth || server::is_loopback(ip_)}) {
        client_.set_timeout(std::chrono::minutes(30));   // RFC 9051: at least 30 minutes
    }

private:
    std::string fatal_reply() const override { return "* BYE Internal error\r\n"; }
    std::string shutdown_reply() const override { return "* BYE Server shutting down\r\n"; }
    const config::Upstream& upstream_of(const config::Connection& c) const override { return c.imap; }
    // At most max_imap_sessions upstream sessions per mailbox: a login beyond
    // them waits (fairly, at most upstream_wait) for one of them to end.
    awaitable<bool> open_upstream(const config::Connection& c, const std::string& mailbox,
                                  net::UpstreamError& err) override {
        if (c.max_imap_sessions > 0 && !slot_) {
            smtp::PoolLimits limits;
            limits.max_sessions = c.max_imap_sessions;
            limits.wait = c.upstream_wait;
            auto slots = s_->imap_slots->get(c.imap_identity(), mailbox, limits);
            smtp::UpstreamPool::Lease lease = co_await slots->acquire();
            if (!lease.room) {
                err = {net::UpstreamError::Kind::connect,
                       "no IMAP session free for " + mailbox + " within upstream_wait (max_imap_sessions " +
                           std::to_string(c.max_imap_sessions) + ")",
                       "log out idle IMAP clients of this mailbox, or raise max_imap_sessions (Exchange Online allows "
                       "20 per mailbox, Gmail 15)"};
                co_return false;
            }
            slot_ = Slot{std::move(slots)};
        }
        bool opened = co_await open_as(upstream_, c, mailbox, err);
        if (!opened) slot_ = Slot{};
        co_return opened;
    }
    server::PreauthActions greet() override { return machine_.start(); }
    awaitable<server::PreauthActions> next(error_code& ec) override {
        std::string_view data = co_await read_input(ec);
        if (ec) co_return server::PreauthActions{};
        std::string_view in = data;
        server::PreauthActions actions = machine_.feed(in);
        client_.consume(data.size() - in.size());
        co_return actions;
    }
    server::PreauthActions tls_done(bool ok) override { return machine_.on_tls(ok); }
    server::PreauthActions login_done(server::LoginOutcome o) override {
        return machine_.on_login(o, o == server::LoginOutcome::ok && upstream_ ? upstream_->capabilities() : "");
    }
    bool machine_closed() const override { return machine_.closed(); }
    net::Link* upstream_link() override { return upstream_ ? &upstream_->link() : nullptr; }
    std::chrono::steady_clock::duration relay_idle() const override {
        return std::chrono::minutes(35);   // IDLE re-issues every 29 minutes
    }

    // A place under max_imap_sessions, given back when the session ends.
    struct Slot {
        std::shared_ptr<smtp::UpstreamPool> pool;
        Slot() = default;
        explicit Slot(std::shared_ptr<smtp::UpstreamPool> p) : pool(std::move(p)) {}
        Slot(Slot&& o) noexcept : pool(std::move(o.pool)) {}
        Slot& operator=(Slot&& o) noexcept {
            if (this != &o) {
                release();
                pool = std::move(o.pool);
            }
            return *this;
        }
        ~Slot() { release(); }
        void release() {
            if (pool) pool->forfeit();
            pool.reset();
        }
        explicit operator bool() const { return pool != nullptr; }
    };

    Machine machine_;
    Slot slot_;   // declared before upstream_: given back after the upstream is gone
    std::unique_ptr<Upstream> upstream_;
};

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls,
                            server::ListenerLoad::Slot slot) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls), std::move(slot));
    co_await session.run();
}

}  // namespace xo::imap
