#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>

namespace xo::net {

namespace {

// Sessions kept by one client context, per peer.
struct SessionCache {
    static constexpr std::size_t kPerPeer = 4;
    std::mutex mu;
    std::map<std::string, std::deque<SSL_SESSION*>> by_peer;
    ~SessionCache() {
        for (auto& [peer, q] : by_peer)
            for (SSL_SESSION* s : q) SSL_SESSION_free(s);
    }
};

void free_cache(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<SessionCache*>(ptr); }
void free_peer(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<std::string*>(ptr); }

int ctx_index() {
    static const int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_cache);
    return i;
}
int ssl_index() {
    static const int i = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_peer);
    return i;
}

// OpenSSL hands over each new session (TLS 1.3: each ticket, read after the handshake).
int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* cache = static_cast<SessionCache*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
    auto* peer = static_cast<std::string*>(SSL_get_ex_data(ssl, ssl_index()));
    if (!cache || !peer || !SSL_SESSION_is_resumable(session)) return 0;
    // A copy: OpenSSL marks the connection's own session not resumable when
    // the connection ends without a TLS close_notify (an upstream dropped).
    SSL_SESSION* copy = SSL_SESSION_dup(session);
    if (!copy) return 0;
    std::lock_guard lock(cache->mu);
    auto& q = cache->by_peer[*peer];
    q.push_back(copy);
    while (q.size() > SessionCache::kPerPeer) {
        SSL_SESSION_free(q.front());
        q.pop_front();
    }
    return 0;   // OpenSSL keeps (and frees) its own reference
}

}  // namespace

void offer_session(SSL* ssl, const std::string& peer) {
    auto* cache = static_cast<SessionCache*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
    if (!cache) return;
    delete static_cast<std::string*>(SSL_get_ex_data(ssl, ssl_index()));
    SSL_set_ex_data(ssl, ssl_index(), new std::string(peer));
    SSL_SESSION* s = nullptr;
    {
        std::lock_guard lock(cache->mu);
        auto it = cache->by_peer.find(peer);
        if (it != cache->by_peer.end() && !it->second.empty()) {
            s = it->second.back();   // the newest: the least likely to have expired
            it->second.pop_back();
        }
    }
    if (s) {
        SSL_set_session(ssl, s);   // takes its own reference
        SSL_SESSION_free(s);
    }
}

std::shared_ptr<ssl::context> make_client_context(const std::string& ca_file) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_default_verify_paths();
    if (!ca_file.empty()) {
        error_code ec;
        ctx->load_verify_file(ca_file, ec);
        if (ec) throw std::runtime_error("cannot load CA file " + ca_file + ": " + ec.message());
    }
    ctx->set_verify_mode(ssl::verify_peer);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_ex_data(native, ctx_index(), new SessionCache);
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(native, on_new_session);
    return ctx;
}

bool verify_peer(SSL* ssl, const std::string& host) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    if (!ec) return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host.c_str()) != 1) return false;
    return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
}

std::shared_ptr<ssl::context> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    error_code ec;
    ctx->use_certificate_chain_file(cert_file, ec);
    if (ec) throw std::runtime_error("cannot load certificate " + cert_file + ": " + ec.message());
    ctx->use_private_key_file(key_file, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("cannot load private key " + key_file + ": " + ec.message());
    return ctx;
}

std::string verify_error(SSL* ssl) {
    long rc = SSL_get_verify_result(ssl);
    if (rc == X509_V_OK) return "";
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(rc);
}

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

}  // namespace xo::net
