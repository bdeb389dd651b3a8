// SMTP command lines, MAIL/RCPT paths and the line splitter. Replies and EHLO
// capabilities are in parser_reply.cpp, the DATA scanner in parser_data.cpp.
#include "smtp/parser.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace xo::smtp {
namespace {

std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = char(std::toupper((unsigned char)c));
    return o;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::toupper((unsigned char)a[i]) != std::toupper((unsigned char)b[i])) return false;
    return true;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Local part outside quotes: atext and dots (and UTF-8 bytes); lenient about
// dot placement, as MTAs are.
bool local_char(unsigned char c) {
    return c >= 0x80 || (!is_ctl(c) && c != ' ' && !std::strchr("()<>[]\\,;:\"@", c));
}

bool domain_ok(std::string_view d) {
    if (d.empty()) return false;
    if (d.front() == '[') {   // address literal [192.0.2.1] / [IPv6:...]
        if (d.size() < 3 || d.back() != ']') return false;
        for (unsigned char c : d.substr(1, d.size() - 2))
            if (is_ctl(c) || c == ' ' || c == '[' || c == ']' || c == '\\' || c >= 0x80) return false;
        return true;
    }
    if (d.front() == '.' || d.find("..") != std::string_view::npos) return false;
    for (unsigned char c : d)
        if (!(c >= 0x80 || std::isalnum(c) || c == '-' || c == '.' || c == '_')) return false;
    return true;
}

bool address_ok(std::string_view a) {
    std::size_t at;
    if (a.front() == '"') {
        std::size_t i = 1;
        for (; i < a.size() && a[i] != '"'; ++i) {
            unsigned char c = a[i];
            if (c == '\\') {
                if (++i >= a.size() || is_ctl((unsigned char)a[i])) return false;
            } else if (is_ctl(c)) {
                return false;
            }
        }
        if (i >= a.size()) return false;
        at = i + 1;
        if (at >= a.size() || a[at] != '@') return false;
    } else {
        at = a.find('@');
        if (at == 0 || at == std::string_view::npos) return false;
        for (unsigned char c : a.substr(0, at))
            if (!local_char(c)) return false;
    }
    return domain_ok(a.substr(at + 1));
}

std::string check_param(std::string_view key, std::string_view value, bool has_value) {
    if (key == "SIZE") {
        if (value.empty() || value.size() > 20 ||
            !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
            return "501 5.5.4 Syntax: SIZE=<number of octets>";
    } else if (key == "BODY") {
        if (!iequals(value, "7BIT") && !iequals(value, "8BITMIME") && !iequals(value, "BINARYMIME"))
            return "501 5.5.4 Unsupported BODY type (7BIT, 8BITMIME, BINARYMIME)";
    } else if (key == "SMTPUTF8") {
        if (has_value) return "501 5.5.4 SMTPUTF8 takes no value";
    }
    return "";
}

// "<addr> params" after the keyword and colon; lenient about spaces before '<'.
PathResult parse_path(std::string_view arg, std::string_view keyword, bool mail) {
    PathResult r;
    const std::string syntax = mail ? "501 5.5.4 Syntax: MAIL FROM:<address>" : "501 5.5.4 Syntax: RCPT TO:<address>";
    const char* bad_address = mail ? "501 5.1.7 Bad sender address syntax" : "501 5.1.3 Bad recipient address syntax";
    if (!iequals_prefix(arg, keyword)) {
        r.error = syntax;
        return r;
    }
    arg.remove_prefix(keyword.size());
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    if (arg.empty() || arg.front() != '<') {
        r.error = syntax;
        return r;
    }
    // The closing '>' outside a quoted local part.
    bool quoted = false;
    std::size_t close = std::string_view::npos;
    for (std::size_t i = 1; i < arg.size(); ++i) {
        char c = arg[i];
        if (c == '\\' && quoted) ++i;
        else if (c == '"') quoted = !quoted;
        else if (c == '>' && !quoted) {
            close = i;
            break;
        }
    }
    if (close == std::string_view::npos) {
        r.error = syntax;
        return r;
    }
    std::string_view addr = arg.substr(1, close - 1);
    std::string_view rest = arg.substr(close + 1);
    if (!rest.empty() && rest.front() != ' ') {
        r.error = syntax;
        return r;
    }
    if (!addr.empty() && addr.front() == '@') {   // obsolete source route "@a,@b:" is dropped
        auto colon = addr.find(':');
        if (colon == std::string_view::npos) {
            r.error = bad_address;
            return r;
        }
        addr.remove_prefix(colon + 1);
        if (addr.empty()) {
            r.error = bad_address;
            return r;
        }
    }
    if (addr.empty()) {
        if (!mail) r.error = bad_address;   // RCPT TO:<> is never valid
    } else if (addr.size() > kMaxAddress) {
        r.error = mail ? "501 5.1.7 Sender address too long" : "501 5.1.3 Recipient address too long";
    } else if (!address_ok(addr) && !(!mail && iequals(addr, "postmaster"))) {
        r.error = bad_address;
    }
    if (!r.ok()) return r;
    r.path.address = std::string(addr);
    while (!rest.empty()) {
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        if (rest.empty()) break;
        auto sp = rest.find(' ');
        std::string_view p = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp);
        auto eq = p.find('=');
        std::string key = upper(p.substr(0, eq));
        std::string_view value = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
        bool key_ok = !key.empty() && std::isalnum((unsigned char)key[0]) &&
                      std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum((unsigned char)c) || c == '-'; });
        bool value_ok = eq == std::string_view::npos ||
                        (!value.empty() && std::none_of(value.begin(), value.end(), [](char c) { return is_ctl((unsigned char)c); }));
        if (!key_ok || !value_ok) {
            r.error = "501 5.5.4 Bad parameter syntax";
            return r;
        }
        if (r.path.param(key)) {
            r.error = "501 5.5.4 Duplicate parameter " + key;
            return r;
        }
        if (auto e = check_param(key, value, eq != std::string_view::npos); !e.empty()) {
            r.error = std::move(e);
            return r;
        }
        r.path.params.emplace_back(std::move(key), std::string(value));
    }
    return r;
}

}  // namespace

ParsedCommand parse_command(std::string_view line) {
    ParsedCommand c;
    auto sp = line.find(' ');
    c.verb_text = std::string(line.substr(0, sp));
    if (sp != std::string_view::npos) {
        std::string_view a = line.substr(sp + 1);
        while (!a.empty() && (a.back() == ' ' || a.back() == '\t')) a.remove_suffix(1);
        c.arg = std::string(a);
    }
    if (line.find('\0') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
        c.error = "500 5.5.2 Invalid character (NUL or bare CR) in command";
        return c;
    }
    static const std::pair<const char*, Verb> verbs[] = {
        {"EHLO", Verb::Ehlo}, {"HELO", Verb::Helo}, {"MAIL", Verb::Mail}, {"RCPT", Verb::Rcpt},
        {"DATA", Verb::Data}, {"RSET", Verb::Rset}, {"NOOP", Verb::Noop}, {"QUIT", Verb::Quit},
        {"VRFY", Verb::Vrfy}, {"HELP", Verb::Help}, {"AUTH", Verb::Auth}, {"STARTTLS", Verb::Starttls},
        {"BDAT", Verb::Bdat}};
    for (const auto& [name, verb] : verbs)
        if (iequals(c.verb_text, name)) c.verb = verb;
    return c;
}

const std::string* Path::param(std::string_view keyword) const {
    for (const auto& [k, v] : params)
        if (iequals(k, keyword)) return &v;
    return nullptr;
}

PathResult parse_mail_from(std::string_view arg) { return parse_path(arg, "FROM:", true); }
PathResult parse_rcpt_to(std::string_view arg) { return parse_path(arg, "TO:", false); }

}  // namespace xo::smtp
