// net::Link's read sizes: a session waiting for a command reads small (an idle
// session's buffer stays small), a message body is read in one piece once the
// session expects it (one read from the client, one TLS record to the upstream,
// instead of a piece per 2, 4 and 8 KB), and trim() makes an idle session small again.
#include <gtest/gtest.h>
#include <sys/ioctl.h>

#include <chrono>
#include <string>
#include <thread>

#include "net/link.hpp"

using namespace xo;

namespace {
struct Pair {
    asio::io_context io;
    tcp::socket writer{io}, reader{io};
    int fd = -1;   // the reader's, which stays the same inside the Link
    Pair() {
        tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        writer.connect(acc.local_endpoint());
        reader = acc.accept();
        fd = reader.native_handle();
    }
    std::size_t available() const {
        int n = 0;
        return ::ioctl(fd, FIONREAD, &n) == 0 ? std::size_t(n) : 0;
    }
    // Writes `bytes` and waits (at most 2 s) until all of them are readable at the other end.
    bool send(const std::string& bytes) {
        asio::write(writer, asio::buffer(bytes));
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (available() < bytes.size() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return available() >= bytes.size();
    }
};

// One read_some through the Link; the size it returned.
std::size_t read_once(asio::io_context& io, net::Link& link) {
    std::size_t got = 0;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            error_code ec;
            std::string_view v = co_await link.read_some(ec);
            got = ec ? 0 : v.size();
            link.consume(v.size());
        },
        asio::detached);
    io.run_for(std::chrono::seconds(2));
    io.restart();
    return got;
}

std::string message(std::size_t n) {
    std::string m;
    while (m.size() < n) m += "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n";
    return m + ".\r\n";
}
}  // namespace

TEST(Link, ReadsSmallWhileWaitingForACommand) {
    Pair p;
    ASSERT_TRUE(p.send(message(10240)));
    net::Link link(std::move(p.reader), nullptr);
    EXPECT_LE(read_once(p.io, link), 2048u);
}

TEST(Link, ReadsAMessageBodyInOnePiece) {
    Pair p;
    const std::string body = message(10240);
    ASSERT_TRUE(p.send(body));
    net::Link link(std::move(p.reader), nullptr);
    link.expect_bulk();
    EXPECT_EQ(read_once(p.io, link), body.size());
}

TEST(Link, TrimMakesAnIdleSessionSmallAgain) {
    Pair p;
    ASSERT_TRUE(p.send(message(10240)));
    net::Link link(std::move(p.reader), nullptr);
    link.expect_bulk();
    ASSERT_GT(read_once(p.io, link), 8192u);
    link.trim();
    ASSERT_TRUE(p.send(message(10240)));
    EXPECT_LE(read_once(p.io, link), 2048u);
}
