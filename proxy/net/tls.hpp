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

// Client contexts made here also keep TLS sessions for resumption: the
// tickets a peer sends are kept per peer ("host:port", at most 4 each, each
// offered once as RFC 8446 C.4 asks), and offer_session() puts one on the next
// handshake to that peer, which then skips the certificate exchange (the
// server still proves it holds the ticket key; verification settings apply).
std::shared_ptr<ssl::context> make_client_context(const std::string& ca_file);

// Before a client handshake on `ssl` (of a context from make_client_context):
// offers a kept session of `peer`, and files the tickets of this handshake under it.
void offer_session(SSL* ssl, const std::string& peer);

// Sets SNI (for names) and the expected host name or IP address on `ssl`.
// Returns false when OpenSSL refuses the name.
bool verify_peer(SSL* ssl, const std::string& host);

// A server context with the admin's certificate chain and key; throws on error.
std::shared_ptr<ssl::context> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file);

// The last verification failure of `ssl` in words ("certificate verify failed:
// hostname mismatch"), or "" when verification passed.
std::string verify_error(SSL* ssl);

// This thread's OpenSSL error queue in words: its first (oldest) error, as
// "error:0480006C:PEM routines::no start line", or "unknown OpenSSL error"
// when the queue is empty. Empties the queue, so that a stale error is never
// blamed on a later call.
std::string openssl_error();

}  // namespace xo::net
