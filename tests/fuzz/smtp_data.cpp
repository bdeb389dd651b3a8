// The DATA scanner, differentially: the message fed in one piece and in
// input-chosen chunks must give the same output, consumed count, size and
// bare-newline count. Checks: output has no bare CR or LF and ends in
// CRLF.CRLF when done; nothing after the terminator is consumed.
#include "fuzz_util.hpp"
#include "smtp/parser.hpp"

using namespace xo::smtp;
using xo::fuzz::check;

namespace {
struct Run {
    std::string out;
    std::size_t consumed = 0;
    bool done = false;
    std::size_t bytes = 0, bare = 0;
};

Run scan(std::string_view in, std::size_t chunk) {
    Run r;
    DataScanner s;
    while (!in.empty() && !r.done) {
        std::string_view piece = in.substr(0, chunk);
        auto res = s.feed(piece, r.out);
        check(res.consumed <= piece.size(), "consumed more than fed");
        check(res.done || res.consumed == piece.size(), "stopped early without the end");
        r.consumed += res.consumed;
        r.done = res.done;
        in.remove_prefix(res.consumed);
        if (!res.done && res.consumed == 0) break;
    }
    r.bytes = s.message_bytes();
    r.bare = s.bare_newlines();
    check(r.done == s.done(), "done() agrees");
    return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    std::size_t chunk = input.byte() % 16 + 1;
    std::string_view msg = input.rest();
    Run whole = scan(msg, msg.size() + 1);
    Run parts = scan(msg, chunk);
    check(whole.out == parts.out, "chunked output differs");
    check(whole.consumed == parts.consumed && whole.done == parts.done, "chunked end differs");
    check(whole.bytes == parts.bytes && whole.bare == parts.bare, "chunked counts differ");
    if (whole.done) {
        check(whole.out.size() >= 3 && whole.out.substr(whole.out.size() - 3) == ".\r\n", "ends in .CRLF");
        check(whole.out.size() == 3 || (whole.out.size() >= 5 && whole.out.substr(whole.out.size() - 5) == "\r\n.\r\n"), "ends in CRLF.CRLF");
        check(xo::fuzz::crlf_lines(whole.out), "bare CR or LF in the output");
        // The end seen is the first CRLF.CRLF of the input (or "." on the first line).
        std::string_view head = msg.substr(0, whole.consumed);
        check(head == ".\r\n" || (head.size() >= 5 && head.substr(head.size() - 5) == "\r\n.\r\n"), "ends at CRLF.CRLF");
    } else {
        check(whole.consumed == msg.size(), "all consumed when not done");
    }
    return 0;
}
