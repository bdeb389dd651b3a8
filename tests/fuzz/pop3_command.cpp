// POP3 command lines (split on LF) through parse_command with the normal and
// the AUTH limit, and through parse_status and add_capa_line as if an upstream
// had sent them. Checks: a refused line has no verb and a "-ERR" text.
#include "fuzz_util.hpp"
#include "pop3/parser.hpp"

using namespace xo::pop3;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::set<std::string> caps;
    while (true) {
        auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        for (std::size_t max : {kMaxCommandLine, kMaxAuthLine}) {
            Command c = parse_command(line, max);
            if (!c.error.empty()) {
                check(c.verb.empty(), "refused line has a verb");
                check(c.error.rfind("-ERR", 0) == 0, "refusal is -ERR");
            }
        }
        (void)parse_status(line);
        add_capa_line(caps, line);
        if (nl == std::string_view::npos) break;
        in.remove_prefix(nl + 1);
    }
    return 0;
}
