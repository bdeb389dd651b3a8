// One side of a proxied session: a TCP socket that may switch to TLS
// (STARTTLS) or start in it (implicit TLS), with a read buffer for line-based
// protocols, a write buffer that is flushed before the session waits for input
// (so pipelined replies leave in one packet), and a timeout on every operation.
// Operations report errors through error_code; nothing throws.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "asio.hpp"
#include "util/line_buffer.hpp"

namespace xo::net {

class Link {
public:
    // `tls` is the context used when TLS starts (server or client side); may be
    // nullptr for a link that never starts TLS (start_tls then fails).
    Link(tcp::socket socket, std::shared_ptr<ssl::context> tls);
    Link(const asio::any_io_executor& ex, std::shared_ptr<ssl::context> tls);

    awaitable<void> connect(const std::string& host, uint16_t port, error_code& ec);
    // Client side: verify the peer's certificate for `host`; server side: host empty.
    awaitable<void> start_tls(bool server, const std::string& host, error_code& ec);
    bool tls_active() const { return tls_on_; }
    std::string tls_version() const;   // "TLSv1.3" when active, else ""
    bool tls_resumed() const;          // the handshake resumed an earlier session
    std::string tls_cipher() const;

    // Reads one line through the LineBuffer, returned without its CRLF (or bare
    // LF). A line longer than max_line sets ec = message_size; that line is discarded.
    awaitable<std::string> read_line(std::size_t max_line, error_code& ec);
    // Reads whatever is buffered, or one read from the socket when nothing is.
    awaitable<std::string_view> read_some(error_code& ec);
    void consume(std::size_t n);        // mark n bytes of the last read_some as used
    std::size_t buffered() const { return in_.size() - in_pos_ + lines_.buffered(); }
    // Gives back read buffers grown by a large line or literal (call while idle).
    void trim();
    // A message body follows (SMTP DATA): reads start at kBulkRead, so that a typical
    // message arrives in one read and leaves in one TLS record; trim() undoes it.
    void expect_bulk();
    bool has_line() const;              // a complete line is already buffered

    void queue(std::string_view bytes) { out_.append(bytes); }
    awaitable<void> flush(error_code& ec);
    awaitable<void> write(std::string_view bytes, error_code& ec);   // queue + flush

    asio::any_io_executor executor() { return tcp_.get_executor(); }
    void set_timeout(std::chrono::steady_clock::duration d) { timeout_ = d; }
    // No operation runs past these points (time_point::max(): none). The
    // command deadline bounds one whole line however slowly it trickles in;
    // the session deadline bounds everything.
    void set_command_deadline(std::chrono::steady_clock::time_point t) { command_deadline_ = t; }
    void set_session_deadline(std::chrono::steady_clock::time_point t) { session_deadline_ = t; }
    std::string remote_address() const;
    uint16_t remote_port() const;
    void close();
    uint64_t bytes_in() const { return bytes_in_; }
    uint64_t bytes_out() const { return bytes_out_; }
    SSL* native_ssl() { return ssl_ ? ssl_->native_handle() : nullptr; }
    std::shared_ptr<ssl::context> tls_context() const { return tls_; }

private:
    awaitable<std::size_t> fill(error_code& ec);

    std::shared_ptr<ssl::context> tls_;
    beast::tcp_stream tcp_;
    // Made when TLS starts: a plain session carries no SSL object (memory per idle session).
    std::unique_ptr<ssl::stream<beast::tcp_stream&>> ssl_;
    bool tls_on_ = false;
    util::LineBuffer lines_;
    std::string in_;
    std::size_t in_pos_ = 0;
    std::size_t read_size_ = 2048;   // grows to 64 KB while reads come back full
    std::string out_;
    std::chrono::steady_clock::duration timeout_ = std::chrono::minutes(5);
    std::chrono::steady_clock::time_point command_deadline_ = std::chrono::steady_clock::time_point::max();
    std::chrono::steady_clock::time_point session_deadline_ = std::chrono::steady_clock::time_point::max();
    void arm();   // expiry of the next operation: timeout_ from now, within the deadlines
    uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace xo::net
