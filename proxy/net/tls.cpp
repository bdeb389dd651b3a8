#include "net/tls.hpp"

#include <openssl/x509v3.h>

#include <stdexcept>

namespace xo::net {

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

}  // namespace xo::net
