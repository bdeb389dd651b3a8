// TLS client contexts that always verify: system CAs plus an optional extra CA
// file, peer certificate required, host name (or IP address) checked by
// OpenSSL itself. make_client_context() throws std::runtime_error naming the
// CA file when it cannot be loaded. verify_peer() must be called on each
// stream before its handshake.
#pragma once
#include <memory>
#include <string>

#include "asio.hpp"

namespace xo::net {

std::shared_ptr<ssl::context> make_client_context(const std::string& ca_file);

// Sets SNI (for names) and the expected host name or IP address on `ssl`.
// Returns false when OpenSSL refuses the name.
bool verify_peer(SSL* ssl, const std::string& host);

// A server context with the admin's certificate chain and key; throws on error.
std::shared_ptr<ssl::context> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file);

// The last verification failure of `ssl` in words ("certificate verify failed:
// hostname mismatch"), or "" when verification passed.
std::string verify_error(SSL* ssl);

}  // namespace xo::net
