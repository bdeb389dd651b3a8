// The DATA stream scanner: finds the end-of-data marker across chunks and
// passes the message on still dot-stuffed, with bare LF turned into CRLF.
#include <cstring>

#include "smtp/parser.hpp"

namespace xo::smtp {

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
                } else {   // a leading dot: passed on, stuffing intact; the receiver drops it (RFC 5321 4.5.2)
                    out += '.';
                    state_ = State::in_line;
                }
                continue;
            case State::dot_cr:
                if (c == '\n') {
                    out.append(".\r\n");
                    ++i;
                    state_ = State::done;
                } else {   // ".\r" then something else: a line starting with a dot and a lone CR
                    out.append(".\r");
                    ++bytes_;
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
