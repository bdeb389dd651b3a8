// SMTP command lines and MAIL/RCPT paths: every line of the input (split on
// LF) through parse_command, and its argument through parse_mail_from and
// parse_rcpt_to. Checks: a refused line has verb Unknown; an accepted path is
// at most 254 octets and holds no CR, LF or NUL.
#include "fuzz_util.hpp"
#include "smtp/parser.hpp"

using namespace xo::smtp;
using xo::fuzz::check;

static void path_ok(const PathResult& p) {
    if (!p.ok()) {
        check(p.error.size() >= 3 && (p.error[0] == '4' || p.error[0] == '5'), "path error is a reply");
        return;
    }
    check(p.path.address.size() <= kMaxAddress, "address over 254 octets accepted");
    check(p.path.address.find_first_of(std::string("\r\n\0", 3)) == std::string::npos, "CR/LF/NUL in an address");
    for (const auto& [k, v] : p.path.params) check(p.path.param(k) != nullptr, "param() finds every keyword");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    while (true) {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        ParsedCommand c = parse_command(line);
        if (!c.error.empty()) check(c.verb == Verb::Unknown, "refused line has a verb");
        path_ok(parse_mail_from(c.arg));
        path_ok(parse_rcpt_to(c.arg));
        path_ok(parse_mail_from(line));
        if (nl == std::string_view::npos) break;
        in.remove_prefix(nl + 1);
    }
    return 0;
}
