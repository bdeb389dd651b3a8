#include "diagnose/expiry.hpp"

#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>

#include "diagnose/diagnose.hpp"
#include "oauth/jwt.hpp"
#include "oauth/token_store.hpp"

namespace xo::diagnose {
namespace {

std::string day(long long t) {
    std::time_t tt = std::time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

bool interactive(const config::Connection& c) {
    return c.flow == config::Flow::authorization_code || c.flow == config::Flow::device_code;
}

}  // namespace

long long unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<CredentialExpiry> credential_expiries(const config::Config& cfg) {
    std::vector<CredentialExpiry> out;
    bool any_interactive = false;
    for (const auto& [name, conn] : cfg.connections) {
        any_interactive = any_interactive || interactive(conn);
        if (conn.flow == config::Flow::certificate && !conn.certificate_file.empty()) {
            CredentialExpiry e{name, "certificate", "", "certificate " + conn.certificate_file, 0, ""};
            try {
                auto cert = oauth::load_certificate_file(conn.certificate_file);
                std::tm tm{};
                if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1) e.expires_at = timegm(&tm);
                else e.problem = "cannot read its notAfter";
            } catch (const std::exception& ex) {
                e.problem = ex.what();
            }
            out.push_back(std::move(e));
        }
        if (conn.secret_expires)
            out.push_back({name, "secret", "", "client secret", conn.secret_expires, ""});
    }
    // Refresh tokens: only when the store exists (never create it or its key here).
    struct stat st{};
    if (any_interactive && !cfg.tokens.store.empty() && ::stat(cfg.tokens.store.c_str(), &st) == 0) {
        try {
            oauth::FileTokenStore store(cfg.tokens.store);
            for (const auto& [key, g] : store.all()) {
                auto nl = key.find('\n');
                std::string conn = key.substr(0, nl), mailbox = nl == std::string::npos ? "" : key.substr(nl + 1);
                const config::Connection* c = cfg.find_connection(conn);
                if (!c || !interactive(*c)) continue;
                long long last = g.updated ? g.updated : g.obtained;
                long long idle = c->provider == config::Provider::google ? kGoogleRefreshIdleSeconds : kRefreshIdleSeconds;
                out.push_back({conn, "refresh_token", mailbox, "refresh token of " + mailbox, last + idle, ""});
            }
        } catch (const std::exception& ex) {
            for (const auto& [name, conn] : cfg.connections)
                if (interactive(conn))
                    out.push_back({name, "refresh_token", "", "refresh tokens", 0, std::string("token store: ") + ex.what()});
        }
    }
    return out;
}

std::string describe(const CredentialExpiry& e, long long now) {
    std::string s = e.what + " of connection " + e.connection;
    if (e.expires_at == 0) return s + ": expiry unknown (" + e.problem + ")";
    long long left = e.expires_at - now;
    long long days = (left >= 0 ? left : -left) / 86400;
    if (left < 0) return s + " expired " + day(e.expires_at) + " (" + std::to_string(days) + " days ago)";
    return s + " expires " + day(e.expires_at) + " (in " + std::to_string(days) + " days)";
}

std::string expiry_advice(const CredentialExpiry& e) {
    const char* name = e.kind == "certificate" ? "certificate_expiring"
                       : e.kind == "secret"    ? "secret_expiring"
                                               : "refresh_token_idle";
    const Row* r = find_condition(name);
    return r ? advice(*r) : "";
}

}  // namespace xo::diagnose
