// The token endpoint's answer (oauth::parse_token_response): the HTTP status
// from the first byte, the body from the rest. Checks: a token is never empty
// and its lifetime within 30 days; a failure always names an error.
#include "fuzz_util.hpp"
#include "oauth/provider.hpp"

using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    static const unsigned kStatus[] = {200, 200, 200, 400, 401, 403, 429, 500, 503, 302};
    xo::oauth::HttpResult http;
    http.ok = true;
    http.status = kStatus[input.byte() % 10];
    http.body = std::string(input.rest());
    auto r = xo::oauth::parse_token_response(http);
    if (r.ok()) {
        check(!r.token->access_token.empty(), "empty access token accepted");
        auto life = r.token->expires_wall - r.token->obtained;
        check(life > std::chrono::seconds(0) && life <= std::chrono::hours(24 * 30), "token lifetime out of range");
    } else {
        check(!r.error.error.empty(), "a failure without an error");
        (void)r.error.summary();
    }
    return 0;
}
