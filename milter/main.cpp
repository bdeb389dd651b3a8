// xoauth2-milter: checks senders for Postfix before a message is queued.
// At MAIL FROM it maps the sender ({auth_authen} when Postfix authenticated
// the client, else the envelope sender) to a connection exactly as the proxy
// does; unmapped senders are rejected (or accepted, as configured) and senders
// whose connection is failing are tempfailed, so mail stays with the sender.
// Connection health comes from the proxy's /status, polled by one thread and
// cached: callbacks never block and never fetch a token. At end of message it
// may align envelope and header From with the mailbox (Reply-To keeps the
// original) and add X-XOAUTH2-Connection.
//   xoauth2-milter --config FILE [--check]
#include <libmilter/mfapi.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <atomic>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "asio.hpp"
#include "config/config.hpp"
#include "oauth/http_client.hpp"
#include "policy/sender_policy.hpp"

namespace {

using xo::policy::Decision;

xo::config::Config g_cfg;

// The latest /status snapshot, refreshed by the poller thread.
class Health {
public:
    xo::policy::HealthSnapshot get() {
        std::lock_guard lock(mu_);
        auto s = snapshot_;
        if (s.reachable && std::chrono::steady_clock::now() - fetched_ > 3 * g_cfg.milter.status_refresh + std::chrono::seconds(2)) {
            s.reachable = false;
            s.error = "no fresh answer from " + g_cfg.milter.proxy_status;
        }
        return s;
    }
    void set(xo::policy::HealthSnapshot s) {
        std::lock_guard lock(mu_);
        if (s.reachable) fetched_ = std::chrono::steady_clock::now();
        snapshot_ = std::move(s);
    }

private:
    std::mutex mu_;
    xo::policy::HealthSnapshot snapshot_;
    std::chrono::steady_clock::time_point fetched_;
};
Health g_health;
std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_callbacks{0}, g_rejected{0}, g_tempfailed{0};

xo::awaitable<void> fetch_status(xo::oauth::HttpResult* out) {
    xo::oauth::HttpRequest req;
    req.method = "GET";
    req.url = g_cfg.milter.proxy_status;
    req.timeout = std::chrono::seconds(3);
    *out = co_await xo::oauth::http_request(std::move(req), nullptr);
}

void poll_once() {
    xo::policy::HealthSnapshot snap;
    if (g_cfg.milter.proxy_status.empty()) {
        snap.error = "no proxy_status URL (set milter.proxy_status or admin.bind)";
    } else {
        xo::asio::io_context io;
        xo::oauth::HttpResult r;
        xo::asio::co_spawn(io, fetch_status(&r), xo::asio::detached);
        io.run_for(std::chrono::seconds(5));
        if (!r.ok) snap.error = r.error.empty() ? "timeout" : r.error;
        else if (r.status != 200) snap.error = "HTTP " + std::to_string(r.status);
        else snap = xo::policy::parse_status(r.body);
    }
    if (!snap.reachable) spdlog::warn("proxy status {}: {}", g_cfg.milter.proxy_status, snap.error);
    // Each change of a connection's state, once (what an admin, and the tests, wait for).
    static std::map<std::string, std::string> last_state;   // the poller's only (main calls before it starts)
    if (snap.reachable) {
        for (const auto& [name, state] : snap.state) {
            auto it = last_state.find(name);
            if (it == last_state.end() || it->second != state)
                spdlog::info("proxy status: connection {} is {}{}", name, state,
                             it == last_state.end() ? "" : " (was " + it->second + ")");
        }
        last_state = snap.state;
    }
    g_health.set(std::move(snap));
}

void poller() {
    while (!g_stop) {
        poll_once();
        for (int i = 0; i < g_cfg.milter.status_refresh.count() * 10 && !g_stop; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

struct Priv {
    std::string from;                 // envelope sender
    Decision decision;
    std::string header_from;          // first From: header value
    bool has_reply_to = false;
};

Priv* priv(SMFICTX* ctx) {
    auto* p = static_cast<Priv*>(smfi_getpriv(ctx));
    if (!p) {
        p = new Priv;
        smfi_setpriv(ctx, p);
    }
    return p;
}

std::string strip_angles(const char* s) {
    std::string v = s ? s : "";
    if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
    return v;
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    ++g_callbacks;
    Priv* p = priv(ctx);
    *p = Priv{};
    p->from = strip_angles(argv[0]);
    const char* authen = smfi_getsymval(ctx, const_cast<char*>("{auth_authen}"));
    const char* qid = smfi_getsymval(ctx, const_cast<char*>("i"));
    p->decision = xo::policy::decide(g_cfg, authen ? authen : "", p->from, g_health.get());
    const Decision& d = p->decision;
    if (d.action == Decision::Action::accept) {
        spdlog::info("milter {} from=<{}> {} -> connection={} mailbox={}", qid ? qid : "-", p->from, d.reason,
                     d.connection ? d.connection->name : "-", d.mailbox.empty() ? "-" : d.mailbox);
        return SMFIS_CONTINUE;
    }
    bool reject = d.action == Decision::Action::reject;
    (reject ? g_rejected : g_tempfailed)++;
    spdlog::warn("milter {} from=<{}> {}: {} {} {}", qid ? qid : "-", p->from, reject ? "rejected" : "tempfailed",
                 d.rcode, d.xcode, d.reason);
    smfi_setreply(ctx, const_cast<char*>(d.rcode.c_str()), const_cast<char*>(d.xcode.c_str()),
                  const_cast<char*>(d.message.c_str()));
    return reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    Priv* p = priv(ctx);
    if (!strcasecmp(name, "From") && p->header_from.empty()) p->header_from = value ? value : "";
    if (!strcasecmp(name, "Reply-To")) p->has_reply_to = true;
    return SMFIS_CONTINUE;
}

sfsistat on_eom(SMFICTX* ctx) {
    Priv* p = priv(ctx);
    const Decision& d = p->decision;
    if (!d.connection) return SMFIS_CONTINUE;
    if (g_cfg.milter.align_from && !d.mailbox.empty()) {
        if (strcasecmp(p->from.c_str(), d.mailbox.c_str()) != 0)
            smfi_chgfrom(ctx, const_cast<char*>(("<" + d.mailbox + ">").c_str()), nullptr);
        std::string hdr_addr = xo::policy::header_address(p->header_from);
        if (strcasecmp(hdr_addr.c_str(), d.mailbox.c_str()) != 0) {
            if (!p->has_reply_to && !p->header_from.empty())
                smfi_addheader(ctx, const_cast<char*>("Reply-To"), const_cast<char*>(p->header_from.c_str()));
            std::string v = "<" + d.mailbox + ">";
            if (p->header_from.empty()) smfi_addheader(ctx, const_cast<char*>("From"), const_cast<char*>(v.c_str()));
            else smfi_chgheader(ctx, const_cast<char*>("From"), 1, const_cast<char*>(v.c_str()));
        }
    }
    if (g_cfg.milter.trace_header)
        smfi_addheader(ctx, const_cast<char*>("X-XOAUTH2-Connection"), const_cast<char*>(d.connection->name.c_str()));
    return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
    delete static_cast<Priv*>(smfi_getpriv(ctx));
    smfi_setpriv(ctx, nullptr);
    return SMFIS_CONTINUE;
}

}  // namespace

int main(int argc, char** argv) {
    auto logger = spdlog::stderr_logger_mt("xoauth2-milter");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    std::string config_path = "/etc/xoauth2-proxy/config.yaml";
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--config" || a == "-c") && i + 1 < argc) config_path = argv[++i];
        else if (a == "--check") check = true;
        else {
            std::cerr << "usage: xoauth2-milter [--config FILE] [--check]\n";
            return 2;
        }
    }
    auto loaded = xo::config::load_config(config_path);
    for (const auto& d : loaded.diagnostics) std::cerr << d.text() << "\n";
    if (!loaded.ok()) return 1;
    g_cfg = loaded.config;
    if (check) {
        std::cout << config_path << ": OK (milter socket " << g_cfg.milter.socket << ", proxy status "
                  << (g_cfg.milter.proxy_status.empty() ? "(none)" : g_cfg.milter.proxy_status) << ")\n";
        return 0;
    }
    struct smfiDesc desc {};
    desc.xxfi_name = const_cast<char*>("xoauth2-milter");
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_header = on_header;
    desc.xxfi_eom = on_eom;
    desc.xxfi_close = on_close;
    if (smfi_setconn(const_cast<char*>(g_cfg.milter.socket.c_str())) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(true) != MI_SUCCESS) {
        spdlog::critical("cannot listen on {} (libmilter)", g_cfg.milter.socket);
        return 1;
    }
    poll_once();   // a first snapshot before the first callback
    std::thread t(poller);
    spdlog::info("xoauth2-milter listening on {}, proxy status {}", g_cfg.milter.socket, g_cfg.milter.proxy_status);
    int rc = smfi_main();
    g_stop = true;
    t.join();
    spdlog::info("xoauth2-milter stopped: {} MAIL FROM callbacks, {} rejected, {} tempfailed", g_callbacks.load(),
                 g_rejected.load(), g_tempfailed.load());
    return rc == MI_SUCCESS ? 0 : 1;
}
