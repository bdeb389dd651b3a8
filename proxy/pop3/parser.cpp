#include "pop3/parser.hpp"

#include <cctype>

namespace xo::pop3 {
namespace {
std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = char(std::toupper((unsigned char)c));
    return o;
}
}  // namespace

Command parse_command(std::string_view line) {
    Command c;
    auto sp = line.find(' ');
    c.verb = upper(line.substr(0, sp));
    if (sp != std::string_view::npos) c.arg = std::string(line.substr(sp + 1));
    return c;
}

Status parse_status(std::string_view line) {
    Status s;
    std::string_view rest;
    if (line.rfind("+OK", 0) == 0) s.kind = Status::Kind::ok, rest = line.substr(3);
    else if (line.rfind("-ERR", 0) == 0) s.kind = Status::Kind::err, rest = line.substr(4);
    else if (line.rfind("+", 0) == 0) s.kind = Status::Kind::continuation, rest = line.substr(1);
    else return s;
    if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    if (s.kind == Status::Kind::err && !rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close != std::string_view::npos) {
            s.code = std::string(rest.substr(1, close - 1));
            rest = rest.substr(close + 1);
            if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
        }
    }
    s.text = std::string(rest);
    return s;
}

void add_capa_line(std::set<std::string>& caps, std::string_view line) {
    std::string u = upper(line);
    auto sp = u.find(' ');
    std::string kw = u.substr(0, sp);
    caps.insert(kw);
    if (kw == "SASL" && sp != std::string::npos) {
        std::size_t p = sp + 1;
        while (p < u.size()) {
            auto q = u.find(' ', p);
            std::string m = u.substr(p, q - p);
            if (!m.empty()) caps.insert("SASL:" + m);
            if (q == std::string::npos) break;
            p = q + 1;
        }
    }
}

}  // namespace xo::pop3
