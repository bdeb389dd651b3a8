#include "oauth/provider.hpp"

#include <nlohmann/json.hpp>

#include "net/tls.hpp"
#include "util/text.hpp"

namespace xo::oauth {

std::string ProviderError::summary() const {
    std::string s;
    if (!code.empty()) s += code + " ";
    s += error.empty() ? "error" : error;
    if (http_status) s += " (HTTP " + std::to_string(http_status) + ")";
    if (!description.empty()) s += ": " + description;
    return s;
}

namespace {

// Microsoft's error_description carries "AADSTS...: text\r\nTrace ID: ...": keep the
// text, at most 400 bytes cut on a character boundary.
std::string first_line(std::string s) {
    auto p = s.find_first_of("\r\n");
    if (p != std::string::npos) s.resize(p);
    return util::truncate_utf8(s, 400);
}

std::string aadsts_code(const nlohmann::json& j, const std::string& description) {
    if (j.contains("error_codes") && j["error_codes"].is_array() && !j["error_codes"].empty() &&
        j["error_codes"][0].is_number_integer())
        return "AADSTS" + std::to_string(j["error_codes"][0].get<long long>());
    if (description.rfind("AADSTS", 0) == 0) {
        auto end = description.find_first_not_of("0123456789", 6);
        return description.substr(0, end);
    }
    return "";
}

}  // namespace

TokenResult parse_token_response(const HttpResult& http) {
    TokenResult r;
    auto& e = r.error;
    if (!http.ok) {
        e.error = "network";
        e.description = http.error;
        e.transient = true;
        return r;
    }
    e.http_status = http.status;
    nlohmann::json j = nlohmann::json::parse(http.body, nullptr, false);
    if (http.status == 200 && j.is_object() && j.contains("access_token") && j["access_token"].is_string()) {
        Token t;
        t.access_token = j["access_token"].get<std::string>();
        long long expires_in = 3600;
        if (j.contains("expires_in")) {
            if (j["expires_in"].is_number_integer()) expires_in = j["expires_in"].get<long long>();
            else if (j["expires_in"].is_string()) expires_in = std::atoll(j["expires_in"].get<std::string>().c_str());
        }
        if (expires_in <= 0 || expires_in > 30 * 86400) expires_in = 3600;
        if (j.contains("scope") && j["scope"].is_string()) t.scope = j["scope"].get<std::string>();
        if (j.contains("refresh_token") && j["refresh_token"].is_string()) t.refresh_token = j["refresh_token"].get<std::string>();
        t.obtained = std::chrono::system_clock::now();
        t.expires_wall = t.obtained + std::chrono::seconds(expires_in);
        t.expires_at = std::chrono::steady_clock::now() + std::chrono::seconds(expires_in);
        if (t.access_token.empty()) {
            e.error = "bad_response";
            e.description = "empty access_token";
            return r;
        }
        r.token = std::move(t);
        return r;
    }
    // An empty "error" names nothing: treated as no OAuth error body.
    if (j.is_object() && j.contains("error") && j["error"].is_string() && !j["error"].get_ref<const std::string&>().empty()) {
        e.error = j["error"].get<std::string>();
        std::string desc;
        if (j.contains("error_description") && j["error_description"].is_string())
            desc = j["error_description"].get<std::string>();
        e.code = aadsts_code(j, desc);
        e.description = first_line(desc);
    } else {
        e.error = http.status >= 500 ? "server_error" : "http_error";
        e.description = "HTTP " + std::to_string(http.status) + " without an OAuth error body";
    }
    e.transient = http.status >= 500 || http.status == 429 || e.error == "temporarily_unavailable";
    return r;
}

}  // namespace xo::oauth
