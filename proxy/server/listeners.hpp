// Binds every configured listener and accepts clients, each on its own strand,
// handing them to the protocol's session; a listener full (max_sessions) or a
// client over max_sessions_per_client is answered with the protocol's "busy"
// line at once. Stops accepting on stop(). reload() gives new sessions a new
// Services (running ones keep theirs) without closing a socket; it throws, and
// changes nothing, when a listener's certificate cannot be loaded.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "asio.hpp"
#include "server/services.hpp"
#include "server/session_base.hpp"

namespace xo::server {

class Listeners {
public:
    // `io_threads`: how many threads run `io`. With one, a session runs on the io_context's own
    // executor: there is nothing to serialize, and a strand would only cost a lock and a
    // reference count per handler. With more, each session gets a strand.
    Listeners(asio::io_context& io, std::shared_ptr<Services> services, unsigned io_threads = 2);
    // Binds all listeners; throws std::runtime_error naming the listener on failure.
    void start();
    void stop();
    // New sessions get `next` from now on. Listeners are matched by name; one
    // whose address, port, protocol or TLS mode changed, one removed and one
    // added are left as they were (bound with the old configuration, or not
    // bound): each gives a line in the returned notes (a restart applies them).
    std::vector<std::string> reload(std::shared_ptr<Services> next);
    // Idle sessions of every generation close now (SIGTERM); see Services::drain.
    void drain();
    // Counters are shared by every generation of Services.
    std::size_t active_sessions() const { return counters_->sessions_active.load(); }

private:
    struct Bound {
        std::unique_ptr<tcp::acceptor> acceptor;
        // Read by the accept loop and swapped by reload(), under mu_.
        std::shared_ptr<Services> services;   // owns *listener
        const config::Listener* listener;
        std::shared_ptr<ssl::context> tls;
        std::shared_ptr<ListenerLoad> load;   // max_sessions, max_sessions_per_client
    };
    awaitable<void> accept_loop(Bound* b);

    asio::io_context& io_;
    unsigned io_threads_;
    std::shared_ptr<Services> services_;   // the first, until start() has bound its listeners
    std::shared_ptr<Counters> counters_;
    std::vector<std::unique_ptr<Bound>> bound_;
    mutable std::mutex mu_;
    std::vector<std::weak_ptr<Services>> generations_;
};

}  // namespace xo::server
