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

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::toupper((unsigned char)s[i]) != prefix[i]) return false;
    return true;
}

// "<addr> params" after the keyword and colon; lenient about one space before '<'.
PathResult parse_path(std::string_view arg, std::string_view keyword, bool allow_null, const char* syntax) {
    PathResult r;
    if (!iequals_prefix(arg, keyword)) {
        r.error = std::string("501 5.5.4 Syntax: ") + syntax;
        return r;
    }
    arg.remove_prefix(keyword.size());
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    if (arg.empty() || arg.front() != '<') {
        r.error = std::string("501 5.5.4 Syntax: ") + syntax;
        return r;
    }
    // Find the closing '>' outside a quoted local part.
    bool quoted = false;
    std::size_t close = std::string_view::npos;
    for (std::size_t i = 1; i < arg.size(); ++i) {
        char c = arg[i];
        if (c == '\\' && quoted) { ++i; continue; }
        if (c == '"') quoted = !quoted;
        else if (c == '>' && !quoted) { close = i; break; }
    }
    if (close == std::string_view::npos) {
        r.error = std::string("501 5.5.4 Syntax: ") + syntax;
        return r;
    }
    std::string_view addr = arg.substr(1, close - 1);
    // Strip an obsolete source route "@a,@b:".
    if (!addr.empty() && addr.front() == '@') {
        auto colon = addr.find(':');
        if (colon == std::string_view::npos) {
            r.error = "501 5.1.7 Bad address syntax";
            return r;
        }
        addr.remove_prefix(colon + 1);
    }
    if (addr.empty() && !allow_null) {
        r.error = "501 5.1.3 Bad recipient address syntax";
        return r;
    }
    // Spaces are allowed only inside a quoted local part.
    std::string_view unquoted = addr.substr(addr.rfind('"') == std::string_view::npos ? 0 : addr.rfind('"') + 1);
    if (addr.size() > 254 || unquoted.find_first_of(" \t<>") != std::string_view::npos ||
        (!addr.empty() && (addr.find('@') == std::string_view::npos || addr.back() == '@' || addr.front() == '@'))) {
        r.error = allow_null ? "501 5.1.7 Bad sender address syntax" : "501 5.1.3 Bad recipient address syntax";
        return r;
    }
    r.path.address = std::string(addr);
    std::string_view rest = arg.substr(close + 1);
    while (!rest.empty()) {
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        if (rest.empty()) break;
        auto sp = rest.find(' ');
        std::string_view p = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp);
        auto eq = p.find('=');
        std::string key = upper(p.substr(0, eq));
        if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum((unsigned char)c) || c == '-'; })) {
            r.error = "501 5.5.4 Bad parameter syntax";
            return r;
        }
        r.path.params.emplace_back(key, eq == std::string_view::npos ? "" : std::string(p.substr(eq + 1)));
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
    if (line.find('\0') != std::string_view::npos || line.find('\r') != std::string_view::npos) return c;
    static const std::pair<const char*, Verb> verbs[] = {
        {"EHLO", Verb::Ehlo}, {"HELO", Verb::Helo}, {"MAIL", Verb::Mail}, {"RCPT", Verb::Rcpt},
        {"DATA", Verb::Data}, {"RSET", Verb::Rset}, {"NOOP", Verb::Noop}, {"QUIT", Verb::Quit},
        {"VRFY", Verb::Vrfy}, {"HELP", Verb::Help}, {"AUTH", Verb::Auth}, {"STARTTLS", Verb::Starttls},
        {"BDAT", Verb::Bdat}};
    std::string v = upper(c.verb_text);
    for (const auto& [name, verb] : verbs)
        if (v == name) c.verb = verb;
    return c;
}

PathResult parse_mail_from(std::string_view arg) { return parse_path(arg, "FROM:", true, "MAIL FROM:<address>"); }
PathResult parse_rcpt_to(std::string_view arg) { return parse_path(arg, "TO:", false, "RCPT TO:<address>"); }

std::string Reply::enhanced() const {
    if (lines.empty()) return "";
    const std::string& l = lines.front();
    std::size_t i = 0, dots = 0;
    while (i < l.size() && (std::isdigit((unsigned char)l[i]) || l[i] == '.')) dots += l[i++] == '.';
    if (dots == 2 && i >= 5 && (i == l.size() || l[i] == ' ')) return l.substr(0, i);
    return "";
}

std::string Reply::wire() const {
    std::string out;
    std::string code_s = std::to_string(code);
    if (lines.empty()) return code_s + "\r\n";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += code_s;
        out += i + 1 == lines.size() ? ' ' : '-';
        out += lines[i];
        out += "\r\n";
    }
    return out;
}

std::string Reply::text() const {
    std::string out;
    for (const auto& l : lines) {
        if (!out.empty()) out += ' ';
        out += l;
    }
    return out;
}

ReplyParser::Status ReplyParser::feed(std::string_view& in, Reply& out) {
    if (!error_.empty()) return Status::error;
    while (!in.empty()) {
        auto nl = in.find('\n');
        std::string_view part = in.substr(0, nl);
        if (line_.size() + part.size() > 8192) {
            error_ = "reply line longer than 8192 octets";
            return Status::error;
        }
        line_.append(part);
        if (nl == std::string_view::npos) {
            in = {};
            return Status::need_more;
        }
        in.remove_prefix(nl + 1);
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (line_.size() < 3 || !std::isdigit((unsigned char)line_[0]) || !std::isdigit((unsigned char)line_[1]) ||
            !std::isdigit((unsigned char)line_[2]) || (line_.size() > 3 && line_[3] != ' ' && line_[3] != '-')) {
            error_ = "malformed reply line";
            return Status::error;
        }
        int code = std::stoi(line_.substr(0, 3));
        if (!current_.lines.empty() && code != current_.code) {
            error_ = "reply codes differ within a multiline reply";
            return Status::error;
        }
        if (current_.lines.size() >= 1000) {
            error_ = "reply has more than 1000 lines";
            return Status::error;
        }
        current_.code = code;
        current_.lines.push_back(line_.size() > 4 ? line_.substr(4) : "");
        bool last = line_.size() == 3 || line_[3] == ' ';
        line_.clear();
        if (last) {
            out = std::move(current_);
            current_ = Reply{};
            return Status::reply;
        }
    }
    return Status::need_more;
}

Capabilities Capabilities::from_ehlo(const Reply& r) {
    Capabilities c;
    for (std::size_t i = 1; i < r.lines.size(); ++i) {
        std::string line = upper(r.lines[i]);
        std::string kw = line.substr(0, line.find_first_of(" ="));
        std::string args = kw.size() < line.size() ? line.substr(kw.size() + 1) : "";
        if (kw == "STARTTLS") c.starttls = true;
        else if (kw == "PIPELINING") c.pipelining = true;
        else if (kw == "8BITMIME") c.eightbitmime = true;
        else if (kw == "SMTPUTF8") c.smtputf8 = true;
        else if (kw == "ENHANCEDSTATUSCODES") c.enhancedstatuscodes = true;
        else if (kw == "CHUNKING") c.chunking = true;
        else if (kw == "SIZE") c.size = args.empty() ? 0 : std::strtoull(args.c_str(), nullptr, 10);
        else if (kw == "AUTH") {
            std::size_t p = 0;
            while (p < args.size()) {
                auto sp = args.find(' ', p);
                std::string m = args.substr(p, sp - p);
                if (!m.empty()) c.auth.insert(m);
                if (sp == std::string::npos) break;
                p = sp + 1;
            }
        }
    }
    return c;
}

bool Capabilities::has_auth(std::string_view mech) const { return auth.count(upper(mech)) > 0; }

DataScanner::Result DataScanner::feed(std::string_view in, std::string& out) {
    Result r;
    std::size_t i = 0;
    const std::size_t n = in.size();
    while (i < n && state_ != State::done) {
        char c = in[i];
        switch (state_) {
            case State::line_start:
                last_cr_ = false;
                if (c == '.') {
                    state_ = State::dot;
                    ++i;
                    continue;
                }
                state_ = State::in_line;
                continue;
            case State::in_line: {
                // Bulk copy up to the next LF (memchr is vectorised); a lone CR
                // passes as it is, a bare LF becomes CRLF.
                const void* lf = std::memchr(in.data() + i, '\n', n - i);
                std::size_t j = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : n;
                if (j > i) {
                    out.append(in.data() + i, j - i);
                    bytes_ += j - i;
                    last_cr_ = in[j - 1] == '\r';
                }
                i = j;
                if (i == n) break;
                if (last_cr_) {
                    out += '\n';
                    ++bytes_;
                } else {
                    out.append("\r\n");
                    bytes_ += 2;
                }
                last_cr_ = false;
                ++i;
                state_ = State::line_start;
                continue;
            }
            case State::dot:
                if (c == '\r') {
                    state_ = State::dot_cr;
                    ++i;
                } else if (c == '\n') {   // ".\n" from a legacy client ends the message too
                    out.append(".\r\n");
                    ++i;
                    state_ = State::done;
                } else {   // a stuffed or leading dot: pass it on, stuffing intact
                    out += '.';
                    if (c != '.') ++bytes_;
                    state_ = State::in_line;
                }
                continue;
            case State::dot_cr:
                if (c == '\n') {
                    out.append(".\r\n");
                    ++i;
                    state_ = State::done;
                } else {
                    out.append(".\r");
                    bytes_ += 2;
                    last_cr_ = true;
                    state_ = State::in_line;
                }
                continue;
            case State::done: break;
        }
    }
    r.consumed = i;
    r.done = state_ == State::done;
    return r;
}

}  // namespace xo::smtp
