#include "smtp/sasl.hpp"

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
    std::string authzid;
    for (char c : user) {
        if (c == ',') authzid += "=2C";
        else if (c == '=') authzid += "=3D";
        else authzid += c;
    }
    std::string raw = "n,a=" + authzid + ",\x01" "host=" + std::string(host) + "\x01" "port=" + std::to_string(port) +
                      "\x01" "auth=Bearer " + std::string(token) + "\x01\x01";
    return util::base64_encode(raw);
}

std::optional<PlainCredentials> decode_plain(std::string_view base64) {
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
