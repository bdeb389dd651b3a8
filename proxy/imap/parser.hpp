// IMAP parsing without I/O, for the pre-authentication dialogue.
// CommandParser takes a client's bytes (feed) or lines and literals (feed_line,
// feed_literal); it answers need more, continuation (send "+ ..." before a
// synchronising literal), complete, a raw line (after next_line()), or error
// (with the tag when known, for "tag BAD ..."). ResponseParser splits an
// upstream's bytes into response lines, skipping untagged literals.
#pragma once
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace xo::imap {

struct Command {
    std::string tag;
    std::string name;                 // uppercased
    std::vector<std::string> args;    // atoms, quoted strings (unescaped), literals; "(" and ")" as their own args
};

class CommandParser {
public:
    explicit CommandParser(std::size_t max_literal = 8192, std::size_t max_args = 32, std::size_t max_line = 8192)
        : max_literal_(max_literal), max_args_(max_args), max_line_(max_line) {}

    // Byte stream: consumes bytes from `in` (advancing it) and stops at each event;
    // the bytes after it stay in `in`. Lines end in CRLF (a bare LF is accepted).
    //   continuation: a synchronising literal {n} was announced and accepted: send
    //                 "+ Ready for literal data\r\n", then feed the client's bytes.
    //   complete:     take() the command.
    //   line:         after next_line(), one raw line (raw_line()), e.g. the base64
    //                 answer or "*" to an AUTHENTICATE challenge.
    //   error:        error() / tag(); the offending line has been consumed. When
    //                 fatal(), bytes the parser cannot skip follow (a LITERAL+ over
    //                 the limit): answer BAD and close.
    enum class Event { need_more, continuation, complete, line, error };
    Event feed(std::string_view& in);
    void next_line() { raw_mode_ = true; }
    const std::string& raw_line() const { return raw_; }
    bool fatal() const { return fatal_; }

    // Line at a time, for callers that read lines themselves: a line without its
    // CRLF; when it ends in a literal, exactly literal_size() bytes, then the next line.
    enum class Status { complete, need_literal, error };
    Status feed_line(std::string_view line);
    Status feed_literal(std::string_view bytes);   // exactly literal_size() bytes
    std::size_t literal_size() const { return literal_size_; }
    bool literal_synchronizing() const { return literal_sync_; }

    Command take();                                 // after complete; resets the parser
    const std::string& error() const { return error_; }
    const std::string& tag() const { return cmd_.tag; }   // for "tag BAD ..." ("" when unknown)
    void reset();   // forgets the command so far (line interface, after an error); feed() does it itself

private:
    Status parse_segment(std::string_view s);
    Status fail(std::string why);
    Event end_of_line();
    void capture_tag(std::string_view head);
    void start_over();

    std::size_t max_literal_, max_args_, max_line_;
    Command cmd_;
    bool have_tag_ = false, have_name_ = false;
    std::size_t literal_size_ = 0;
    bool literal_sync_ = false;
    std::string error_;
    // Byte-stream state.
    enum class Mode { line, literal, discard };
    Mode mode_ = Mode::line;
    std::string buf_;           // the partial line or literal
    std::string raw_;
    std::string discard_tail_;  // the last bytes of a line being discarded (a literal marker?)
    bool raw_mode_ = false, fatal_ = false, stale_ = false;
};

// Serializes s as an IMAP quoted string, or as a literal ("{n}\r\n" + s, or
// "{n+}\r\n" + s with literal_plus) when it holds CR, LF, NUL or 8-bit bytes.
std::string quote(std::string_view s, bool literal_plus = false);

struct ResponseLine {
    enum class Kind { untagged, continuation, tagged, invalid } kind = Kind::invalid;
    std::string tag;        // tagged only
    std::string status;     // OK / NO / BAD / BYE / PREAUTH (uppercased), or the untagged keyword
    std::string code;       // text inside [...] after the status, without brackets
    std::string text;       // the rest (for continuations: the base64 data or text)
    std::size_t literal_bytes = 0;   // untagged literals skipped by ResponseParser
    std::string code_name() const;   // first word of code, uppercased: "AUTHENTICATIONFAILED"
};
ResponseLine parse_response_line(std::string_view line);

// Splits an upstream's bytes into responses. An untagged line ending in {n} or
// {n+} has its n literal bytes skipped (counted) and continues on the next line;
// the text keeps the markers. Errors (sticky): a line over max_line, a line
// that is not a response.
class ResponseParser {
public:
    enum class Status { need_more, response, error };
    explicit ResponseParser(std::size_t max_line = 65536) : max_line_(max_line) {}
    // Consumes bytes from `in` (advancing it) up to the end of one response.
    Status feed(std::string_view& in, ResponseLine& out);
    const std::string& error() const { return error_; }
    void reset();

private:
    std::size_t max_line_;
    std::string line_;
    std::size_t skip_ = 0, skipped_ = 0;
    std::string error_;
};

// "{123}" or "{123+}" at the end of an untagged line: the literal's size that follows.
std::optional<std::size_t> trailing_literal(std::string_view line);

// Capabilities from "IMAP4rev1 SASL-IR AUTH=XOAUTH2 ..." (a leading "CAPABILITY"
// is skipped), uppercased.
std::set<std::string> parse_capabilities(std::string_view list);

struct Capabilities {
    std::set<std::string> items;   // uppercased: "IMAP4REV1", "SASL-IR", "AUTH=XOAUTH2"
    static Capabilities parse(std::string_view list);
    // From "* CAPABILITY ..." or any status response with a [CAPABILITY ...] code.
    static std::optional<Capabilities> from_response(const ResponseLine& r);
    bool has(std::string_view cap) const;
    bool has_auth(std::string_view mech) const;   // AUTH=<mech>
    std::set<std::string> auth_mechanisms() const;
};

}  // namespace xo::imap
