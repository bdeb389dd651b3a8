// SASL decoding of what clients and upstreams send: AUTH PLAIN and LOGIN
// answers, the mechanism argument, and the JSON error challenge of XOAUTH2 /
// OAUTHBEARER. The input is used raw (as base64 text) and, so that the
// decoded side is explored too, base64-encoded first.
#include "fuzz_util.hpp"
#include "sasl/sasl.hpp"
#include "util/base64.hpp"

using namespace xo::sasl;
using xo::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::string_view raw(reinterpret_cast<const char*>(data), size);
    std::string encoded = xo::util::base64_encode(raw);
    for (std::string_view s : {raw, std::string_view(encoded)}) {
        if (auto p = decode_plain(s)) {
            check(!p->authcid.empty(), "PLAIN with an empty authcid accepted");
            check(p->authzid.empty() || p->authzid == p->authcid, "PLAIN for someone else accepted");
        }
        (void)decode_login_field(s);
        (void)parse_error_challenge(s);
        auto m = split_mechanism(s);
        for (char c : m.mechanism) check(!(c >= 'a' && c <= 'z'), "mechanism not uppercased");
    }
    std::string_view half = raw.substr(0, size / 2), other = raw.substr(size / 2);
    (void)xoauth2_initial_response(half, other);
    (void)oauthbearer_initial_response(half, other, uint16_t(size), other);
    return 0;
}
