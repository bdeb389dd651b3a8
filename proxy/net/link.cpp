#include "net/link.hpp"

#include "net/tls.hpp"

namespace xo::net {

namespace {
// Reads start small (an idle session holds one pending read) and grow while
// the peer keeps filling them (FETCH literals), up to 64 KB. A message body
// (expect_bulk) starts at 32 KB: a typical message in one read, not in pieces
// of 2, 4 and 8 KB that each cost a read here, a TLS record and a write upstream.
constexpr std::size_t kMinRead = 2048, kBulkRead = 32 * 1024, kMaxRead = 64 * 1024;
}

void Link::expect_bulk() { read_size_ = std::max(read_size_, kBulkRead); }

Link::Link(tcp::socket socket, std::shared_ptr<ssl::context> tls)
    : tls_(std::move(tls)), tcp_(std::move(socket)) {
    error_code ec;   // replies are written whole: Nagle would only hold them back for a delayed ACK
    tcp_.socket().set_option(tcp::no_delay(true), ec);
}

Link::Link(const asio::any_io_executor& ex, std::shared_ptr<ssl::context> tls)
    : tls_(std::move(tls)), tcp_(ex) {}

void Link::arm() {
    auto now = std::chrono::steady_clock::now();
    auto at = std::min({now + timeout_, command_deadline_, session_deadline_});
    tcp_.expires_at(at);
}

awaitable<void> Link::connect(const std::string& host, uint16_t port, error_code& ec) {
    tcp::resolver resolver(tcp_.get_executor());
    // A lookup that does not answer is cancelled (the system resolver has no bound of its own).
    asio::steady_timer lookup_limit(tcp_.get_executor(), std::chrono::seconds(15));
    lookup_limit.async_wait([&resolver](const error_code& e) {
        if (!e) resolver.cancel();
    });
    auto endpoints = co_await resolver.async_resolve(host, std::to_string(port),
                                                     asio::redirect_error(use_awaitable, ec));
    lookup_limit.cancel();
    if (ec == asio::error::operation_aborted) ec = asio::error::timed_out;
    if (ec) co_return;
    auto& tcp = tcp_;
    tcp.expires_after(std::min<std::chrono::steady_clock::duration>(timeout_, std::chrono::seconds(30)));
    co_await tcp.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
    if (!ec) tcp.socket().set_option(tcp::no_delay(true), ec);
}

awaitable<void> Link::start_tls(bool server, const std::string& host, error_code& ec) {
    if (!tls_) {
        ec = asio::error::invalid_argument;
        co_return;
    }
    ssl_ = std::make_unique<ssl::stream<beast::tcp_stream&>>(tcp_, *tls_);
    if (!server && !verify_peer(ssl_->native_handle(), host)) {
        ec = asio::error::invalid_argument;
        co_return;
    }
    if (!server) {
        error_code pec;
        auto remote = tcp_.socket().remote_endpoint(pec);
        offer_session(ssl_->native_handle(), host + ":" + std::to_string(pec ? 0 : remote.port()));
    }
    // Bytes the peer sent after STARTTLS but before the handshake would be
    // plaintext injection (CVE-2011-0411 class): refuse them.
    if (buffered() != 0) {
        ec = asio::error::connection_aborted;
        co_return;
    }
    tcp_.expires_after(std::min<std::chrono::steady_clock::duration>(timeout_, std::chrono::seconds(60)));
    co_await ssl_->async_handshake(server ? ssl::stream_base::server : ssl::stream_base::client,
                                     asio::redirect_error(use_awaitable, ec));
    if (!ec) tls_on_ = true;
}

std::string Link::tls_version() const {
    return tls_on_ ? SSL_get_version(ssl_->native_handle()) : "";
}

bool Link::tls_resumed() const {
    return tls_on_ && SSL_session_reused(ssl_->native_handle()) == 1;
}

std::string Link::tls_cipher() const {
    return tls_on_ ? SSL_get_cipher_name(ssl_->native_handle()) : "";
}

awaitable<std::size_t> Link::fill(error_code& ec) {
    if (in_pos_ > 0 && in_pos_ == in_.size()) {
        in_.clear();
        in_pos_ = 0;
    } else if (in_pos_ > kMaxRead) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
    }
    std::size_t old = in_.size();
    const std::size_t chunk = read_size_;
    in_.resize(old + chunk);
    arm();
    std::size_t n;
    if (tls_on_)
        n = co_await ssl_->async_read_some(asio::buffer(in_.data() + old, chunk),
                                             asio::redirect_error(use_awaitable, ec));
    else
        n = co_await tcp_.async_read_some(asio::buffer(in_.data() + old, chunk),
                                                          asio::redirect_error(use_awaitable, ec));
    in_.resize(old + n);
    if (n == chunk && read_size_ < kMaxRead) read_size_ *= 2;
    bytes_in_ += n;
    co_return n;
}

bool Link::has_line() const { return in_.find('\n', in_pos_) != std::string::npos; }

awaitable<std::string> Link::read_line(std::size_t max_line, error_code& ec) {
    lines_.set_max_line(max_line);
    std::string line;
    for (;;) {
        std::string_view avail = std::string_view(in_).substr(in_pos_);
        auto st = lines_.feed(avail, line);
        in_pos_ = in_.size() - avail.size();
        if (st == util::LineBuffer::Status::line) co_return line;
        if (st == util::LineBuffer::Status::too_long) {
            ec = asio::error::message_size;
            co_return std::string();
        }
        error_code fe;
        co_await flush(fe);
        if (fe) {
            ec = fe;
            co_return std::string();
        }
        co_await fill(ec);
        if (ec) co_return std::string();
    }
}

void Link::trim() {
    if (in_pos_ == in_.size() && in_.capacity() > 4 * kMinRead) {
        std::string().swap(in_);
        in_pos_ = 0;
        read_size_ = kMinRead;
    }
    if (out_.empty() && out_.capacity() > 4 * kMinRead) std::string().swap(out_);
}

awaitable<std::string_view> Link::read_some(error_code& ec) {
    if (in_.size() == in_pos_) {
        co_await flush(ec);
        if (ec) co_return std::string_view();
        co_await fill(ec);
        if (ec) co_return std::string_view();
    }
    co_return std::string_view(in_).substr(in_pos_);
}

void Link::consume(std::size_t n) { in_pos_ += std::min(n, in_.size() - in_pos_); }

awaitable<void> Link::flush(error_code& ec) {
    if (out_.empty()) co_return;
    arm();
    if (tls_on_)
        co_await asio::async_write(*ssl_, asio::buffer(out_), asio::redirect_error(use_awaitable, ec));
    else
        co_await asio::async_write(tcp_, asio::buffer(out_),
                                   asio::redirect_error(use_awaitable, ec));
    bytes_out_ += out_.size();
    out_.clear();
}

awaitable<void> Link::write(std::string_view bytes, error_code& ec) {
    if (out_.empty()) {
        arm();
        if (tls_on_)
            co_await asio::async_write(*ssl_, asio::buffer(bytes.data(), bytes.size()),
                                       asio::redirect_error(use_awaitable, ec));
        else
            co_await asio::async_write(tcp_, asio::buffer(bytes.data(), bytes.size()),
                                       asio::redirect_error(use_awaitable, ec));
        bytes_out_ += bytes.size();
        co_return;
    }
    queue(bytes);
    co_await flush(ec);
}

std::string Link::remote_address() const {
    error_code ec;
    auto ep = tcp_.socket().remote_endpoint(ec);
    if (ec) return "?";
    auto a = ep.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
    return a.to_string();
}

uint16_t Link::remote_port() const {
    error_code ec;
    auto ep = tcp_.socket().remote_endpoint(ec);
    return ec ? 0 : ep.port();
}

void Link::close() {
    error_code ec;
    tcp_.socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_.socket().close(ec);
}

}  // namespace xo::net
