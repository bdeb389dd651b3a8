#include "sasl/sasl.hpp"

#include <cctype>
#include <nlohmann/json.hpp>

#include "util/base64.hpp"

namespace xo::sasl {

std::string xoauth2_initial_response(std::string_view user, std::string_view token) {
    std::string raw = "user=";
    raw.append(user);
    raw.append("\x01" "auth=Bearer ");
    raw.append(token);
    raw.append("\x01\x01");
    return util::base64_encode(raw);
}

std::string oauthbearer_initial_response(std::string_view user, std::string_view host, uint16_t port,
                                         std::string_view token) {
    std::string raw = "n,a=";
    for (char c : user) {
        if (c == ',') raw += "=2C";
        else if (c == '=') raw += "=3D";
        else raw += c;
    }
    raw += ",\x01" "host=";
    raw.append(host);
    raw += "\x01" "port=" + std::to_string(port) + "\x01" "auth=Bearer ";
    raw.append(token);
    raw += "\x01\x01";
    return util::base64_encode(raw);
}

MechanismArg split_mechanism(std::string_view arg) {
    MechanismArg m;
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    auto sp = arg.find(' ');
    for (char c : arg.substr(0, sp)) m.mechanism += char(std::toupper((unsigned char)c));
    if (sp != std::string_view::npos) {
        std::string_view rest = arg.substr(sp + 1);
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
        m.initial = std::string(rest);
        m.has_initial = !rest.empty();
    }
    return m;
}

std::optional<PlainCredentials> decode_plain(std::string_view base64) {
    if (base64 == "=") return std::nullopt;
    auto raw = util::base64_decode(base64);
    if (!raw) return std::nullopt;
    auto a = raw->find('\0');
    if (a == std::string::npos) return std::nullopt;
    auto b = raw->find('\0', a + 1);
    if (b == std::string::npos || raw->find('\0', b + 1) != std::string::npos) return std::nullopt;
    PlainCredentials c{raw->substr(0, a), raw->substr(a + 1, b - a - 1), raw->substr(b + 1)};
    if (c.authcid.empty()) return std::nullopt;
    if (!c.authzid.empty() && c.authzid != c.authcid) return std::nullopt;
    return c;
}

std::optional<std::string> decode_login_field(std::string_view base64) {
    if (base64 == "=") return std::string();
    auto raw = util::base64_decode(base64);
    if (!raw || raw->find('\0') != std::string::npos) return std::nullopt;
    return raw;
}

std::optional<ErrorChallenge> parse_error_challenge(std::string_view base64) {
    auto raw = util::base64_decode(base64);
    if (!raw) return std::nullopt;
    auto j = nlohmann::json::parse(*raw, nullptr, false);
    if (!j.is_object() || !j.contains("status")) return std::nullopt;
    ErrorChallenge e;
    const auto& s = j["status"];
    if (s.is_string()) e.status = s.get<std::string>();
    else if (s.is_number_integer()) e.status = std::to_string(s.get<long long>());
    else return std::nullopt;
    if (j.contains("schemes") && j["schemes"].is_string()) e.schemes = j["schemes"].get<std::string>();
    if (j.contains("scope") && j["scope"].is_string()) e.scope = j["scope"].get<std::string>();
    e.retry_with_fresh_token = e.status == "400" || e.status == "401";
    return e;
}

}  // namespace xo::sasl
