// The Graph / Gmail API path's pure part, on what a client and an API send:
//  - the message as the DataScanner passes it on, un-stuffed in input-chosen
//    pieces: the same as in one piece, and stuffing it again (a dot before each
//    line that starts with one, then ".\r\n") gives back the scanner's output;
//  - the Bcc header built from RCPT lines of the input and the message's To/Cc:
//    empty or one header field (folded; no header injection), naming only envelope
//    recipients that To/Cc do not name;
//  - base64 in pieces equals base64 in one go;
//  - any API answer (status, body, Retry-After) maps to a client reply whose
//    lines hold no CR/LF and fit 512 octets, with a 2xx-5xx code; never a throw.
#include <algorithm>
#include <cctype>

#include "fuzz_util.hpp"
#include "smtp/api.hpp"
#include "smtp/parser.hpp"
#include "util/base64.hpp"

using namespace xo::smtp;
using xo::fuzz::check;

namespace {

// RFC 5321 4.5.2, the receiver's rule, line by line: the first "." of every
// line goes, and the final ".\r\n" line ends the message (the reference).
std::string reference_unstuff(std::string_view stuffed) {
    std::string out;
    while (!stuffed.empty()) {
        auto end = stuffed.find("\r\n");
        std::string_view line = stuffed.substr(0, end == std::string_view::npos ? stuffed.size() : end + 2);
        stuffed.remove_prefix(line.size());
        if (line == ".\r\n" && stuffed.empty()) break;
        if (!line.empty() && line[0] == '.') line.remove_prefix(1);
        out += line;
    }
    return out;
}

// The sender's rule: a "." before every line that starts with one, then ".\r\n".
std::string stuff(std::string_view msg) {
    std::string out;
    bool line_start = true;
    for (char c : msg) {
        if (line_start && c == '.') out += '.';
        out += c;
        line_start = c == '\n';
    }
    return out + ".\r\n";
}

std::string unstuff(std::string_view in, std::size_t chunk) {
    api::Unstuffer u;
    std::string out;
    while (!in.empty()) {
        std::string_view piece = in.substr(0, chunk);
        u.feed(piece, out);
        in.remove_prefix(piece.size());
    }
    return out;
}

void check_reply(const Reply& r) {
    check(r.code >= 200 && r.code <= 599, "reply code outside 200..599");
    check(!r.lines.empty(), "reply without a line");
    for (const auto& l : r.lines) {
        check(l.find_first_of("\r\n") == std::string::npos, "CR or LF inside a reply line");
        check(l.size() + 6 <= 512, "reply line over 512 octets");
    }
    check(xo::fuzz::crlf_lines(r.wire()), "reply wire form is not CRLF lines");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input in(data, size);
    const std::size_t chunk = 1 + in.byte() % 64;
    const api::Kind kind = in.byte() % 2 ? api::Kind::gmail : api::Kind::graph;
    const unsigned status = 100 + (unsigned(in.byte()) << 8 | in.byte()) % 500;
    const bool refreshed = in.byte() % 2;
    std::string_view rest = in.rest();

    // The envelope: the first lines of the input, as the machine forwards them.
    api::Envelope env;
    std::string_view text = rest;
    for (int i = 0; i < 8 && !text.empty(); ++i) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        // Only what the command parser lets through reaches the API path.
        if (!xo::smtp::parse_command(line).error.empty()) continue;
        check_reply(api::local_reply(line, env, kind));
        if (line.size() >= 4 && (line.substr(0, 4) == "DATA" || line.substr(0, 4) == "data")) break;
    }
    for (const auto& r : env.rcpts) check(r.find_first_of("\r\n") == std::string::npos, "CR or LF in a recipient");

    // The message: the rest through the DataScanner, then un-stuffed.
    xo::smtp::DataScanner scanner;
    std::string stuffed;
    auto res = scanner.feed(text, stuffed);
    if (res.done) {
        std::string whole = unstuff(stuffed, stuffed.size());
        check(unstuff(stuffed, chunk) == whole, "un-stuffing depends on the pieces");
        check(whole == reference_unstuff(stuffed), "un-stuffing differs from RFC 5321's rule");
        check(unstuff(stuff(whole), chunk) == whole, "stuffing then un-stuffing changes the message");

        std::string bcc = api::bcc_header(env.rcpts, whole);
        if (!bcc.empty()) {
            // One header field: "Bcc: a" then ",\r\n b" per further address, CRLF at the end.
            check(bcc.rfind("Bcc: ", 0) == 0 && xo::fuzz::crlf_lines(bcc), "Bcc header is not CRLF lines");
            for (std::size_t at = bcc.find("\r\n"); at + 2 < bcc.size(); at = bcc.find("\r\n", at + 2))
                check(bcc[at + 2] == ' ', "a Bcc line that is not a continuation: header injection");
            auto named = api::header_addresses(whole, {"to", "cc"});
            std::string_view list(bcc);
            list.remove_prefix(5);
            list.remove_suffix(2);
            while (!list.empty()) {
                auto comma = list.find(",\r\n ");
                std::string a(list.substr(0, comma));
                list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 4);
                std::string lower = a;
                std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
                bool in_envelope = std::any_of(env.rcpts.begin(), env.rcpts.end(), [&](const std::string& r) {
                    std::string l = r;
                    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
                    return l == lower;
                });
                check(in_envelope, "Bcc names an address that is not an envelope recipient");
                check(std::find(named.begin(), named.end(), lower) == named.end(), "Bcc names a To/Cc address");
            }
        }
        (void)api::extra_header_recipients(env.rcpts, whole);

        std::string b64;
        api::Base64Stream b;
        for (std::string_view w = whole; !w.empty();) {
            std::string_view p = w.substr(0, chunk);
            b.feed(p, b64);
            w.remove_prefix(p.size());
        }
        b.finish(b64);
        check(b64 == xo::util::base64_encode(whole), "base64 in pieces differs from base64 in one go");
        check(api::body_size(kind, whole.size()) == (kind == api::Kind::graph ? b64.size() : whole.size()),
              "body_size is not the size of the body sent");
    }

    // An API answer: the input as its body and as its Retry-After.
    std::string_view retry_after = rest.substr(0, std::min<std::size_t>(rest.size(), 40));
    (void)api::parse_retry_after(retry_after);
    api::Outcome o = api::map_response(kind, status, rest, retry_after, refreshed);
    if (o.kind == api::Outcome::Kind::sent || o.kind == api::Outcome::Kind::final) check_reply(o.reply);
    check(o.wait.count() >= 0, "negative wait");
    check_reply(api::gave_up(kind, rest));
    check_reply(api::unknown_outcome(kind, "m@contoso.test", rest));
    check_reply(api::not_sent(kind, rest));
    check_reply(api::too_big(kind));
    return 0;
}
