#include "server/listeners.hpp"

#include <spdlog/spdlog.h>

#include "net/tls.hpp"
#include "imap/session.hpp"
#include "pop3/session.hpp"
#include "smtp/session.hpp"

namespace xo::server {

Listeners::Listeners(asio::io_context& io, std::shared_ptr<Services> services, unsigned io_threads)
    : io_(io), io_threads_(io_threads), services_(std::move(services)), counters_(services_->shared_counters) {}

namespace {

std::string tls_name(config::ListenerTls t) {
    return t == config::ListenerTls::none ? "none" : t == config::ListenerTls::starttls ? "starttls" : "implicit";
}

// What only a restart can change: the socket and the session type.
bool same_binding(const config::Listener& a, const config::Listener& b) {
    return a.host == b.host && a.port == b.port && a.protocol == b.protocol && a.tls == b.tls;
}

}  // namespace

void Listeners::start() {
    generations_.push_back(services_);
    for (const auto& l : services_->cfg.listeners) {
        auto b = std::make_unique<Bound>();
        b->services = services_;
        b->listener = &l;
        b->load = std::make_shared<ListenerLoad>(l.max_sessions, l.max_sessions_per_client);
        if (l.tls != config::ListenerTls::none) b->tls = net::make_server_context(l.cert_file, l.key_file);
        error_code ec;
        auto addr = asio::ip::make_address(l.host, ec);
        if (ec) throw std::runtime_error("listener " + l.name + ": bad address " + l.host);
        tcp::endpoint ep(addr, l.port);
        b->acceptor = std::make_unique<tcp::acceptor>(io_);
        b->acceptor->open(ep.protocol(), ec);
        if (!ec) b->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) b->acceptor->bind(ep, ec);
        if (!ec) b->acceptor->listen(1024, ec);
        if (ec)
            throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.host + ":" +
                                     std::to_string(l.port) + ": " + ec.message());
        spdlog::info("listener {} ({}) on {}:{} tls={}", l.name, config::to_string(l.protocol), l.host, l.port, tls_name(l.tls));
        asio::co_spawn(io_, accept_loop(b.get()), asio::detached);
        bound_.push_back(std::move(b));
    }
    services_.reset();   // the Bound entries hold it; a reload may replace it
}

std::vector<std::string> Listeners::reload(std::shared_ptr<Services> next) {
    std::vector<std::string> notes;
    struct Change {
        Bound* b;
        const config::Listener* listener;
        std::shared_ptr<ssl::context> tls;
        std::shared_ptr<ListenerLoad> load;
    };
    std::vector<Change> changes;
    {
        std::lock_guard lock(mu_);
        // Everything that can fail first (certificates), so a failure changes nothing.
        for (auto& b : bound_) {
            const config::Listener* nl = nullptr;
            for (const auto& l : next->cfg.listeners)
                if (l.name == b->listener->name) nl = &l;
            if (!nl) {
                notes.push_back("listener " + b->listener->name +
                                " was removed from the file: it keeps serving with the old configuration until a restart");
                continue;
            }
            if (!same_binding(*b->listener, *nl)) {
                notes.push_back("listener " + nl->name + ": address, port, protocol or TLS mode changed (" +
                                b->listener->host + ":" + std::to_string(b->listener->port) + " " +
                                config::to_string(b->listener->protocol) + " tls=" + tls_name(b->listener->tls) + " -> " +
                                nl->host + ":" + std::to_string(nl->port) + " " + config::to_string(nl->protocol) +
                                " tls=" + tls_name(nl->tls) +
                                "): binding changes need a restart; it keeps serving with the old configuration");
                continue;
            }
            Change c{b.get(), nl, nullptr, b->load};
            if (nl->tls != config::ListenerTls::none) c.tls = net::make_server_context(nl->cert_file, nl->key_file);
            // New limits take a new count: sessions already running hold their place in the old one.
            if (nl->max_sessions != b->listener->max_sessions || nl->max_sessions_per_client != b->listener->max_sessions_per_client)
                c.load = std::make_shared<ListenerLoad>(nl->max_sessions, nl->max_sessions_per_client);
            changes.push_back(std::move(c));
        }
        for (const auto& l : next->cfg.listeners) {
            bool bound = false;
            for (auto& b : bound_) bound = bound || b->listener->name == l.name;
            if (!bound)
                notes.push_back("listener " + l.name + " (" + l.host + ":" + std::to_string(l.port) +
                                ") is new: binding changes need a restart; it is not listening");
        }
        for (auto& c : changes) {
            c.b->services = next;
            c.b->listener = c.listener;
            c.b->tls = std::move(c.tls);
            c.b->load = std::move(c.load);
        }
        std::erase_if(generations_, [](const std::weak_ptr<Services>& w) { return w.expired(); });
        generations_.push_back(next);
    }
    return notes;
}

void Listeners::drain() {
    std::vector<std::shared_ptr<Services>> alive;
    {
        std::lock_guard lock(mu_);
        for (auto& w : generations_)
            if (auto s = w.lock()) alive.push_back(std::move(s));
    }
    for (auto& s : alive) s->drain();
}

awaitable<void> Listeners::accept_loop(Bound* b) {
    for (;;) {
        error_code ec;
        asio::any_io_executor session_ex = io_.get_executor();
        if (io_threads_ > 1) session_ex = asio::make_strand(io_);
        tcp::socket socket = co_await b->acceptor->async_accept(session_ex, asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !b->acceptor->is_open()) co_return;
        if (ec) {
            std::string name;
            {
                std::lock_guard lock(mu_);
                name = b->listener->name;
            }
            spdlog::warn("listener {}: accept: {}", name, ec.message());
            // EMFILE and friends: back off instead of spinning.
            asio::steady_timer t(io_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        auto peer = socket.remote_endpoint(ec);
        std::string ip = "?";
        if (!ec) {
            auto a = peer.address();
            ip = a.is_v6() && a.to_v6().is_v4_mapped() ? asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string()
                                                       : a.to_string();
        }
        std::shared_ptr<Services> services;
        const config::Listener* listener;
        std::shared_ptr<ssl::context> tls;
        std::shared_ptr<ListenerLoad> load;
        {
            std::lock_guard lock(mu_);
            services = b->services;
            listener = b->listener;
            tls = b->tls;
            load = b->load;
        }
        std::string why;
        auto slot = load->acquire(ip, why);
        if (!slot) {
            std::string_view busy = listener->protocol == config::Protocol::smtp ? "421 4.3.2 Too many connections, try again later\r\n"
                                  : listener->protocol == config::Protocol::imap ? "* BYE Too many connections, try again later\r\n"
                                  : "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
            spdlog::warn("listener {}: client {} refused: {}", listener->name, ip, why);
            socket.non_blocking(true, ec);   // never wait on a client that does not read
            socket.write_some(asio::buffer(busy.data(), busy.size()), ec);
            socket.close(ec);
            continue;
        }
        auto ex = socket.get_executor();
        switch (listener->protocol) {
            case config::Protocol::smtp:
                asio::co_spawn(ex, smtp::run_session(std::move(socket), listener, services, tls, std::move(*slot)), asio::detached);
                break;
            case config::Protocol::imap:
                asio::co_spawn(ex, imap::run_session(std::move(socket), listener, services, tls, std::move(*slot)), asio::detached);
                break;
            case config::Protocol::pop3:
                asio::co_spawn(ex, pop3::run_session(std::move(socket), listener, services, tls, std::move(*slot)), asio::detached);
                break;
        }
    }
}

void Listeners::stop() {
    for (auto& b : bound_) {
        error_code ec;
        b->acceptor->close(ec);
    }
}

}  // namespace xo::server
