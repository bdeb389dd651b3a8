// SMTP replies as an upstream sends them, fed to ReplyParser in chunks whose
// sizes the input chooses (first byte), each reply through
// Capabilities::from_ehlo, enhanced(), wire() and text(). Checks: replies have a
// code 2xx to 5xx and at most 1000 lines; wire() parses back to the same reply.
#include "fuzz_util.hpp"
#include "smtp/parser.hpp"

using namespace xo::smtp;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    std::size_t chunk = input.byte() % 64 + 1;
    std::string_view stream = input.rest();
    ReplyParser p;
    while (!stream.empty()) {
        std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        while (true) {
            Reply r;
            auto st = p.feed(piece, r);
            if (st == ReplyParser::Status::error) return 0;   // sticky: the session drops the upstream
            if (st == ReplyParser::Status::need_more) {
                check(piece.empty(), "need_more with bytes left");
                break;
            }
            check(r.code >= 200 && r.code <= 599, "reply code is 2xx to 5xx (3 digits)");
            check(!r.lines.empty() && r.lines.size() <= kMaxReplyLines, "reply line count");
            (void)Capabilities::from_ehlo(r);
            (void)r.enhanced();
            (void)r.text();
            // What we relay to a client parses back to the same reply.
            std::string wire = r.wire();
            std::string_view w = wire;
            ReplyParser again;
            Reply r2;
            auto st2 = again.feed(w, r2);
            if (st2 == ReplyParser::Status::reply) {
                check(r2.code == r.code && r2.lines == r.lines, "wire() round trip");
                check(w.empty(), "wire() is one reply");
            }
        }
    }
    return 0;
}
