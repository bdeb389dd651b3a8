// Binds every configured listener and accepts clients, each on its own strand,
// handing them to the protocol's session; a listener full (max_sessions) or a
// client over max_sessions_per_client is answered with the protocol's "busy"
// line at once. Stops accepting on stop(); drain()
// waits (bounded) for running sessions to finish.
#pragma once
#include <memory>
#include <vector>

#include "asio.hpp"
#include "server/services.hpp"
#include "server/session_base.hpp"

namespace xo::server {

class Listeners {
public:
    Listeners(asio::io_context& io, std::shared_ptr<Services> services);
    // Binds all listeners; throws std::runtime_error naming the listener on failure.
    void start();
    void stop();
    std::size_t active_sessions() const { return services_->counters.sessions_active.load(); }

private:
    struct Bound {
        const config::Listener* listener;
        std::unique_ptr<tcp::acceptor> acceptor;
        std::shared_ptr<ssl::context> tls;
        std::shared_ptr<ListenerLoad> load;   // max_sessions, max_sessions_per_client
    };
    awaitable<void> accept_loop(Bound* b);

    asio::io_context& io_;
    std::shared_ptr<Services> services_;
    std::vector<std::unique_ptr<Bound>> bound_;
};

}  // namespace xo::server
