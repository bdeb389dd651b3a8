#include "server/listeners.hpp"

#include <spdlog/spdlog.h>

#include "net/tls.hpp"
#include "imap/session.hpp"
#include "pop3/session.hpp"
#include "smtp/session.hpp"

namespace xo::server {

Listeners::Listeners(asio::io_context& io, std::shared_ptr<Services> services)
    : io_(io), services_(std::move(services)) {}

void Listeners::start() {
    for (const auto& l : services_->cfg.listeners) {
        auto b = std::make_unique<Bound>();
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
        spdlog::info("listener {} ({}) on {}:{} tls={}", l.name, config::to_string(l.protocol), l.host, l.port,
                     l.tls == config::ListenerTls::none ? "none" : l.tls == config::ListenerTls::starttls ? "starttls" : "implicit");
        asio::co_spawn(io_, accept_loop(b.get()), asio::detached);
        bound_.push_back(std::move(b));
    }
}

awaitable<void> Listeners::accept_loop(Bound* b) {
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await b->acceptor->async_accept(asio::make_strand(io_),
                                                                asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !b->acceptor->is_open()) co_return;
        if (ec) {
            spdlog::warn("listener {}: accept: {}", b->listener->name, ec.message());
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
        std::string why;
        auto slot = b->load->acquire(ip, why);
        if (!slot) {
            std::string_view busy = b->listener->protocol == config::Protocol::smtp ? "421 4.3.2 Too many connections, try again later\r\n"
                                  : b->listener->protocol == config::Protocol::imap ? "* BYE Too many connections, try again later\r\n"
                                  : "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
            spdlog::warn("listener {}: client {} refused: {}", b->listener->name, ip, why);
            socket.non_blocking(true, ec);   // never wait on a client that does not read
            socket.write_some(asio::buffer(busy.data(), busy.size()), ec);
            socket.close(ec);
            continue;
        }
        auto ex = socket.get_executor();
        switch (b->listener->protocol) {
            case config::Protocol::smtp:
                asio::co_spawn(ex, smtp::run_session(std::move(socket), b->listener, services_, b->tls, std::move(*slot)), asio::detached);
                break;
            case config::Protocol::imap:
                asio::co_spawn(ex, imap::run_session(std::move(socket), b->listener, services_, b->tls, std::move(*slot)), asio::detached);
                break;
            case config::Protocol::pop3:
                asio::co_spawn(ex, pop3::run_session(std::move(socket), b->listener, services_, b->tls, std::move(*slot)), asio::detached);
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
