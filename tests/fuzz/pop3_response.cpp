// A POP3 upstream's bytes through ResponseParser in input-chosen chunks, the
// multi-line mode switched on before responses as the input says (as before
// CAPA); multi-line bodies through Capabilities::from_lines.
#include "fuzz_util.hpp"
#include "pop3/parser.hpp"

using namespace xo::pop3;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    std::size_t chunk = input.byte() % 64 + 1;
    xo::fuzz::Choices choose(input.byte());
    std::string_view stream = input.rest();
    ResponseParser p(2048, 100);
    p.expect_multiline(choose.one_in(2));
    while (!stream.empty()) {
        std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        while (true) {
            Response r;
            auto st = p.feed(piece, r);
            if (st == ResponseParser::Result::error) return 0;
            if (st == ResponseParser::Result::need_more) {
                check(piece.empty(), "need_more with bytes left");
                break;
            }
            check(r.status.kind != Status::Kind::invalid, "invalid status returned as a response");
            check(r.lines.size() <= 100, "more lines than max_lines");
            if (!r.lines.empty()) (void)Capabilities::from_lines(r.lines);
            p.expect_multiline(choose.one_in(2));
        }
    }
    return 0;
}
