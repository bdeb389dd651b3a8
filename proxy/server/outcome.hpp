// What a local login came to, as the protocol machines see it (no I/O here):
// the session reports it, each machine turns it into its protocol's reply.
#pragma once

namespace xo::server {

enum class LoginOutcome {
    ok,                     // password right, upstream open
    bad_credentials,        // unknown login or wrong password
    busy,                   // the password-hashing queue is full: try again later
    upstream_unavailable,   // password right, but no token or no upstream session
};

}  // namespace xo::server
