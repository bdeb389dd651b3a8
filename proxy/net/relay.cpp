#include "net/relay.hpp"

namespace xo::net {
namespace {

struct Shared {
    RelayResult result;
    bool other_done = false;
    asio::steady_timer* wake = nullptr;
};

awaitable<void> pump(Link& from, Link& to, uint64_t* counter, std::string from_name, std::string* ended_by) {
    for (;;) {
        error_code ec;
        std::string_view data = co_await from.read_some(ec);
        if (ec) {
            if (ended_by->empty())
                *ended_by = from_name + (ec == beast::error::timeout ? " idle timeout" : " closed");
            break;
        }
        std::size_t n = data.size();
        co_await to.write(data, ec);
        from.consume(n);
        *counter += n;
        if (ec) {
            if (ended_by->empty()) *ended_by = (from_name == "client" ? "upstream" : "client") + std::string(" closed");
            break;
        }
    }
    from.close();
    to.close();
}

awaitable<void> pump_and_signal(Link& from, Link& to, std::shared_ptr<Shared> sh) {
    co_await pump(from, to, &sh->result.upstream_to_client, "upstream", &sh->result.ended_by);
    sh->other_done = true;
    if (sh->wake) sh->wake->cancel();
}

}  // namespace

awaitable<RelayResult> relay(Link& client, Link& upstream, std::chrono::steady_clock::duration idle) {
    client.set_timeout(idle);
    upstream.set_timeout(idle);
    auto sh = std::make_shared<Shared>();
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, pump_and_signal(upstream, client, sh), asio::detached);
    co_await pump(client, upstream, &sh->result.client_to_upstream, "client", &sh->result.ended_by);
    // Both links are closed now; wait for the other direction to notice (it
    // references the links, which live in our caller's frame).
    asio::steady_timer wake(ex, std::chrono::steady_clock::time_point::max());
    sh->wake = &wake;
    while (!sh->other_done) {
        error_code ec;
        co_await wake.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    sh->wake = nullptr;
    co_return sh->result;
}

}  // namespace xo::net
