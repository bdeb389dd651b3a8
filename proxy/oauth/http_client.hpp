// A minimal HTTPS client for token endpoints: one POST (form or JSON) or GET
// per call over Beast, TLS verified against the caller's context (system CAs
// plus the connection's ca_file) and the URL's host name. Never throws for
// network trouble: the result carries the error text instead ("connect
// localhost:443: Connection refused", "TLS handshake: certificate verify failed").
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "asio.hpp"

namespace xo::oauth {

struct Url {
    std::string scheme, host, port, target;
    std::string text() const;
};
std::optional<Url> parse_url(std::string_view url);

using Form = std::vector<std::pair<std::string, std::string>>;
std::string encode_form(const Form& form);
// Parses "a=1&b=x%20y" (also a URL's query part); keys and values decoded.
Form decode_form(std::string_view s);

struct HttpResult {
    bool ok = false;           // a response arrived (any status)
    std::string error;         // what went wrong when !ok
    unsigned status = 0;
    std::string body;
    std::string content_type;
    std::string retry_after;   // the Retry-After header, when given
    bool sent = false;         // the whole request (body included) was written
};

// A request body produced piece by piece (a spooled message, base64 on the
// fly), so that memory stays flat in its size. next() appends the next piece
// to `out` (empty at the end) and returns false on a read error; the pieces
// must add up to `size` bytes exactly.
struct BodySource {
    std::uint64_t size = 0;
    std::function<bool(std::string& out)> next;
};

struct HttpRequest {
    std::string method = "POST";
    std::string url;
    std::string body;
    std::string content_type = "application/x-www-form-urlencoded";
    std::shared_ptr<BodySource> source;   // instead of body, when set
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::seconds timeout{30};
};

awaitable<HttpResult> http_request(HttpRequest req, std::shared_ptr<ssl::context> tls);

}  // namespace xo::oauth
