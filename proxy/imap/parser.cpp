#include "imap/parser.hpp"

#include <cctype>
#include <charconv>

namespace xo::imap {
namespace {

std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = char(std::toupper((unsigned char)c));
    return o;
}

bool atom_char(char c) {
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"' && c != '\\' && c != ' ';
}

// "{n}" or "{n+}" at the end of s: size, sync flag and where it starts.
bool literal_marker(std::string_view s, std::size_t& size, bool& sync, std::size_t& start) {
    if (s.empty() || s.back() != '}') return false;
    auto open = s.rfind('{');
    if (open == std::string_view::npos) return false;
    std::string_view inner = s.substr(open + 1, s.size() - open - 2);
    sync = true;
    if (!inner.empty() && inner.back() == '+') {
        sync = false;
        inner.remove_suffix(1);
    }
    if (inner.empty() || inner.size() > 10) return false;
    auto [p, ec] = std::from_chars(inner.data(), inner.data() + inner.size(), size);
    if (ec != std::errc() || p != inner.data() + inner.size()) return false;
    start = open;
    return true;
}

}  // namespace

void CommandParser::reset() {
    cmd_ = Command{};
    have_tag_ = have_name_ = false;
    literal_size_ = 0;
    error_.clear();
}

CommandParser::Status CommandParser::fail(std::string why) {
    error_ = std::move(why);
    return Status::error;
}

CommandParser::Status CommandParser::feed_line(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) return fail("NUL in command");
    std::size_t size = 0, start = 0;
    bool sync = false;
    std::string_view body = line;
    bool literal = literal_marker(line, size, sync, start);
    if (literal) {
        body = line.substr(0, start);
        if (!body.empty() && body.back() != ' ' && body.back() != '(') return fail("literal must follow a space");
    }
    if (auto st = parse_segment(body); st == Status::error) return st;
    if (!literal) {
        if (!have_tag_ || !have_name_) return fail(have_tag_ ? "missing command" : "missing tag");
        return Status::complete;
    }
    if (!have_name_) return fail("literal before the command name");
    if (size > max_literal_) return fail("literal too large (" + std::to_string(size) + " octets)");
    if (cmd_.args.size() >= max_args_) return fail("too many arguments");
    literal_size_ = size;
    literal_sync_ = sync;
    return Status::need_literal;
}

CommandParser::Status CommandParser::feed_literal(std::string_view bytes) {
    if (bytes.size() != literal_size_) return fail("literal size mismatch");
    cmd_.args.emplace_back(bytes);
    literal_size_ = 0;
    return Status::need_literal;   // the command continues on the next line
}

CommandParser::Status CommandParser::parse_segment(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (c == ' ') {
            ++i;
            continue;
        }
        std::string token;
        if (c == '"') {
            ++i;
            bool closed = false;
            while (i < s.size()) {
                char d = s[i++];
                if (d == '\\') {
                    if (i >= s.size() || (s[i] != '"' && s[i] != '\\')) return fail("bad escape in quoted string");
                    token += s[i++];
                } else if (d == '"') {
                    closed = true;
                    break;
                } else {
                    token += d;
                }
            }
            if (!closed) return fail("unterminated quoted string");
        } else if (c == '(' || c == ')') {
            token = std::string(1, c);
            ++i;
        } else if (atom_char(c) || c == '\\') {
            while (i < s.size() && (atom_char(s[i]) || s[i] == '\\' || s[i] == '[' || s[i] == ']')) token += s[i++];
        } else {
            return fail("unexpected character");
        }
        if (!have_tag_) {
            if (c == '"' || c == '(' || c == ')' || token.empty() || token.find('+') != std::string::npos)
                return fail("bad tag");
            cmd_.tag = token;
            have_tag_ = true;
        } else if (!have_name_) {
            if (c == '"') return fail("bad command name");
            cmd_.name = upper(token);
            have_name_ = true;
        } else {
            if (cmd_.args.size() >= max_args_) return fail("too many arguments");
            cmd_.args.push_back(std::move(token));
        }
    }
    return Status::complete;
}

Command CommandParser::take() {
    Command c = std::move(cmd_);
    reset();
    return c;
}

std::string quote(std::string_view s) {
    bool literal = s.find_first_of("\r\n") != std::string_view::npos;
    for (unsigned char c : s) literal = literal || c >= 0x80 || c == 0;
    if (literal) return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o + "\"";
}

ResponseLine parse_response_line(std::string_view line) {
    ResponseLine r;
    if (line.empty()) return r;
    std::string_view rest;
    if (line[0] == '+') {
        r.kind = ResponseLine::Kind::continuation;
        rest = line.substr(1);
        if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
        r.text = std::string(rest);
        return r;
    }
    auto sp = line.find(' ');
    if (sp == std::string_view::npos) return r;
    std::string_view first = line.substr(0, sp);
    rest = line.substr(sp + 1);
    auto sp2 = rest.find(' ');
    std::string_view status = rest.substr(0, sp2);
    rest = sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1);
    if (first == "*") r.kind = ResponseLine::Kind::untagged;
    else r.kind = ResponseLine::Kind::tagged, r.tag = std::string(first);
    r.status = upper(status);
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close != std::string_view::npos) {
            r.code = std::string(rest.substr(1, close - 1));
            rest = rest.substr(close + 1);
            if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
        }
    }
    r.text = std::string(rest);
    return r;
}

std::optional<std::size_t> trailing_literal(std::string_view line) {
    std::size_t size = 0, start = 0;
    bool sync = false;
    if (literal_marker(line, size, sync, start)) return size;
    return std::nullopt;
}

std::set<std::string> parse_capabilities(std::string_view list) {
    std::set<std::string> caps;
    std::string u = upper(list);
    std::size_t p = 0;
    if (u.rfind("CAPABILITY ", 0) == 0) p = 11;
    while (p < u.size()) {
        auto sp = u.find(' ', p);
        std::string c = u.substr(p, sp - p);
        if (!c.empty()) caps.insert(c);
        if (sp == std::string::npos) break;
        p = sp + 1;
    }
    return caps;
}

}  // namespace xo::imap
