// The milter's decisions, without libmilter: which connection and mailbox a
// sender maps to (the SASL login Postfix passes in {auth_authen}, else the
// envelope sender through senders:), and whether mail should be taken now,
// given the proxy's last /status. Pure functions over the config and a snapshot.
#pragma once
#include <chrono>
#include <map>
#include <string>

#include "config/config.hpp"

namespace xo::policy {

struct HealthSnapshot {
    bool reachable = false;                       // the last poll got an answer
    std::string error;                            // why not, when unreachable
    std::map<std::string, std::string> state;     // connection -> active | idle | failing | expired
    std::map<std::string, std::string> detail;    // connection -> "AADSTS7000215 invalid_client: ..."
};
// Parses the proxy's /status JSON; a body that is not that JSON gives reachable=false.
HealthSnapshot parse_status(const std::string& body);

struct Decision {
    enum class Action { accept, reject, tempfail } action = Action::accept;
    std::string rcode, xcode, message;            // for smfi_setreply when not accept
    const config::Connection* connection = nullptr;
    std::string mailbox;
    std::string reason;                           // for the log line
};

Decision decide(const config::Config& cfg, const std::string& auth_authen, const std::string& envelope_from,
                const HealthSnapshot& health);

// "Name <a@b.c>" or "a@b.c (x)" -> "a@b.c"; "" when there is none.
std::string header_address(const std::string& value);

}  // namespace xo::policy
