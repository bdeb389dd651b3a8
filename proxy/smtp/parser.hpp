// SMTP parsing without I/O: command lines (server side), MAIL/RCPT paths, a
// bounded line splitter, replies (client side, incremental, several per buffer
// for PIPELINING), EHLO capabilities, and the DATA stream scanner that finds
// the end of a message across chunk boundaries. Feeding never throws: errors
// come back as values (with a suggested RFC 5321 reply where one fits).
#pragma once
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/line_buffer.hpp"

namespace xo::smtp {

inline constexpr std::size_t kMaxCommandLine = 4096;   // ours; RFC 5321 asks for 512
inline constexpr std::size_t kMaxAuthLine = 12288;     // RFC 4954 section 4
inline constexpr std::size_t kMaxReplyLine = 8192;
inline constexpr std::size_t kMaxReplyLines = 1000;
inline constexpr std::size_t kMaxAddress = 254;

enum class Verb { Ehlo, Helo, Mail, Rcpt, Data, Rset, Noop, Quit, Vrfy, Help, Auth, Starttls, Bdat, Unknown };

struct ParsedCommand {
    Verb verb = Verb::Unknown;
    std::string verb_text;   // as sent
    std::string arg;         // the rest after one space, trailing blanks removed
    std::string error;       // "500 5.5.2 ..." when the line holds a NUL or a bare CR (verb is then Unknown)
};
// `line` without its CRLF. Verbs are case-insensitive.
ParsedCommand parse_command(std::string_view line);

struct Path {
    std::string address;                                        // without <>; "" for <>
    std::vector<std::pair<std::string, std::string>> params;   // keyword uppercased, value as sent
    const std::string* param(std::string_view keyword) const;  // nullptr when absent (keyword uppercased)
};
struct PathResult {
    Path path;
    std::string error;       // a full reply line ("501 5.1.7 ...") when the argument is malformed
    bool ok() const { return error.empty(); }
};
// `arg` is ParsedCommand::arg: "FROM:<a@b> SIZE=10" / "TO:<a@b>". Accepts a space
// after the colon, quoted local parts, source routes (dropped), RCPT TO:<postmaster>;
// checks SIZE (digits), BODY (7BIT, 8BITMIME, BINARYMIME), SMTPUTF8 (no value),
// duplicate keywords. RCPT TO:<> and addresses over 254 octets are refused.
PathResult parse_mail_from(std::string_view arg);
PathResult parse_rcpt_to(std::string_view arg);

// The line splitter is util::LineBuffer (also used by net::Link).
using util::LineBuffer;

struct Reply {
    int code = 0;
    std::vector<std::string> lines;   // text after "250-" / "250 "
    std::string enhanced() const;     // "2.1.0" when the first line starts with one, else ""
    std::string wire() const;         // "250-a\r\n250 b\r\n"
    std::string text() const;         // lines joined with ' ' (for logs)
};

// Incremental reply parser: feed() consumes whole lines and returns a Reply
// when its last line arrived (lines may end in CRLF or LF). Errors are sticky:
// a code that is not 3 digits, codes that differ inside one reply, a line over
// 8192 octets, more than 1000 lines.
class ReplyParser {
public:
    enum class Status { need_more, reply, error };
    // Consumes bytes from `in` (advancing it) up to the end of one reply; bytes
    // after it stay in `in` (the next pipelined reply): call again.
    Status feed(std::string_view& in, Reply& out);
    const std::string& error() const { return error_; }
    bool partial() const { return !line_.empty() || !current_.lines.empty(); }   // inside a reply
    void reset();

private:
    std::string line_;
    Reply current_;
    std::string error_;
};

struct Capabilities {
    bool starttls = false, pipelining = false, eightbitmime = false, smtputf8 = false,
         enhancedstatuscodes = false, chunking = false;
    std::optional<std::size_t> size;   // SIZE [n]; 0 means no fixed limit
    std::set<std::string> auth;        // uppercased mechanisms, from "AUTH a b" and "AUTH=a b"
    static Capabilities from_ehlo(const Reply& r);
    bool has_auth(std::string_view mech) const;
};

// Finds the end of a message, CRLF.CRLF and nothing else, in a DATA stream
// fed in chunks; the stream starts at the beginning of a line. A bare LF or a
// bare CR is never a line end that can end the message (SMTP smuggling,
// CVE-2023-51764): it is counted in bare_newlines() and written out as CRLF,
// and a lone "." on the line after it is stuffed to ".." so that no receiver
// can take it for the end either (Postfix's smtpd_forbid_bare_newline =
// normalize). The caller refuses the message when it must (reject). Output
// (appended to the caller's buffer) keeps the dot-stuffing and includes the
// final ".\r\n". Bytes after the terminator are not consumed.
class DataScanner {
public:
    struct Result {
        std::size_t consumed = 0;
        bool done = false;
    };
    Result feed(std::string_view in, std::string& out);
    std::size_t message_bytes() const { return bytes_; }   // unstuffed size, without the terminator
    std::size_t bare_newlines() const { return bare_; }
    bool done() const { return state_ == State::done; }

private:
    // line_start: after a CRLF (a "." may end the message); soft_start: after a
    // bare newline; cr: a CR inside a line, its LF not seen yet.
    enum class State { line_start, soft_start, in_line, cr, dot, dot_cr, soft_dot, soft_dot_cr, done };
    void bare_newline(std::string& out);
    State state_ = State::line_start;
    std::size_t bytes_ = 0, bare_ = 0;
};

}  // namespace xo::smtp
