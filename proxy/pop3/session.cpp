// The POP3 session: the client's lines go to the Machine until login; then
// PreauthSession relays both ways.
#include "pop3/session.hpp"

#include "pop3/machine.hpp"
#include "pop3/upstream.hpp"
#include "server/preauth_session.hpp"

namespace xo::pop3 {
namespace {

class Session final : public server::PreauthSession {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls, server::ListenerLoad::Slot slot)
        : PreauthSession("pop3", std::move(socket), l, std::move(s), std::move(tls), std::move(slot)),
          machine_(MachineConfig{id_, l.tls == config::ListenerTls::starttls, l.tls == config::ListenerTls::implicit,
                                 l.allow_plaintext_auth || server::is_loopback(ip_)}) {
        client_.set_timeout(std::chrono::minutes(10));   // RFC 1939: at least 10 minutes
    }

private:
    std::string fatal_reply() const override { return "-ERR [SYS/TEMP] Internal error\r\n"; }
    std::string shutdown_reply() const override { return "-ERR [SYS/TEMP] Server shutting down\r\n"; }
    const config::Upstream& upstream_of(const config::Connection& c) const override { return c.pop3; }
    awaitable<bool> open_upstream(const config::Connection& c, const std::string& mailbox,
                                  net::UpstreamError& err) override {
        co_return co_await open_as(upstream_, c, mailbox, err);
    }
    server::PreauthActions greet() override { return machine_.start(); }
    awaitable<server::PreauthActions> next(error_code& ec) override {
        std::string line = co_await read_command(kMaxAuthLine, ec);
        if (ec == asio::error::message_size) {
            ec = {};
            co_return machine_.on_line_too_long();
        }
        if (ec) co_return server::PreauthActions{};
        co_return machine_.on_line(line);
    }
    server::PreauthActions tls_done(bool ok) override { return machine_.on_tls(ok); }
    server::PreauthActions login_done(server::LoginOutcome o) override { return machine_.on_login(o); }
    bool machine_closed() const override { return machine_.closed(); }
    net::Link* upstream_link() override { return upstream_ ? &upstream_->link() : nullptr; }
    std::chrono::steady_clock::duration relay_idle() const override { return std::chrono::minutes(10); }

    Machine machine_;
    std::unique_ptr<Upstream> upstream_;
};

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls,
                            server::ListenerLoad::Slot slot) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls), std::move(slot));
    co_await session.run();
}

}  // namespace xo::pop3
