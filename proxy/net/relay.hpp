// After authentication IMAP and POP3 sessions become a byte relay: two
// coroutines on the session's strand, one per direction, each reading what
// the peer sent (bytes already buffered first) and writing it on. When either
// side ends, both links are closed and relay() returns with the byte counts.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "asio.hpp"
#include "net/link.hpp"

namespace xo::net {

struct RelayResult {
    uint64_t client_to_upstream = 0, upstream_to_client = 0;
    std::string ended_by;   // "client closed", "upstream closed", "client timeout", ...
};

// Both links must have empty write queues. `idle` bounds each direction's wait
// (IMAP IDLE needs about 30 minutes).
awaitable<RelayResult> relay(Link& client, Link& upstream, std::chrono::steady_clock::duration idle);

}  // namespace xo::net
