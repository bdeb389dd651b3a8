// The IMAP session moves bytes between the client's Link and the Machine until
// login, then relays the client and the upstream both ways.
#include "imap/session.hpp"

#include <spdlog/spdlog.h>

#include "imap/machine.hpp"
#include "imap/upstream.hpp"
#include "net/relay.hpp"
#include "server/session_base.hpp"
#include "util/text.hpp"

namespace xo::imap {
namespace {

constexpr auto kRelayIdle = std::chrono::minutes(35);   // IDLE re-issues every 29 minutes

class Session final : public server::SessionBase {
public:
    Session(tcp::socket socket, const config::Listener& l, std::shared_ptr<server::Services> s,
            std::shared_ptr<ssl::context> tls, server::ListenerLoad::Slot slot)
        : SessionBase("imap", std::move(socket), l, std::move(s), std::move(tls), std::move(slot)),
          machine_(MachineConfig{id_, l.tls == config::ListenerTls::starttls, l.tls == config::ListenerTls::implicit,
                                 l.allow_plaintext_auth || server::is_loopback(ip_)}) {
        client_.set_timeout(std::chrono::minutes(30));   // RFC 9051: at least 30 minutes
    }

private:
    awaitable<void> serve() override;
    std::string fatal_reply() const override { return "* BYE Internal error\r\n"; }
    const config::Upstream& upstream_of(const config::Connection& c) const override { return c.imap; }
    awaitable<bool> open_upstream(const config::Connection& c, const std::string& mailbox,
                                  net::UpstreamError& err) override;
    awaitable<void> finish() override {
        if (upstream_) upstream_->link().close();
        co_return;
    }
    awaitable<bool> execute(Actions actions);   // false: the session ends

    Machine machine_;
    std::unique_ptr<Upstream> upstream_;
    bool relay_ = false;
};

awaitable<void> Session::serve() {
    bool ok = true;   // (no co_await inside && -- g++ 12)
    if (listener_.tls == config::ListenerTls::implicit) ok = co_await server_tls();
    if (!ok) co_return;
    Actions greeting = machine_.start();
    if (!co_await execute(std::move(greeting))) co_return;
    error_code ec;
    while (!relay_ && !machine_.closed()) {
        if (draining()) {
            client_.queue("* BYE Server shutting down\r\n");
            set_result(result_, "shutdown");
            co_return;
        }
        std::string_view data = co_await read_input(ec);
        if (ec) {
            if (reason_.empty()) reason_ = ec == beast::error::timeout ? "client idle timeout" : "client disconnected";
            co_return;
        }
        std::string_view in = data;
        Actions actions = machine_.feed(in);
        client_.consume(data.size() - in.size());
        if (!co_await execute(std::move(actions))) co_return;
    }
    if (!relay_) co_return;
    co_await client_.flush(ec);
    if (ec) co_return;
    auto r = co_await net::relay(client_, upstream_->link(), kRelayIdle);
    bytes_in_ = r.client_to_upstream;
    bytes_out_ = r.upstream_to_client;
    reason_ = r.ended_by;
}

// Carries out the machine's actions in order. What the machine answers to a
// result is held in a named value before co_await (g++ 12 destroys a
// temporary in a co_await expression twice).
awaitable<bool> Session::execute(Actions actions) {
    for (auto& a : actions) {
        switch (a.kind) {
            case Action::Kind::reply: client_.queue(a.text); break;
            case Action::Kind::start_tls: {
                bool ok = co_await server_tls();
                Actions next = machine_.on_tls(ok);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case Action::Kind::login: {
                server::LoginOutcome o = co_await login_and_open(std::move(a.text), std::move(a.secret));
                std::string caps = o == server::LoginOutcome::ok && upstream_ ? upstream_->capabilities() : "";
                Actions next = machine_.on_login(o, caps);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case Action::Kind::relay: relay_ = true; break;
            case Action::Kind::close: co_return false;
        }
    }
    co_return true;
}

awaitable<bool> Session::open_upstream(const config::Connection& c, const std::string& mailbox,
                                       net::UpstreamError& err) {
    auto tls = s_->upstream_tls.find(c.name);
    if (tls == s_->upstream_tls.end()) {
        err = {net::UpstreamError::Kind::tls, "connection " + c.name + " has no usable TLS context", ""};
        co_return false;
    }
    auto up = std::make_unique<Upstream>(co_await asio::this_coro::executor, c, mailbox, s_->tokens, tls->second);
    if (!co_await up->open(err)) co_return false;
    spdlog::info("imap session {} upstream {} open for {} ({}, AUTHENTICATE {})", id_, c.imap.text(),
                 util::log_escape(mailbox), up->tls_description(),
                 c.sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2");
    upstream_ = std::move(up);
    co_return true;
}

}  // namespace

awaitable<void> run_session(tcp::socket socket, const config::Listener* listener,
                            std::shared_ptr<server::Services> services, std::shared_ptr<ssl::context> server_tls,
                            server::ListenerLoad::Slot slot) {
    Session session(std::move(socket), *listener, std::move(services), std::move(server_tls), std::move(slot));
    co_await session.run();
}

}  // namespace xo::imap
