// SMTP replies from an upstream server (incremental, pipelined) and the EHLO
// capabilities they announce.
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "smtp/parser.hpp"

namespace xo::smtp {
namespace {

std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = char(std::toupper((unsigned char)c));
    return o;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// 1 to 3 digits at s[i]; advances i.
bool digits(const std::string& s, std::size_t& i) {
    std::size_t start = i;
    while (i < s.size() && digit(s[i]) && i - start < 4) ++i;
    return i > start && i - start <= 3;
}

}  // namespace

std::string Reply::enhanced() const {
    // RFC 3463: class "." subject "." detail, class one of 2, 4, 5.
    if (lines.empty()) return "";
    const std::string& l = lines.front();
    if (l.size() < 5 || (l[0] != '2' && l[0] != '4' && l[0] != '5') || l[1] != '.') return "";
    std::size_t i = 2;
    if (!digits(l, i) || i >= l.size() || l[i] != '.') return "";
    ++i;
    if (!digits(l, i)) return "";
    if (i < l.size() && l[i] != ' ') return "";
    return l.substr(0, i);
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

void ReplyParser::reset() {
    line_.clear();
    current_ = Reply{};
    error_.clear();
}

ReplyParser::Status ReplyParser::feed(std::string_view& in, Reply& out) {
    if (!error_.empty()) return Status::error;
    while (!in.empty()) {
        const void* lf = std::memchr(in.data(), '\n', in.size());
        std::size_t n = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : in.size();
        if (line_.size() + n > kMaxReplyLine + 1) {   // +1: the CR of a CRLF
            error_ = "reply line longer than " + std::to_string(kMaxReplyLine) + " octets";
            return Status::error;
        }
        line_.append(in.data(), n);
        if (!lf) {
            in = {};
            return Status::need_more;
        }
        in.remove_prefix(n + 1);
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (line_.size() > kMaxReplyLine) {
            error_ = "reply line longer than " + std::to_string(kMaxReplyLine) + " octets";
            return Status::error;
        }
        // RFC 5321 4.2: the first digit is 2 to 5 ("020" would be relayed as "20").
        if (line_.size() < 3 || line_[0] < '2' || line_[0] > '5' || !digit(line_[1]) || !digit(line_[2]) ||
            (line_.size() > 3 && line_[3] != ' ' && line_[3] != '-')) {
            error_ = "malformed reply line";
            return Status::error;
        }
        int code = (line_[0] - '0') * 100 + (line_[1] - '0') * 10 + (line_[2] - '0');
        if (!current_.lines.empty() && code != current_.code) {
            error_ = "reply codes differ within a multiline reply";
            return Status::error;
        }
        if (current_.lines.size() >= kMaxReplyLines) {
            error_ = "reply has more than " + std::to_string(kMaxReplyLines) + " lines";
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
    for (std::size_t i = 1; i < r.lines.size(); ++i) {   // the first line is the greeting
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

}  // namespace xo::smtp
