// Pieces the console's two files share (server/console.cpp: pages, sign-in,
// connections, Test; server/console_flows.cpp: Authorize and the OAuth
// callback). Internal to the console.
#pragma once
#include <openssl/crypto.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/probe.hpp"
#include "config/config.hpp"
#include "oauth/http_client.hpp"
#include "server/console.hpp"

namespace xo::server::console_detail {

namespace http = beast::http;
using json = nlohmann::json;

inline constexpr const char* kCookie = "xo_console";
inline constexpr auto kSessionLifetime = std::chrono::hours(8);
inline constexpr std::size_t kMaxSessions = 64;

std::string random_b64url(std::size_t n);
bool same(const std::string& a, const std::string& b);
void reply(HttpResponse& res, http::status st, std::string content_type, std::string body);
void reply_json(HttpResponse& res, http::status st, const json& j);
std::string replace(std::string text, const std::string& what, const std::string& with);
std::string html_escape(const std::string& s);
bool interactive(const config::Connection& c);
std::string pkce_challenge(const std::string& verifier);
oauth::Form device_code_form(const config::Connection& conn);
oauth::Form device_poll_form(const config::Connection& conn, const std::string& device_code);
oauth::Form code_exchange_form(const config::Connection& conn, const std::string& code, const std::string& redirect,
                               const std::string& verifier);
std::string authorize_url(const config::Connection& conn, const std::string& redirect, const std::string& state,
                          const std::string& verifier, const std::string& mailbox);
json probe_json(const cli::ProbeReport& rep, const std::string& name, const std::string& mailbox,
                const std::string& protocol);
json error_json(const std::string& error, const std::string& advice = "");
awaitable<bool> verify(std::string password, std::string hash);
awaitable<oauth::HttpResult> post_form(std::string url, oauth::Form form, std::shared_ptr<ssl::context> tls);
std::string mailbox_for(const config::Config& cfg, const std::string& name, const std::string& body);

}  // namespace xo::server::console_detail
