// POP3 parsing without I/O: client command lines (server side) and the
// server's responses (client side). USER/PASS keep the rest of the line
// verbatim (a password may hold spaces); errors come back as a ready "-ERR"
// line. ResponseParser is fed bytes and yields status lines or, when told to
// expect one, a whole multi-line response (CAPA) with its dots unstuffed.
#pragma once
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace xo::pop3 {

inline constexpr std::size_t kMaxCommandLine = 253;   // 255 with CRLF (RFC 2449)
inline constexpr std::size_t kMaxAuthLine = 12288;    // AUTH and its answers (RFC 5034 / 4954)

struct Command {
    std::string verb;    // uppercased
    std::string arg;     // the rest of the line after one space, verbatim
    std::string error;   // "-ERR ..." when the line is refused (NUL, CR, too long); verb is then ""
};
// `line` without its CRLF. A line longer than max_line is refused unless it is an
// AUTH command (up to kMaxAuthLine). Read lines with kMaxAuthLine as the limit.
Command parse_command(std::string_view line, std::size_t max_line = kMaxCommandLine);

struct Status {
    enum class Kind { ok, err, continuation, invalid } kind = Kind::invalid;
    std::string code;   // "SYS/TEMP" from "-ERR [SYS/TEMP] ..." (RFC 3206)
    std::string text;
};
Status parse_status(std::string_view line);

struct Response {
    Status status;
    std::vector<std::string> lines;   // multi-line body, dot-unstuffed, without the final "."
};

// Incremental: feed() consumes bytes (advancing `in`) up to the end of one
// response and leaves the rest. Before sending CAPA (or a bare AUTH listing),
// call expect_multiline(): if that response is +OK, its lines up to "." are
// collected. Errors (sticky): an invalid status line, a line over max_line,
// more than max_lines lines.
class ResponseParser {
public:
    enum class Result { need_more, response, error };
    explicit ResponseParser(std::size_t max_line = 8192, std::size_t max_lines = 1000)
        : max_line_(max_line), max_lines_(max_lines) {}
    void expect_multiline(bool on = true) { multiline_ = on; }
    Result feed(std::string_view& in, Response& out);
    const std::string& error() const { return error_; }
    void reset();

private:
    bool next_line(std::string_view& in, std::string& line);   // false: need more (or error_ set)

    std::size_t max_line_, max_lines_;
    bool multiline_ = false, in_body_ = false;
    std::string buf_;
    Response current_;
    std::string error_;
};

// One CAPA line ("SASL XOAUTH2 PLAIN", "STLS") added to the set, uppercased:
// "SASL XOAUTH2 PLAIN" adds "SASL", "SASL:XOAUTH2", "SASL:PLAIN".
void add_capa_line(std::set<std::string>& caps, std::string_view line);

struct Capabilities {
    std::set<std::string> items;   // keywords uppercased: "STLS", "USER", "SASL", "PIPELINING"
    std::set<std::string> sasl;    // mechanisms uppercased, from "SASL XOAUTH2 PLAIN"
    static Capabilities from_lines(const std::vector<std::string>& lines);   // Response::lines of CAPA
    bool has(std::string_view keyword) const;
    bool has_sasl(std::string_view mech) const;
};

}  // namespace xo::pop3
