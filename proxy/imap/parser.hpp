// IMAP parsing without I/O, for the pre-authentication dialogue.
// CommandParser is fed one line at a time (without CRLF) and, when a line ends
// in a literal {n} / {n+}, exactly n bytes; it answers need_literal (send
// "+ ..." first when synchronising), complete, or error (with the tag when
// known). ResponseLine classifies the upstream's lines; capabilities are
// parsed from "* CAPABILITY ..." or a "[CAPABILITY ...]" response code.
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
    std::vector<std::string> args;    // atoms, quoted strings (unescaped), literals
};

class CommandParser {
public:
    enum class Status { complete, need_literal, error };
    explicit CommandParser(std::size_t max_literal = 8192, std::size_t max_args = 32)
        : max_literal_(max_literal), max_args_(max_args) {}

    Status feed_line(std::string_view line);
    Status feed_literal(std::string_view bytes);   // exactly literal_size() bytes
    std::size_t literal_size() const { return literal_size_; }
    bool literal_synchronizing() const { return literal_sync_; }
    Command take();                                 // after complete; resets the parser
    const std::string& error() const { return error_; }
    const std::string& tag() const { return cmd_.tag; }   // for "tag BAD ..."
    void reset();

private:
    Status parse_segment(std::string_view s);
    Status fail(std::string why);

    std::size_t max_literal_, max_args_;
    Command cmd_;
    bool have_tag_ = false, have_name_ = false;
    std::size_t literal_size_ = 0;
    bool literal_sync_ = false;
    std::string error_;
};

// Serializes s as an IMAP quoted string, or as a literal when it cannot be quoted.
std::string quote(std::string_view s);

struct ResponseLine {
    enum class Kind { untagged, continuation, tagged, invalid } kind = Kind::invalid;
    std::string tag;        // tagged only
    std::string status;     // OK / NO / BAD / BYE / PREAUTH (uppercased), or the untagged keyword
    std::string code;       // text inside [...] after the status, without brackets
    std::string text;       // the rest (for continuations: the base64 data or text)
};
ResponseLine parse_response_line(std::string_view line);

// "{123}" or "{123+}" at the end of an untagged line: the literal's size that follows.
std::optional<std::size_t> trailing_literal(std::string_view line);

// Capabilities from "IMAP4rev1 SASL-IR AUTH=XOAUTH2 ..." (uppercased).
std::set<std::string> parse_capabilities(std::string_view list);

}  // namespace xo::imap
