#include "policy/sender_policy.hpp"

#include <nlohmann/json.hpp>

namespace xo::policy {

HealthSnapshot parse_status(const std::string& body) {
    HealthSnapshot h;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("connections") || !j["connections"].is_object()) {
        h.error = "the answer is not the proxy's /status JSON";
        return h;
    }
    h.reachable = true;
    for (auto it = j["connections"].begin(); it != j["connections"].end(); ++it) {
        const auto& c = it.value();
        h.state[it.key()] = c.value("state", "unknown");
        if (c.contains("tokens") && c["tokens"].is_array())
            for (const auto& t : c["tokens"])
                if (t.contains("last_error") && t["last_error"].is_object()) {
                    const auto& e = t["last_error"];
                    std::string code = e.value("code", "");
                    h.detail[it.key()] = (code.empty() ? "" : code + " ") + e.value("error", "") + ": " +
                                         e.value("description", "");
                }
    }
    return h;
}

Decision decide(const config::Config& cfg, const std::string& auth_authen, const std::string& envelope_from,
                const HealthSnapshot& health) {
    Decision d;
    std::string connection;
    if (!auth_authen.empty()) {
        if (const config::User* u = cfg.find_user(auth_authen)) {
            connection = u->connection;
            d.mailbox = u->mailbox;
            d.reason = "login " + auth_authen;
        }
    }
    if (connection.empty()) {
        if (const config::Sender* s = cfg.find_sender(envelope_from)) {
            connection = s->connection;
            d.mailbox = s->mailbox.empty() ? envelope_from : s->mailbox;
            d.reason = "sender " + envelope_from;
        }
    }
    d.connection = connection.empty() ? nullptr : cfg.find_connection(connection);
    if (!d.connection) {
        d.reason = "sender <" + envelope_from + ">" + (auth_authen.empty() ? "" : " (login " + auth_authen + ")") +
                   " maps to no connection";
        if (cfg.milter.reject_unmapped) {
            d.action = Decision::Action::reject;
            d.rcode = "550";
            d.xcode = "5.7.1";
            d.message = "Sender <" + envelope_from + "> is not mapped to an OAuth2 connection";
        }
        return d;
    }
    if (!health.reachable) {
        d.reason += "; proxy status unreachable: " + health.error;
        if (cfg.milter.tempfail_when_unreachable) {
            d.action = Decision::Action::tempfail;
            d.rcode = "451";
            d.xcode = "4.7.0";
            d.message = "xoauth2-proxy status unavailable, try again later";
        }
        return d;
    }
    auto st = health.state.find(d.connection->name);
    if (st != health.state.end() && st->second == "failing") {
        auto det = health.detail.find(d.connection->name);
        d.action = Decision::Action::tempfail;
        d.rcode = "451";
        d.xcode = "4.7.0";
        d.message = "OAuth2 connection " + d.connection->name + " is failing, try again later";
        d.reason += "; connection " + d.connection->name + " failing" +
                    (det != health.detail.end() ? ": " + det->second : "");
    }
    return d;
}

std::string header_address(const std::string& value) {
    auto lt = value.rfind('<');
    if (lt != std::string::npos) {
        auto gt = value.find('>', lt);
        if (gt != std::string::npos) return value.substr(lt + 1, gt - lt - 1);
    }
    std::string v = value;
    auto paren = v.find('(');
    if (paren != std::string::npos) v.resize(paren);
    auto b = v.find_first_not_of(" \t\r\n");
    auto e = v.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    v = v.substr(b, e - b + 1);
    return config::is_address(v) ? v : "";
}

}  // namespace xo::policy
