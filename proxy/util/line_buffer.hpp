// Splits a byte stream into lines ending in CRLF or a bare LF (legacy clients
// end commands with LF; message content never goes through here). A line
// longer than max_line (without its end) is discarded through its end and
// reported as too_long once that end arrives; memory stays bounded by max_line.
// The one line splitter of the proxy: net::Link reads every line through it.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace xo::util {

class LineBuffer {
public:
    enum class Status { need_more, line, too_long };
    explicit LineBuffer(std::size_t max_line = 4096) : max_(max_line) {}
    void set_max_line(std::size_t n) { max_ = n; }
    std::size_t max_line() const { return max_; }
    // Consumes bytes from `in` (advancing it) through at most one end of line.
    // On Status::line, `line` holds the line without CRLF / LF.
    Status feed(std::string_view& in, std::string& line);
    std::size_t buffered() const { return buf_.size(); }   // bytes of a partial line held
    void reset();

private:
    std::string buf_;
    std::size_t max_;
    bool discarding_ = false;
};

}  // namespace xo::util
