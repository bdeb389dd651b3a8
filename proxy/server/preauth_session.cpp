#include "server/preauth_session.hpp"

#include "net/relay.hpp"

namespace xo::server {

awaitable<void> PreauthSession::serve() {
    bool ok = true;   // (no co_await inside && -- g++ 12)
    if (listener_.tls == config::ListenerTls::implicit) ok = co_await server_tls();
    if (!ok) co_return;
    PreauthActions greeting = greet();
    if (!co_await execute(std::move(greeting))) co_return;
    error_code ec;
    while (!relay_ && !machine_closed()) {
        if (draining()) {
            client_.queue(shutdown_reply());
            set_result(result_, "shutdown");
            co_return;
        }
        PreauthActions actions = co_await next(ec);
        if (ec) {
            if (reason_.empty()) reason_ = ec == beast::error::timeout ? "client idle timeout" : "client disconnected";
            co_return;
        }
        if (!co_await execute(std::move(actions))) co_return;
    }
    if (!relay_) co_return;
    co_await client_.flush(ec);
    if (ec) co_return;
    client_.set_session_deadline(std::chrono::steady_clock::time_point::max());   // mailbox sessions last
    auto r = co_await net::relay(client_, *upstream_link(), relay_idle());
    bytes_in_ = r.client_to_upstream;
    bytes_out_ = r.upstream_to_client;
    reason_ = r.ended_by;
}

// Carries out the machine's actions in order. What the machine answers to a
// result is held in a named value before co_await (g++ 12 destroys a
// temporary in a co_await expression twice).
awaitable<bool> PreauthSession::execute(PreauthActions actions) {
    for (auto& a : actions) {
        switch (a.kind) {
            case PreauthAction::Kind::reply: client_.queue(a.text); break;
            case PreauthAction::Kind::start_tls: {
                bool ok = co_await server_tls();
                PreauthActions next = tls_done(ok);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case PreauthAction::Kind::login: {
                LoginOutcome o = co_await login_and_open(std::move(a.text), std::move(a.secret));
                PreauthActions next = login_done(o);
                if (!co_await execute(std::move(next))) co_return false;
                break;
            }
            case PreauthAction::Kind::relay: relay_ = true; break;
            case PreauthAction::Kind::close: co_return false;
        }
    }
    co_return true;
}

awaitable<void> PreauthSession::finish() {
    if (net::Link* up = upstream_link()) up->close();
    co_return;
}

}  // namespace xo::server
