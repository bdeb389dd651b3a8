#include "pop3/parser.hpp"

#include <cctype>
#include <cstring>

namespace xo::pop3 {
namespace {

std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = char(std::toupper((unsigned char)c));
    return o;
}

bool starts_with_auth(std::string_view line) {
    return line.size() >= 4 && upper(line.substr(0, 4)) == "AUTH" && (line.size() == 4 || line[4] == ' ');
}

}  // namespace

Command parse_command(std::string_view line, std::size_t max_line) {
    Command c;
    if (line.size() > max_line && !(starts_with_auth(line) && line.size() <= kMaxAuthLine)) {
        c.error = "-ERR Line too long";
        return c;
    }
    if (line.find('\0') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
        c.error = "-ERR Invalid character in command";
        return c;
    }
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
    // "+OKAY" is not "+OK": the keyword ends at a space or the end of the line.
    if (s.kind != Status::Kind::continuation && !rest.empty() && rest[0] != ' ') return Status{};
    if (s.kind == Status::Kind::continuation && !rest.empty() && rest[0] != ' ') return Status{};
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

void ResponseParser::reset() {
    multiline_ = in_body_ = false;
    buf_.clear();
    current_ = Response{};
    error_.clear();
}

bool ResponseParser::next_line(std::string_view& in, std::string& line) {
    const void* lf = in.empty() ? nullptr : std::memchr(in.data(), '\n', in.size());
    std::size_t n = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : in.size();
    if (buf_.size() + n > max_line_ + 1) {   // +1: the CR of a CRLF
        error_ = "response line longer than " + std::to_string(max_line_) + " octets";
        return false;
    }
    buf_.append(in.data(), n);
    if (!lf) {
        in = {};
        return false;
    }
    in.remove_prefix(n + 1);
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    if (buf_.size() > max_line_) {
        error_ = "response line longer than " + std::to_string(max_line_) + " octets";
        return false;
    }
    line.swap(buf_);
    buf_.clear();
    return true;
}

ResponseParser::Result ResponseParser::feed(std::string_view& in, Response& out) {
    std::string line;
    while (error_.empty() && !in.empty()) {
        if (!next_line(in, line)) break;
        if (!in_body_) {
            current_ = Response{parse_status(line), {}};
            if (current_.status.kind == Status::Kind::invalid) {
                error_ = "malformed status line";
                break;
            }
            if (!multiline_ || current_.status.kind != Status::Kind::ok) {
                multiline_ = false;
                out = std::move(current_);
                current_ = Response{};
                return Result::response;
            }
            in_body_ = true;
            continue;
        }
        if (line == ".") {
            multiline_ = in_body_ = false;
            out = std::move(current_);
            current_ = Response{};
            return Result::response;
        }
        if (current_.lines.size() >= max_lines_) {
            error_ = "multi-line response longer than " + std::to_string(max_lines_) + " lines";
            break;
        }
        current_.lines.push_back(line.size() > 1 && line[0] == '.' ? line.substr(1) : line);
    }
    return error_.empty() ? Result::need_more : Result::error;
}

void add_capa_line(std::set<std::string>& caps, std::string_view line) {
    std::string u = upper(line);
    auto sp = u.find(' ');
    std::string kw = u.substr(0, sp);
    if (kw.empty()) return;
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

Capabilities Capabilities::from_lines(const std::vector<std::string>& lines) {
    Capabilities c;
    std::set<std::string> all;
    for (const auto& l : lines) add_capa_line(all, l);
    for (const auto& k : all) {
        if (k.rfind("SASL:", 0) == 0) c.sasl.insert(k.substr(5));
        else c.items.insert(k);
    }
    return c;
}

bool Capabilities::has(std::string_view keyword) const { return items.count(upper(keyword)) > 0; }

bool Capabilities::has_sasl(std::string_view mech) const { return sasl.count(upper(mech)) > 0; }

}  // namespace xo::pop3
