// SMTP parsing without I/O: command lines (server side), MAIL/RCPT paths,
// replies (client side, incremental, several per buffer for PIPELINING), EHLO
// capabilities, and the DATA stream scanner that finds the end of a message
// across chunk boundaries. Errors come back as values with a suggested reply.
#pragma once
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xo::smtp {

enum class Verb { Ehlo, Helo, Mail, Rcpt, Data, Rset, Noop, Quit, Vrfy, Help, Auth, Starttls, Bdat, Unknown };

struct ParsedCommand {
    Verb verb = Verb::Unknown;
    std::string verb_text;   // as sent
    std::string arg;         // the rest after one space
};
ParsedCommand parse_command(std::string_view line);

struct Path {
    std::string address;                                        // without <>; "" for <>
    std::vector<std::pair<std::string, std::string>> params;   // keyword uppercased, value
};
struct PathResult {
    Path path;
    std::string error;       // a full reply line when the argument is malformed
    bool ok() const { return error.empty(); }
};
PathResult parse_mail_from(std::string_view arg);   // "FROM:<a@b> SIZE=10"
PathResult parse_rcpt_to(std::string_view arg);     // "TO:<a@b>"

struct Reply {
    int code = 0;
    std::vector<std::string> lines;   // text after "250-" / "250 "
    std::string enhanced() const;     // "2.1.0" or ""
    std::string wire() const;         // "250-a\r\n250 b\r\n"
    std::string text() const;         // lines joined with ' '
};

// Incremental reply parser: feed() consumes whole lines and returns a Reply
// when its last line arrived. Errors are sticky.
class ReplyParser {
public:
    enum class Status { need_more, reply, error };
    // Consumes bytes from `in` (advancing it) up to the end of one reply.
    Status feed(std::string_view& in, Reply& out);
    const std::string& error() const { return error_; }

private:
    std::string line_;
    Reply current_;
    std::string error_;
};

struct Capabilities {
    bool starttls = false, pipelining = false, eightbitmime = false, smtputf8 = false,
         enhancedstatuscodes = false, chunking = false;
    std::optional<std::size_t> size;
    std::set<std::string> auth;   // uppercased mechanisms
    static Capabilities from_ehlo(const Reply& r);
    bool has_auth(std::string_view mech) const;
};

// Finds CRLF.CRLF (or LF.LF from legacy clients) in a DATA stream fed in
// chunks. Output keeps the dot-stuffing, turns bare LF into CRLF and includes
// the final ".\r\n". Bytes after the terminator are not consumed.
class DataScanner {
public:
    struct Result {
        std::size_t consumed = 0;
        bool done = false;
    };
    Result feed(std::string_view in, std::string& out);
    std::size_t message_bytes() const { return bytes_; }   // unstuffed size, without the terminator
    bool done() const { return state_ == State::done; }

private:
    enum class State { line_start, in_line, dot, dot_cr, done };
    State state_ = State::line_start;
    std::size_t bytes_ = 0;
    bool last_cr_ = false;   // the last byte written out was a CR (a CRLF may straddle chunks)
};

}  // namespace xo::smtp
