#include "imap/parser.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

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

bool tag_ok(std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return atom_char(c) && c != '+'; });
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

constexpr std::size_t kTail = 16;   // enough for "{4294967295+}"

}  // namespace

void CommandParser::reset() {
    cmd_ = Command{};
    have_tag_ = have_name_ = false;
    literal_size_ = 0;
    literal_sync_ = false;
    error_.clear();
    fatal_ = stale_ = false;
}

void CommandParser::start_over() { reset(); }

CommandParser::Status CommandParser::fail(std::string why) {
    error_ = std::move(why);
    return Status::error;
}

CommandParser::Status CommandParser::feed_line(std::string_view line) {
    std::size_t size = 0, start = 0;
    bool sync = false;
    bool literal = literal_marker(line, size, sync, start);
    // A refused line that announced a LITERAL+ is followed by bytes we cannot skip.
    auto refuse = [&](std::string why) {
        if (literal && !sync) fatal_ = true;
        return fail(std::move(why));
    };
    if (line.size() > max_line_) {
        if (!have_tag_) capture_tag(line.substr(0, 64));
        return refuse("line too long");
    }
    std::string_view body = literal ? line.substr(0, start) : line;
    if (parse_segment(body) == Status::error) return refuse(error_);
    if (!literal) {
        if (!have_tag_ || !have_name_) return fail(have_tag_ ? "missing command" : "missing tag");
        return Status::complete;
    }
    if (!body.empty() && body.back() != ' ' && body.back() != '(') return refuse("literal must follow a space");
    if (!have_name_) return refuse("literal before the command name");
    if (size > max_literal_) return refuse("literal too large (" + std::to_string(size) + " octets)");
    if (cmd_.args.size() >= max_args_) return refuse("too many arguments");
    literal_size_ = size;
    literal_sync_ = sync;
    return Status::need_literal;
}

void CommandParser::capture_tag(std::string_view head) {
    auto sp = head.find(' ');
    if (sp != std::string_view::npos && tag_ok(head.substr(0, sp))) cmd_.tag = std::string(head.substr(0, sp));
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
        if (c == '\0') return fail("NUL in command");
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
                } else if (d == '\r' || d == '\n' || d == '\0') {
                    return fail(d ? "CR or LF in quoted string" : "NUL in command");
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
            if (c == '"' || c == '(' || c == ')' || !tag_ok(token)) return fail("bad tag");
            cmd_.tag = token;
            have_tag_ = true;
        } else if (!have_name_) {
            if (c == '"' || c == '(' || c == ')') return fail("bad command name");
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

// A whole line is in buf_ (without its LF). need_more means: carry on.
CommandParser::Event CommandParser::end_of_line() {
    if (mode_ == Mode::discard) {
        mode_ = Mode::line;
        std::string_view tail = discard_tail_;
        if (!tail.empty() && tail.back() == '\r') tail.remove_suffix(1);
        std::size_t size = 0, start = 0;
        bool sync = true;
        if (!raw_mode_ && literal_marker(tail, size, sync, start) && !sync) fatal_ = true;
        raw_mode_ = false;
        discard_tail_.clear();
        fail("line too long");
        stale_ = true;
        return Event::error;
    }
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    if (raw_mode_) {
        raw_mode_ = false;
        raw_.assign(buf_);
        buf_.clear();
        return Event::line;
    }
    Status st = feed_line(buf_);
    buf_.clear();
    if (st == Status::complete) {
        stale_ = true;   // take() clears it
        return Event::complete;
    }
    if (st == Status::error) {
        stale_ = true;
        return Event::error;
    }
    mode_ = Mode::literal;
    if (literal_size_ == 0) {
        feed_literal("");
        mode_ = Mode::line;
    }
    return literal_sync_ ? Event::continuation : Event::need_more;
}

CommandParser::Event CommandParser::feed(std::string_view& in) {
    if (stale_) start_over();
    while (!in.empty()) {
        if (mode_ == Mode::literal) {
            std::size_t n = std::min(literal_size_ - buf_.size(), in.size());
            buf_.append(in.data(), n);
            in.remove_prefix(n);
            if (buf_.size() == literal_size_) {
                feed_literal(buf_);
                buf_.clear();
                mode_ = Mode::line;
            }
            continue;
        }
        const void* lf = std::memchr(in.data(), '\n', in.size());
        std::size_t n = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : in.size();
        std::string_view part = in.substr(0, n);
        if (mode_ == Mode::line && buf_.size() + n > max_line_ + 1) {   // +1: the CR of a CRLF
            if (!have_tag_ && !raw_mode_) {   // keep the tag for "tag BAD"
                std::string head = buf_.substr(0, 64);
                head.append(part.substr(0, 64 - std::min<std::size_t>(64, head.size())));
                capture_tag(head);
            }
            mode_ = Mode::discard;
            discard_tail_ = buf_.size() > kTail ? buf_.substr(buf_.size() - kTail) : buf_;
            buf_.clear();
        }
        if (mode_ == Mode::discard) {
            discard_tail_.append(part.substr(part.size() > kTail ? part.size() - kTail : 0));
            if (discard_tail_.size() > kTail) discard_tail_.erase(0, discard_tail_.size() - kTail);
        } else {
            buf_.append(part);
        }
        if (!lf) {
            in = {};
            return Event::need_more;
        }
        in.remove_prefix(n + 1);
        if (Event e = end_of_line(); e != Event::need_more) return e;
    }
    return Event::need_more;
}

std::string quote(std::string_view s, bool literal_plus) {
    bool literal = false;
    for (unsigned char c : s) literal = literal || c >= 0x80 || c == 0 || c == '\r' || c == '\n';
    if (literal) {
        // Appended piece by piece: `"{" + std::string` inserts at the front, where
        // GCC 12 at -O3 sees a memcpy that "may overlap" (-Wrestrict, GCC bug 105329).
        std::string o = "{";
        o += std::to_string(s.size());
        o += literal_plus ? "+}\r\n" : "}\r\n";
        o.append(s);
        return o;
    }
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        o += c;
    }
    return o + "\"";
}

std::string ResponseLine::code_name() const { return upper(std::string_view(code).substr(0, code.find(' '))); }

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
    if (sp == std::string_view::npos || sp == 0) return r;
    std::string_view first = line.substr(0, sp);
    rest = line.substr(sp + 1);
    auto sp2 = rest.find(' ');
    std::string_view status = rest.substr(0, sp2);
    if (status.empty()) return r;
    rest = sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1);
    if (first == "*") {
        r.kind = ResponseLine::Kind::untagged;
    } else {
        r.kind = ResponseLine::Kind::tagged;
        r.tag = std::string(first);
    }
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

void ResponseParser::reset() {
    line_.clear();
    skip_ = skipped_ = 0;
    error_.clear();
}

ResponseParser::Status ResponseParser::feed(std::string_view& in, ResponseLine& out) {
    if (!error_.empty()) return Status::error;
    while (!in.empty()) {
        if (skip_ > 0) {   // the bytes of an untagged literal
            std::size_t n = std::min(skip_, in.size());
            skip_ -= n;
            skipped_ += n;
            in.remove_prefix(n);
            continue;
        }
        const void* lf = std::memchr(in.data(), '\n', in.size());
        std::size_t n = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : in.size();
        if (line_.size() + n > max_line_ + 1) {
            error_ = "response line longer than " + std::to_string(max_line_) + " octets";
            return Status::error;
        }
        line_.append(in.data(), n);
        if (!lf) {
            in = {};
            return Status::need_more;
        }
        in.remove_prefix(n + 1);
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (!line_.empty() && line_[0] == '*') {
            if (auto lit = trailing_literal(line_)) {
                skip_ = *lit;
                continue;
            }
        }
        out = parse_response_line(line_);
        if (out.kind == ResponseLine::Kind::invalid) {
            error_ = "malformed response line";
            return Status::error;
        }
        out.literal_bytes = skipped_;
        line_.clear();
        skipped_ = 0;
        return Status::response;
    }
    return Status::need_more;
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

Capabilities Capabilities::parse(std::string_view list) { return Capabilities{parse_capabilities(list)}; }

std::optional<Capabilities> Capabilities::from_response(const ResponseLine& r) {
    if (r.kind == ResponseLine::Kind::untagged && r.status == "CAPABILITY") return parse(r.text);
    if (r.kind != ResponseLine::Kind::invalid && r.kind != ResponseLine::Kind::continuation &&
        r.code_name() == "CAPABILITY")
        return parse(r.code);
    return std::nullopt;
}

bool Capabilities::has(std::string_view cap) const { return items.count(upper(cap)) > 0; }

bool Capabilities::has_auth(std::string_view mech) const { return items.count("AUTH=" + upper(mech)) > 0; }

std::set<std::string> Capabilities::auth_mechanisms() const {
    std::set<std::string> m;
    for (const auto& c : items)
        if (c.rfind("AUTH=", 0) == 0 && c.size() > 5) m.insert(c.substr(5));
    return m;
}

}  // namespace xo::imap
