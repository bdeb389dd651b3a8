#include "util/line_buffer.hpp"

#include <cstring>

namespace xo::util {

LineBuffer::Status LineBuffer::feed(std::string_view& in, std::string& line) {
    if (in.empty()) return Status::need_more;
    const void* lf = std::memchr(in.data(), '\n', in.size());
    std::size_t n = lf ? std::size_t(static_cast<const char*>(lf) - in.data()) : in.size();
    if (!discarding_) {
        if (buf_.size() + n > max_ + 1) {   // +1: room for the CR of a CRLF
            discarding_ = true;
            std::string().swap(buf_);       // give the memory back
        } else {
            buf_.append(in.data(), n);
        }
    }
    if (!lf) {
        in = {};
        return Status::need_more;
    }
    in.remove_prefix(n + 1);
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    if (discarding_ || buf_.size() > max_) {
        discarding_ = false;
        buf_.clear();
        return Status::too_long;
    }
    line.assign(buf_);
    buf_.clear();
    if (buf_.capacity() > 1024) std::string().swap(buf_);   // an AUTH line held 12 KB: not per idle session
    return Status::line;
}

void LineBuffer::reset() {
    std::string().swap(buf_);
    discarding_ = false;
}

}  // namespace xo::util
