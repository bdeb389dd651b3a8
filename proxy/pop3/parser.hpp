// POP3 parsing without I/O: client command lines (server side) and the
// server's status lines (client side). USER/PASS keep the rest of the line
// verbatim (a password may hold spaces); CAPA lists are parsed into a set.
#pragma once
#include <set>
#include <string>
#include <string_view>

namespace xo::pop3 {

struct Command {
    std::string verb;   // uppercased
    std::string arg;    // the rest of the line after one space, verbatim
};
Command parse_command(std::string_view line);

struct Status {
    enum class Kind { ok, err, continuation, invalid } kind = Kind::invalid;
    std::string code;   // "SYS/TEMP" from "-ERR [SYS/TEMP] ..." (RFC 3206)
    std::string text;
};
Status parse_status(std::string_view line);

// One CAPA line ("SASL XOAUTH2 PLAIN", "STLS") added to the set, uppercased:
// "SASL XOAUTH2 PLAIN" adds "SASL", "SASL:XOAUTH2", "SASL:PLAIN".
void add_capa_line(std::set<std::string>& caps, std::string_view line);

}  // namespace xo::pop3
