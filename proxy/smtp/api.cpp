#include "smtp/api.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>

#include "diagnose/diagnose.hpp"
#include "util/base64.hpp"
#include "util/text.hpp"

namespace xo::smtp::api {

const char* to_string(Kind k) { return k == Kind::graph ? "Microsoft Graph sendMail" : "the Gmail API"; }

std::uint64_t max_message(Kind k) { return k == Kind::graph ? kGraphMaxMessage : kGmailMaxMessage; }

namespace {

// One reply line; at most 500 octets of text, so the line with its code fits
// the 512 octets of RFC 5321 4.5.3.1.5 whatever an API or a socket error said.
Reply make(int code, std::string text) {
    if (text.size() > 500) text.resize(500);
    return Reply{code, {std::move(text)}};
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool starts_with_ci(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && lower(s.substr(0, p.size())) == lower(p);
}

// The address between < and > of "MAIL FROM:<a> ..." / "RCPT TO:<b> ...".
std::string path_of(std::string_view line) {
    auto lt = line.find('<');
    auto gt = line.find('>', lt == std::string_view::npos ? 0 : lt);
    if (lt == std::string_view::npos || gt == std::string_view::npos) return {};
    return std::string(line.substr(lt + 1, gt - lt - 1));
}

}  // namespace

Reply local_reply(std::string_view line, Envelope& env, Kind kind) {
    if (starts_with_ci(line, "MAIL ")) {
        env.clear();
        env.from = path_of(line);
        return make(250, "2.1.0 Ok");
    }
    if (starts_with_ci(line, "RCPT ")) {
        std::string to = path_of(line);
        if (to.empty() || to.find('@') == std::string::npos) return make(550, "5.1.3 Bad recipient address syntax");
        if (env.rcpts.size() >= 500) return make(452, "4.5.3 Too many recipients");   // Graph's own limit is 500
        env.rcpts.push_back(to);
        return make(250, "2.1.5 Ok");
    }
    if (starts_with_ci(line, "DATA")) {
        if (env.rcpts.empty()) return make(554, "5.5.1 No valid recipients");
        return make(354, "End data with <CR><LF>.<CR><LF>");
    }
    if (starts_with_ci(line, "RSET")) {
        env.clear();
        return make(250, "2.0.0 Ok");
    }
    return make(502, std::string("5.5.1 Command not available through ") + to_string(kind));
}

void Unstuffer::feed(std::string_view in, std::string& out) {
    std::string& s = held_;
    for (char c : in) {
        if (line_start_ && c == '.') {   // a stuffed dot, or the terminator's
            line_start_ = false;
            continue;
        }
        s += c;
        line_start_ = c == '\n';
    }
    // Everything but the last two bytes: at the end they are the terminator's CRLF.
    if (s.size() > 2) {
        out.append(s, 0, s.size() - 2);
        s.erase(0, s.size() - 2);
    }
}

namespace {

// The header block of `head`: up to the first empty line, unfolded.
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view head) {
    std::vector<std::pair<std::string, std::string>> fields;
    std::size_t pos = 0;
    while (pos < head.size()) {
        auto eol = head.find('\n', pos);
        std::string_view line = head.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if ((line.front() == ' ' || line.front() == '\t') && !fields.empty()) {
            fields.back().second += ' ';
            fields.back().second += line;
        } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
            fields.emplace_back(lower(line.substr(0, colon)), std::string(line.substr(colon + 1)));
        }
        if (eol == std::string_view::npos) break;
        pos = eol + 1;
    }
    return fields;
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

// RFC 5322 address list: "A <a@x>, \"B, C\" <b@x>, c@x, group: d@x, e@x;" -> addresses.
void addresses(std::string_view v, std::vector<std::string>& out) {
    std::string item;
    int depth = 0;
    bool quoted = false;
    auto flush = [&] {
        std::string s = item;
        item.clear();
        auto lt = s.rfind('<');
        if (lt != std::string::npos) {
            auto gt = s.find('>', lt);
            s = s.substr(lt + 1, gt == std::string::npos ? std::string::npos : gt - lt - 1);
        }
        s = trim(s);
        if (s.find('@') != std::string::npos) out.push_back(lower(s));
    };
    for (std::size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (quoted) {
            if (c == '\\' && i + 1 < v.size()) ++i;
            else if (c == '"') quoted = false;
            continue;   // display names are not addresses
        }
        if (depth > 0) {
            if (c == '(') ++depth;
            else if (c == ')') --depth;
            continue;
        }
        if (c == '"') quoted = true;
        else if (c == '(') depth = 1;
        else if (c == ',' || c == ';') flush();
        else if (c == ':' && item.find('<') == std::string::npos) item.clear();   // a group's name
        else item += c;
    }
    flush();
}

}  // namespace

std::vector<std::string> header_addresses(std::string_view head, const std::vector<std::string>& fields) {
    std::vector<std::string> out;
    for (const auto& [name, value] : header_fields(head))
        if (std::find(fields.begin(), fields.end(), name) != fields.end()) addresses(value, out);
    return out;
}

std::string bcc_header(const std::vector<std::string>& rcpts, std::string_view head) {
    auto named = header_addresses(head, {"to", "cc"});
    std::string list;
    std::vector<std::string> seen;
    for (const auto& r : rcpts) {
        std::string l = lower(r);
        if (std::find(named.begin(), named.end(), l) != named.end()) continue;
        if (std::find(seen.begin(), seen.end(), l) != seen.end()) continue;
        seen.push_back(l);
        if (!list.empty()) list += ",\r\n ";
        list += r;
    }
    return list.empty() ? std::string() : "Bcc: " + list + "\r\n";
}

std::vector<std::string> extra_header_recipients(const std::vector<std::string>& rcpts, std::string_view head) {
    std::vector<std::string> env;
    for (const auto& r : rcpts) env.push_back(lower(r));
    std::vector<std::string> out;
    for (const auto& a : header_addresses(head, {"to", "cc", "bcc"}))
        if (std::find(env.begin(), env.end(), a) == env.end() && std::find(out.begin(), out.end(), a) == out.end())
            out.push_back(a);
    return out;
}

std::string request_url(Kind k, std::string_view base, std::string_view mailbox) {
    std::string b(base);
    while (!b.empty() && b.back() == '/') b.pop_back();
    std::string m = util::url_encode(mailbox);
    if (k == Kind::graph) return b + "/v1.0/users/" + m + "/sendMail";
    return b + "/upload/gmail/v1/users/" + m + "/messages/send?uploadType=media";
}

std::string content_type(Kind k) { return k == Kind::graph ? "text/plain" : "message/rfc822"; }

std::uint64_t body_size(Kind k, std::uint64_t raw) { return k == Kind::graph ? (raw + 2) / 3 * 4 : raw; }

void Base64Stream::feed(std::string_view in, std::string& out) {
    carry_.append(in);
    std::size_t whole = carry_.size() / 3 * 3;
    if (whole == 0) return;
    out += util::base64_encode(std::string_view(carry_).substr(0, whole));
    carry_.erase(0, whole);
}

void Base64Stream::finish(std::string& out) {
    if (!carry_.empty()) out += util::base64_encode(carry_);
    carry_.clear();
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view v) {
    std::string s = trim(v);
    if (s.empty()) return std::nullopt;
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        if (s.size() > 9) return std::chrono::seconds(999999999);
        return std::chrono::seconds(std::stol(s));
    }
    std::tm tm{};   // "Sun, 06 Nov 1994 08:49:37 GMT"
    if (!strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
    long long at = timegm(&tm), now = std::time(nullptr);
    return std::chrono::seconds(std::max(0LL, at - now));
}

namespace {

// Graph: {"error":{"code":"ErrorAccessDenied","message":"..."}};
// Gmail: {"error":{"code":403,"message":"...","errors":[{"reason":"insufficientPermissions"}]}}.
void api_error(std::string_view body, std::string& code, std::string& message) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return;
    const auto& e = j["error"];
    if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
    if (e.contains("errors") && e["errors"].is_array() && !e["errors"].empty() && e["errors"][0].is_object() &&
        e["errors"][0].contains("reason") && e["errors"][0]["reason"].is_string())
        code = e["errors"][0]["reason"].get<std::string>();
    if (code.empty() && e.contains("status") && e["status"].is_string()) code = e["status"].get<std::string>();
    if (e.contains("message") && e["message"].is_string()) message = e["message"].get<std::string>();
    if (auto nl = message.find_first_of("\r\n"); nl != std::string::npos) message.resize(nl);
    if (message.size() > 200) message.resize(200);
}

// Printable ASCII only: the text goes into an SMTP reply.
std::string reply_safe(std::string s) {
    for (auto& c : s)
        if (c < 0x20 || c > 0x7e) c = '?';
    return s;
}

}  // namespace

Outcome map_response(Kind k, unsigned status, std::string_view body, std::string_view retry_after, bool refreshed) {
    Outcome o;
    std::string code, message;
    api_error(body, code, message);
    o.log = "HTTP " + std::to_string(status) + (code.empty() ? "" : " " + code) +
            (message.empty() ? "" : ": " + message);
    const bool ok = k == Kind::graph ? status == 202 : status == 200;
    if (ok) {
        o.kind = Outcome::Kind::sent;
        std::string id;
        if (k == Kind::gmail) {
            auto j = nlohmann::json::parse(body, nullptr, false);
            if (j.is_object() && j.contains("id") && j["id"].is_string()) id = " id=" + j["id"].get<std::string>();
        }
        o.reply = make(250, "2.0.0 Ok: sent through " + std::string(to_string(k)) + reply_safe(id));
        return o;
    }
    if (status == 429 || status == 503 || status == 504 || status == 500 || status == 502) {
        o.kind = Outcome::Kind::retry;
        o.wait = parse_retry_after(retry_after).value_or(std::chrono::seconds(status == 429 ? 5 : 2));
        return o;
    }
    if (status == 401 && !refreshed) {
        o.kind = Outcome::Kind::refresh;
        return o;
    }
    o.kind = Outcome::Kind::final;
    const diagnose::Row* row = diagnose::match_api_error(status, code, message);
    std::string what = std::string(to_string(k)) + " answered HTTP " + std::to_string(status) +
                       (code.empty() ? "" : " " + code);
    if (status == 401) {
        o.reply = make(451, "4.7.0 " + what + ": the token was refused twice, message not sent; try again later");
    } else if (status == 413) {
        o.reply = too_big(k);
    } else if (status == 403 && code == "ErrorSendAsDenied") {
        o.reply = make(550, "5.7.60 " + what + ": not allowed to send as this sender");
    } else if (status == 403 || status == 404 || (status == 400 && code == "failedPrecondition")) {
        // The tenant's or project's setup: temporary, so the client keeps the message until it is fixed.
        o.reply = make(451, "4.7.1 " + what + ", message not sent");
    } else if (status == 400 && code == "ErrorInvalidRecipients") {
        o.reply = make(550, "5.1.3 " + what + ": a recipient was refused");
    } else if (status == 400) {
        o.reply = make(554, "5.6.0 " + what + ": message refused");
    } else if (status / 100 == 4) {
        o.reply = make(554, "5.0.0 " + what + ", message not sent");
    } else {
        o.reply = make(451, "4.4.0 " + what + ", message not sent; try again later");
    }
    // Replies are at most 512 octets a line (RFC 5321 4.5.3.1.5): cause and fix on lines of their own.
    if (row && o.reply.code != 552) {
        std::string enh = o.reply.enhanced();
        o.reply.lines.push_back(enh + " " + std::string(row->cause));
        o.reply.lines.push_back(enh + " to fix: " + std::string(row->fix));
    }
    for (auto& l : o.reply.lines) {
        l = reply_safe(l);
        if (l.size() > 500) l.resize(500);
    }
    return o;
}

Reply gave_up(Kind k, std::string_view last) {
    return make(451, reply_safe("4.4.5 " + std::string(to_string(k)) + " is throttling or unavailable (" +
                                std::string(last) + "), message not sent; try again later"));
}

Reply unknown_outcome(Kind k, std::string_view mailbox, std::string_view why) {
    // Not 4xx: the client would send it again, and the API may well have sent it.
    return make(554, reply_safe("5.4.7 Delivery status unknown: " + std::string(to_string(k)) +
                                " gave no answer after the message was handed over (" + std::string(why) +
                                "); it was not retried, to avoid a duplicate: check Sent Items of " +
                                std::string(mailbox) + " before sending it again"));
}

Reply not_sent(Kind k, std::string_view why) {
    return make(451, reply_safe("4.4.2 " + std::string(to_string(k)) + " could not be reached (" + std::string(why) +
                                "), message not sent; try again later"));
}

Reply too_big(Kind k) {
    return make(552, "5.3.4 Message size exceeds the limit of " + std::string(to_string(k)) + " (" +
                         std::to_string(max_message(k)) + " bytes" +
                         (k == Kind::graph ? ", 4 MB as base64" : "") + ")");
}

}  // namespace xo::smtp::api
