// The DATA stream scanner: finds CRLF.CRLF across chunks and passes the
// message on still dot-stuffed; bare CR and LF become CRLF and are counted.
#include <cstring>

#include "smtp/parser.hpp"

namespace xo::smtp {

void DataScanner::bare_newline(std::string& out) {
    out.append("\r\n");
    bytes_ += 2;
    ++bare_;
    state_ = State::soft_start;
}

DataScanner::Result DataScanner::feed(std::string_view in, std::string& out) {
    std::size_t i = 0;
    const std::size_t n = in.size();
    while (i < n && state_ != State::done) {
        const char c = in[i];
        switch (state_) {
            case State::line_start:
            case State::soft_start:
                if (c == '.') {
                    state_ = state_ == State::line_start ? State::dot : State::soft_dot;
                    ++i;
                } else {
                    state_ = State::in_line;
                }
                continue;
            case State::in_line: {
                // Bulk copy up to the next CR or LF (memchr is vectorised).
                const char* p = in.data() + i;
                const void* lf = std::memchr(p, '\n', n - i);
                std::size_t j = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : n;
                const void* cr = std::memchr(p, '\r', j - i);
                if (cr) j = std::size_t(static_cast<const char*>(cr) - in.data());
                out.append(p, j - i);
                bytes_ += j - i;
                i = j;
                if (i == n) break;
                ++i;
                if (in[j] == '\r') state_ = State::cr;
                else bare_newline(out);   // LF without CR
                continue;
            }
            case State::cr:
                if (c == '\n') {
                    out.append("\r\n");
                    bytes_ += 2;
                    ++i;
                    state_ = State::line_start;
                } else {
                    bare_newline(out);   // CR without LF; c starts the next line
                }
                continue;
            case State::dot:
            case State::soft_dot:
                if (c == '\r') {
                    state_ = state_ == State::dot ? State::dot_cr : State::soft_dot_cr;
                    ++i;
                } else if (c == '\n') {   // ".\n": not the end of the message, a lone dot stuffed
                    out.append("..");
                    ++bytes_;
                    ++i;
                    bare_newline(out);
                } else {   // a leading dot: passed on, stuffing intact; the receiver drops it (RFC 5321 4.5.2)
                    out += '.';
                    state_ = State::in_line;
                }
                continue;
            case State::dot_cr:
            case State::soft_dot_cr:
                if (c == '\n' && state_ == State::dot_cr) {
                    out.append(".\r\n");
                    ++i;
                    state_ = State::done;
                    continue;
                }
                out.append("..");   // a lone dot that must not end the message anywhere
                ++bytes_;
                if (c == '\n') {
                    out.append("\r\n");
                    bytes_ += 2;
                    ++i;
                    state_ = State::line_start;
                } else {
                    bare_newline(out);
                }
                continue;
            case State::done: break;
        }
    }
    return Result{i, state_ == State::done};
}

}  // namespace xo::smtp
