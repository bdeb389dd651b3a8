#include "oauth/http_client.hpp"

#include "net/tls.hpp"
#include "util/text.hpp"

namespace xo::oauth {

namespace http = beast::http;

std::string Url::text() const { return scheme + "://" + host + ":" + port + target; }

std::optional<Url> parse_url(std::string_view url) {
    Url u;
    auto p = url.find("://");
    if (p == std::string_view::npos) return std::nullopt;
    u.scheme = std::string(url.substr(0, p));
    if (u.scheme != "https" && u.scheme != "http") return std::nullopt;
    std::string_view rest = url.substr(p + 3);
    auto slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (hostport.empty()) return std::nullopt;
    if (hostport.front() == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        u.host = std::string(hostport.substr(1, close - 1));
        hostport.remove_prefix(close + 1);
        if (!hostport.empty() && hostport.front() == ':') u.port = std::string(hostport.substr(1));
    } else {
        auto colon = hostport.rfind(':');
        u.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) u.port = std::string(hostport.substr(colon + 1));
    }
    if (u.port.empty()) u.port = u.scheme == "https" ? "443" : "80";
    if (u.host.empty() || u.port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return u;
}

std::string encode_form(const Form& form) {
    std::string out;
    for (const auto& [k, v] : form) {
        if (!out.empty()) out += '&';
        out += util::url_encode(k);
        out += '=';
        out += util::url_encode(v);
    }
    return out;
}

namespace {
std::string url_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit((unsigned char)s[i + 1]) &&
                   std::isxdigit((unsigned char)s[i + 2])) {
            out += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}
}  // namespace

Form decode_form(std::string_view s) {
    Form out;
    while (!s.empty()) {
        auto amp = s.find('&');
        std::string_view part = s.substr(0, amp);
        auto eq = part.find('=');
        if (!part.empty())
            out.emplace_back(url_decode(part.substr(0, eq)),
                             eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1)));
        if (amp == std::string_view::npos) break;
        s.remove_prefix(amp + 1);
    }
    return out;
}

namespace {

template <typename Stream>
awaitable<HttpResult> exchange(Stream& stream, const HttpRequest& req, const Url& url) {
    HttpResult result;
    error_code ec;
    http::request<http::string_body> msg{req.method == "GET" ? http::verb::get : http::verb::post,
                                         url.target, 11};
    msg.set(http::field::host, url.host);
    msg.set(http::field::user_agent, "xoauth2-proxy/" XO_VERSION);
    msg.set(http::field::accept, "application/json");
    for (const auto& [k, v] : req.headers) msg.set(k, v);
    if (req.method != "GET") msg.set(http::field::content_type, req.content_type);
    if (req.source) {
        // The header, then the body as it is produced (Content-Length known up front).
        msg.content_length(req.source->size);
        http::request_serializer<http::string_body> sr{msg};
        co_await http::async_write_header(stream, sr, asio::redirect_error(use_awaitable, ec));
        std::string piece;
        std::uint64_t written = 0;
        while (!ec) {
            piece.clear();
            if (!req.source->next(piece)) {
                result.error = "reading the request body failed";
                co_return result;
            }
            if (piece.empty()) break;
            written += piece.size();
            co_await asio::async_write(stream, asio::buffer(piece), asio::redirect_error(use_awaitable, ec));
        }
        if (!ec && written != req.source->size) {
            result.error = "request body size mismatch";
            co_return result;
        }
    } else {
        if (req.method != "GET") {
            msg.body() = req.body;
            msg.prepare_payload();
        }
        co_await http::async_write(stream, msg, asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
        result.error = "send request: " + ec.message();
        co_return result;
    }
    result.sent = true;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) {
        result.error = "read response: " + ec.message();
        co_return result;
    }
    auto& res = parser.get();
    result.ok = true;
    result.status = res.result_int();
    result.body = std::move(res.body());
    result.content_type = std::string(res[http::field::content_type]);
    result.retry_after = std::string(res[http::field::retry_after]);
    co_return result;
}

}  // namespace

awaitable<HttpResult> http_request(HttpRequest req, std::shared_ptr<ssl::context> tls) {
    HttpResult result;
    auto url = parse_url(req.url);
    if (!url) {
        result.error = "invalid URL " + req.url;
        co_return result;
    }
    auto ex = co_await asio::this_coro::executor;
    error_code ec;
    tcp::resolver resolver(ex);
    auto endpoints = co_await resolver.async_resolve(url->host, url->port,
                                                     asio::redirect_error(use_awaitable, ec));
    std::string where = url->host + ":" + url->port;
    if (ec) {
        result.error = "resolve " + where + ": " + ec.message();
        co_return result;
    }
    if (url->scheme == "http") {
        beast::tcp_stream stream(ex);
        stream.expires_after(req.timeout);
        co_await stream.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
        if (ec) {
            result.error = "connect " + where + ": " + ec.message();
            co_return result;
        }
        result = co_await exchange(stream, req, *url);
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        co_return result;
    }
    beast::ssl_stream<beast::tcp_stream> stream(ex, *tls);
    beast::get_lowest_layer(stream).expires_after(req.timeout);
    co_await beast::get_lowest_layer(stream).async_connect(endpoints,
                                                           asio::redirect_error(use_awaitable, ec));
    if (ec) {
        result.error = "connect " + where + ": " + ec.message();
        co_return result;
    }
    if (!net::verify_peer(stream.native_handle(), url->host)) {
        result.error = "TLS setup for " + url->host + " failed";
        co_return result;
    }
    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
    if (ec) {
        std::string why = net::verify_error(stream.native_handle());
        result.error = "TLS handshake with " + where + ": " + (why.empty() ? ec.message() : why);
        co_return result;
    }
    result = co_await exchange(stream, req, *url);
    // The response is complete (Content-Length or chunked): no need to wait for
    // the server's close_notify, which some endpoints never send.
    beast::get_lowest_layer(stream).socket().close(ec);
    co_return result;
}

}  // namespace xo::oauth
