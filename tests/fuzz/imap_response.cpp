// An IMAP upstream's bytes through ResponseParser (untagged literals skipped),
// in input-chosen chunks; each response through Capabilities::from_response,
// code_name(), and parse_response_line again on its text.
#include "fuzz_util.hpp"
#include "imap/parser.hpp"

using namespace xo::imap;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    std::size_t chunk = input.byte() % 64 + 1;
    std::string_view stream = input.rest();
    ResponseParser p(4096);
    (void)trailing_literal(stream.substr(0, 64));
    (void)parse_capabilities(stream.substr(0, 256));
    while (!stream.empty()) {
        std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        while (true) {
            ResponseLine r;
            auto st = p.feed(piece, r);
            if (st == ResponseParser::Status::error) return 0;
            if (st == ResponseParser::Status::need_more) {
                check(piece.empty(), "need_more with bytes left");
                break;
            }
            check(r.kind != ResponseLine::Kind::invalid, "invalid line returned as a response");
            (void)r.code_name();
            if (auto caps = Capabilities::from_response(r)) {
                (void)caps->auth_mechanisms();
                (void)caps->has_auth("XOAUTH2");
            }
        }
    }
    return 0;
}
