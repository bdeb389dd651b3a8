#include "auth/password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <charconv>
#include <istream>
#include <iterator>
#include <ostream>
#include <optional>
#include <stdexcept>
#include <vector>

#include "util/base64.hpp"

namespace xo::auth {
namespace {

constexpr int kLogN = 14, kR = 8, kP = 1;
constexpr std::size_t kSaltLen = 16, kHashLen = 32;
constexpr uint64_t kMaxMem = 256ull * 1024 * 1024;   // scrypt memory bound: ln=20,r=1 or ln=17,r=8

struct Parsed {
    std::string scheme;
    uint64_t ln = 0, r = 0, p = 0, iter = 0;
    std::string salt, hash;
};

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        auto p = s.find(sep, start);
        out.push_back(s.substr(start, p - start));
        if (p == std::string_view::npos) break;
        start = p + 1;
    }
    return out;
}

bool number(std::string_view s, uint64_t& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && ptr == s.data() + s.size();
}

std::optional<Parsed> parse(std::string_view h) {
    auto parts = split(h, '$');   // "", scheme, params, salt, hash
    if (parts.size() != 5 || !parts[0].empty()) return std::nullopt;
    Parsed p;
    p.scheme = std::string(parts[1]);
    for (auto kv : split(parts[2], ',')) {
        auto eq = kv.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        uint64_t v;
        if (!number(kv.substr(eq + 1), v)) return std::nullopt;
        auto k = kv.substr(0, eq);
        if (k == "ln") p.ln = v;
        else if (k == "r") p.r = v;
        else if (k == "p") p.p = v;
        else if (k == "i") p.iter = v;
        else return std::nullopt;
    }
    auto salt = util::base64_decode(parts[3]);
    auto hash = util::base64_decode(parts[4]);
    if (!salt || !hash || salt->size() < 8 || hash->size() < 16) return std::nullopt;
    p.salt = *salt;
    p.hash = *hash;
    if (p.scheme == "scrypt") {
        if (p.ln < 10 || p.ln > 20 || p.r < 1 || p.r > 32 || p.p < 1 || p.p > 16) return std::nullopt;
        if (128 * p.r * ((uint64_t(1) << p.ln) + p.p) > kMaxMem) return std::nullopt;   // derive() would refuse it
    } else if (p.scheme == "pbkdf2-sha256") {
        if (p.iter < 1000 || p.iter > 10000000) return std::nullopt;
    } else {
        return std::nullopt;
    }
    return p;
}

std::string derive(const Parsed& p, std::string_view password) {
    std::string out(p.hash.size(), '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    auto* salt = reinterpret_cast<const unsigned char*>(p.salt.data());
    int ok;
    if (p.scheme == "scrypt") {
        uint64_t n = uint64_t(1) << p.ln;
        ok = EVP_PBE_scrypt(password.data(), password.size(), salt, p.salt.size(), n, p.r, p.p,
                            kMaxMem + 1024 * 1024, o, out.size());
    } else {
        ok = PKCS5_PBKDF2_HMAC(password.data(), int(password.size()), salt, int(p.salt.size()), int(p.iter),
                               EVP_sha256(), int(out.size()), o);
    }
    if (ok != 1) throw std::runtime_error("password key derivation failed");
    return out;
}

}  // namespace

std::string hash_password(std::string_view password) {
    Parsed p;
    p.scheme = "scrypt";
    p.ln = kLogN;
    p.r = kR;
    p.p = kP;
    p.salt.resize(kSaltLen);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(p.salt.data()), int(kSaltLen)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    p.hash.resize(kHashLen);
    std::string h = derive(p, password);
    return "$scrypt$ln=" + std::to_string(kLogN) + ",r=" + std::to_string(kR) + ",p=" + std::to_string(kP) + "$" +
           util::base64_encode(p.salt) + "$" + util::base64_encode(h);
}

bool verify_password(std::string_view password, std::string_view hash) {
    auto p = parse(hash);
    if (!p) return false;
    try {
        std::string d = derive(*p, password);
        return CRYPTO_memcmp(d.data(), p->hash.data(), d.size()) == 0;
    } catch (const std::exception&) {
        return false;
    }
}

bool is_valid_hash(std::string_view hash) { return parse(hash).has_value(); }

std::string password_from_input(std::string_view input) {
    if (!input.empty() && input.back() == '\n') {
        input.remove_suffix(1);
        if (!input.empty() && input.back() == '\r') input.remove_suffix(1);
    }
    return std::string(input);
}

int hash_password_command(std::istream& in, std::ostream& out, std::ostream& err) {
    std::string input{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::string password = password_from_input(input);
    OPENSSL_cleanse(input.data(), input.size());
    if (password.empty()) {
        err << "hash-password: empty password on standard input\n";
        return 2;
    }
    out << hash_password(password) << "\n";
    OPENSSL_cleanse(password.data(), password.size());
    return 0;
}

}  // namespace xo::auth
