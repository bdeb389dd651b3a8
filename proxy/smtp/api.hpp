// Delivery through Microsoft Graph sendMail and the Gmail API, the pure part:
// the envelope collected locally (synthetic replies to MAIL/RCPT/DATA/RSET),
// the message un-stuffed as it streams, the Bcc rule (envelope recipients not
// named in To/Cc go in a Bcc: header added only for the request), the request
// (URL, content type, body size, base64 on the fly) and what each API answer
// means for the client. No I/O here; api_send.hpp does the requests.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/parser.hpp"

namespace xo::smtp::api {

enum class Kind { graph, gmail };
const char* to_string(Kind k);   // "Microsoft Graph sendMail", "the Gmail API"

// Graph takes at most 4 MB of base64 (3 MiB of MIME message, Bcc header
// included); the Gmail API's media upload 35 MB.
constexpr std::uint64_t kGraphMaxMessage = 3u << 20;
constexpr std::uint64_t kGmailMaxMessage = 35u << 20;
constexpr std::size_t kGraphMaxConcurrent = 4;   // Graph's concurrent requests per mailbox
std::uint64_t max_message(Kind k);

struct Envelope {
    std::string from;
    std::vector<std::string> rcpts;
    void clear() {
        from.clear();
        rcpts.clear();
    }
};

// The reply the API path gives at once to a line the machine forwards
// ("MAIL FROM:<a> SIZE=1", "RCPT TO:<b>", "DATA", "RSET"); records the envelope.
Reply local_reply(std::string_view line, Envelope& env, Kind kind);

// Removes the dot-stuffing and the final ".\r\n" from DataScanner's output,
// fed in pieces: what comes out is the message itself.
class Unstuffer {
public:
    void feed(std::string_view in, std::string& out);

private:
    bool line_start_ = true;
    std::string held_;   // the last two bytes: the terminator's CRLF, once the dot is gone
};

// Addresses (lower case) of the header fields named in `fields` ("to", "cc")
// in a header block (ends at the first empty line or the end of `head`).
std::vector<std::string> header_addresses(std::string_view head, const std::vector<std::string>& fields);
// "Bcc: x@y, z@w\r\n" with the envelope recipients that To and Cc do not name; "" when none.
std::string bcc_header(const std::vector<std::string>& rcpts, std::string_view head);
// Header recipients (To/Cc) that the envelope does not name: the API sends to them anyway.
std::vector<std::string> extra_header_recipients(const std::vector<std::string>& rcpts, std::string_view head);

// POST {graph_url}/v1.0/users/{mailbox}/sendMail, or
// POST {gmail_api_url}/upload/gmail/v1/users/{mailbox}/messages/send?uploadType=media
std::string request_url(Kind k, std::string_view base, std::string_view mailbox);
std::string content_type(Kind k);   // text/plain (base64 MIME), message/rfc822
// The request body's size for a raw message of `raw` bytes (Graph: its base64).
std::uint64_t body_size(Kind k, std::uint64_t raw);

// Base64 in pieces: feed() encodes whole groups of 3 and keeps the rest.
class Base64Stream {
public:
    void feed(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    std::string carry_;
};

// "120" (seconds) or an HTTP date; nullopt when absent or unreadable.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view v);

// What an API answer means. `refreshed`: this request already carried a fresh token.
struct Outcome {
    enum class Kind { sent, retry, refresh, final } kind = Kind::final;
    Reply reply;                       // sent / final: the client's reply
    std::chrono::seconds wait{0};      // retry: how long to wait first
    std::string log;                   // for the log line: status, API error code, message
};
Outcome map_response(Kind k, unsigned status, std::string_view body, std::string_view retry_after, bool refreshed);
// After the retries ran out (still throttled or unavailable).
Reply gave_up(Kind k, std::string_view last);
// The request was written but no answer came: the API may have sent it.
Reply unknown_outcome(Kind k, std::string_view mailbox, std::string_view why);
// The request never got through (connect, TLS, write): nothing was sent.
Reply not_sent(Kind k, std::string_view why);
// The message is over the API's limit.
Reply too_big(Kind k);

}  // namespace xo::smtp::api
