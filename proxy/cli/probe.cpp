#include "cli/probe.hpp"

#include <cstring>

#include "diagnose/diagnose.hpp"
#include "imap/parser.hpp"
#include "imap/upstream.hpp"
#include "pop3/parser.hpp"
#include "pop3/upstream.hpp"
#include "smtp/upstream.hpp"

namespace xo::cli {

long long ProbeReport::lap() {
    auto now = std::chrono::steady_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
    last = now;
    return ms;
}

void ProbeReport::add(ProbeStep s) {
    s.ms = lap();
    steps.push_back(s);
    if (on_step) on_step(steps.back());
}

void ProbeReport::ok(const std::string& step, const std::string& detail) { add({step, "ok", detail, "", "", 0}); }

void ProbeReport::failed(const std::string& step, const std::string& detail, const diagnose::Row* row,
                         const std::string& fallback_fix) {
    std::string c = row ? std::string(row->cause) : "not in the diagnosis table: see the answer above";
    std::string f = row ? std::string(row->fix)
                        : fallback_fix.empty() ? "check the connection's settings against the answer above" : fallback_fix;
    if (failed_at.empty()) {
        failed_at = step;
        cause = c;
        fix = f;
    }
    add({step, "FAILED", detail, c, f, 0});
}

long long ProbeReport::total_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
}

namespace {

// The server's words at the end of an UpstreamError detail ("... refused: 535 5.7.3 ...").
std::string server_words(const std::string& detail) {
    for (const char* mark : {"refused: ", "greeting: ", "EHLO: ", "STARTTLS: ", "CAPABILITY: ", "STLS: ", "CAPA: "}) {
        auto at = detail.rfind(mark);
        if (at != std::string::npos) return detail.substr(at + std::strlen(mark));
    }
    auto at = detail.rfind(": ");
    return at == std::string::npos ? detail : detail.substr(at + 2);
}

void explain_open_failure(ProbeReport& rep, const std::string& protocol, const net::UpstreamError& err) {
    using K = net::UpstreamError::Kind;
    const diagnose::Row* row = nullptr;
    std::string step = protocol + " ";
    switch (err.kind) {
        case K::token: step += "token"; break;   // a fresh token after a refusal
        case K::connect:
            step += "connect";
            row = diagnose::find_condition("connect");
            break;
        case K::tls:
            step += "tls";
            row = diagnose::find_condition(err.detail.find("does not offer") != std::string::npos ? "no_starttls" : "tls");
            break;
        case K::auth:
            step += "authenticate";
            row = err.detail.find("does not offer") != std::string::npos ? diagnose::find_condition("no_mechanism")
                                                                         : diagnose::match_reply(server_words(err.detail));
            break;
        case K::protocol:
        case K::none:
            // A temporary refusal of the AUTHENTICATE (IMAP "NO [UNAVAILABLE]") is still that step.
            step += err.detail.find(" refused: ") != std::string::npos ? "authenticate" : "session";
            row = diagnose::match_reply(server_words(err.detail));
            break;
    }
    rep.failed(step, err.detail, row, err.advice);
}

std::string reply_text(const smtp::Reply& r, const error_code& ec) {
    return ec ? ec.message() : std::to_string(r.code) + " " + r.text();
}

// Reports the steps of open() as they pass.
void observe(net::UpstreamBase& up, ProbeReport* rep, const std::string& protocol, const config::Connection* conn,
             const config::Upstream& where, const std::string& mailbox) {
    std::string mech = conn->sasl == config::SaslMechanism::oauthbearer ? "OAUTHBEARER" : "XOAUTH2";
    up.observe_steps([rep, &up, protocol, where, mailbox, mech](const char* step) {
        std::string s = step;
        if (s == "connect") rep->ok(protocol + " connect", where.text());
        else if (s == "tls") rep->ok(protocol + " tls", up.tls_description() + ", certificate verified for " + where.host);
        else rep->ok(protocol + " authenticate", mech + " as " + mailbox);
    });
}

awaitable<bool> test_smtp(const config::Connection* conn, ProbeOptions o, std::shared_ptr<oauth::TokenCache> cache,
                          std::shared_ptr<ssl::context> tls, ProbeReport* rep) {
    smtp::Upstream up(co_await asio::this_coro::executor, *conn, o.mailbox, cache, tls, o.hostname);
    observe(up, rep, "smtp", conn, conn->smtp, o.mailbox);
    net::UpstreamError err;
    if (!co_await up.open(err)) {
        explain_open_failure(*rep, "smtp", err);
        up.link().close();
        co_return false;
    }
    error_code ec;
    smtp::Reply r = co_await up.command("MAIL FROM:<" + o.from + ">", ec);
    if (ec || r.code != 250) {
        rep->failed("smtp MAIL FROM", "MAIL FROM:<" + o.from + "> " + reply_text(r, ec),
                    ec ? nullptr : diagnose::match_reply(reply_text(r, ec)));
        up.link().close();
        co_return false;
    }
    rep->ok("smtp MAIL FROM", "<" + o.from + ">: " + reply_text(r, ec));
    r = co_await up.command("RCPT TO:<" + o.to + ">", ec);
    if (ec || (r.code != 250 && r.code != 251)) {
        rep->failed("smtp RCPT TO", "RCPT TO:<" + o.to + "> " + reply_text(r, ec),
                    ec ? nullptr : diagnose::match_reply(reply_text(r, ec)));
        up.link().close();
        co_return false;
    }
    rep->ok("smtp RCPT TO", "<" + o.to + ">: " + reply_text(r, ec));
    r = co_await up.command("RSET", ec);
    if (ec || r.code != 250) {
        rep->failed("smtp RSET", reply_text(r, ec), nullptr);
        up.link().close();
        co_return false;
    }
    rep->ok("smtp RSET", reply_text(r, ec) + " (nothing was sent)");
    co_await up.quit();
    co_return true;
}

awaitable<bool> test_imap(const config::Connection* conn, ProbeOptions o, std::shared_ptr<oauth::TokenCache> cache,
                          std::shared_ptr<ssl::context> tls, ProbeReport* rep) {
    imap::Upstream up(co_await asio::this_coro::executor, *conn, o.mailbox, cache, tls);
    observe(up, rep, "imap", conn, conn->imap, o.mailbox);
    net::UpstreamError err;
    if (!co_await up.open(err)) {
        explain_open_failure(*rep, "imap", err);
        up.link().close();
        co_return false;
    }
    error_code ec;
    net::Link& link = up.link();
    link.queue("t1 SELECT INBOX\r\n");
    std::string exists = "?", tagged;
    bool selected = false;
    for (int i = 0; i < 200 && !ec; ++i) {
        std::string l = co_await link.read_line(65536, ec);
        if (ec) break;
        imap::ResponseLine r = imap::parse_response_line(l);
        if (r.kind == imap::ResponseLine::Kind::untagged && l.size() > 7 && l.substr(l.size() - 7) == " EXISTS")
            exists = l.substr(2, l.size() - 9);
        if (r.kind == imap::ResponseLine::Kind::tagged && r.tag == "t1") {
            selected = r.status == "OK";
            tagged = l;
            break;
        }
    }
    if (!selected) {
        std::string said = ec ? ec.message() : tagged;
        rep->failed("imap SELECT INBOX", said, ec ? nullptr : diagnose::match_reply(said.substr(std::min<std::size_t>(3, said.size()))));
        link.close();
        co_return false;
    }
    rep->ok("imap SELECT INBOX", exists + " message(s)");
    link.queue("t2 LOGOUT\r\n");
    bool bye = false;
    for (int i = 0; i < 10 && !ec; ++i) {
        std::string l = co_await link.read_line(65536, ec);
        if (!ec && l.rfind("t2 ", 0) == 0) {
            bye = true;
            break;
        }
    }
    rep->ok("imap LOGOUT", bye ? "OK" : "connection closed");
    link.close();
    co_return true;
}

awaitable<bool> test_pop3(const config::Connection* conn, ProbeOptions o, std::shared_ptr<oauth::TokenCache> cache,
                          std::shared_ptr<ssl::context> tls, ProbeReport* rep) {
    pop3::Upstream up(co_await asio::this_coro::executor, *conn, o.mailbox, cache, tls);
    observe(up, rep, "pop3", conn, conn->pop3, o.mailbox);
    net::UpstreamError err;
    if (!co_await up.open(err)) {
        explain_open_failure(*rep, "pop3", err);
        up.link().close();
        co_return false;
    }
    error_code ec;
    pop3::Response r = co_await up.command("STAT", false, ec);
    std::string said = (r.status.kind == pop3::Status::Kind::ok ? "+OK " : "-ERR ") +
                       (r.status.code.empty() ? "" : "[" + r.status.code + "] ") + r.status.text;
    if (ec || r.status.kind != pop3::Status::Kind::ok) {
        if (ec) said = ec.message();
        rep->failed("pop3 STAT", said, ec ? nullptr : diagnose::match_reply(said));
        up.link().close();
        co_return false;
    }
    rep->ok("pop3 STAT", said);
    r = co_await up.command("QUIT", false, ec);
    rep->ok("pop3 QUIT", ec ? "connection closed" : "+OK " + r.status.text);
    up.link().close();
    co_return true;
}

}  // namespace

namespace {

// send_via graph / gmail_api: the API's own token. Neither API has a dry run,
// so nothing more can be checked without sending a message.
awaitable<bool> test_api(const config::Connection* conn, const ProbeOptions& o,
                         std::shared_ptr<oauth::TokenCache> cache, ProbeReport* rep) {
    if (!conn->uses_api()) {
        rep->failed("api", "connection " + conn->name + " has send_via smtp", nullptr,
                    "set send_via: graph, gmail_api or auto on connection " + conn->name);
        co_return false;
    }
    std::string source = conn->api_token_source();
    oauth::TokenResult tr = co_await cache->get(source, o.mailbox);
    if (!tr.ok()) {
        const auto& e = tr.error;
        rep->failed("api token", e.summary() + " (scope " + conn->api_scope + ")",
                    diagnose::match_token_error(e.code, e.error, e.description));
        co_return false;
    }
    const bool graph = conn->send_via != config::SendVia::gmail_api;
    rep->ok("api token", "scope " + conn->api_scope + " for " +
                             (graph ? conn->graph_url + "/v1.0/users/" + o.mailbox + "/sendMail"
                                    : conn->gmail_api_url + "/upload/gmail/v1/users/" + o.mailbox + "/messages/send") +
                             " (nothing sent: the API has no dry run; a missing " +
                             (graph ? "Mail.Send permission or mailbox grant" : "Gmail API enablement") +
                             " shows at the first message, with its fix)");
    co_return true;
}

}  // namespace

awaitable<void> run_probe(config::Connection conn_copy, ProbeOptions o, std::shared_ptr<oauth::TokenCache> cache,
                          std::shared_ptr<ssl::context> tls, std::shared_ptr<ProbeReport> report) {
    const config::Connection* conn = &conn_copy;
    ProbeReport* rep = report.get();
    rep->started = rep->last = std::chrono::steady_clock::now();
    for (const auto& p : o.protocols) {
        if (p == "api") continue;
        const config::Upstream& where = p == "smtp" ? conn->smtp : p == "imap" ? conn->imap : conn->pop3;
        if (!where.set())
            rep->failed(p, "connection " + conn->name + " has no " + p + " server", nullptr,
                        "add '" + p + ": HOST:PORT' to connection " + conn->name);
    }
    if (!rep->failed_at.empty()) co_return;
    oauth::TokenResult tr = co_await cache->get(conn->name, o.mailbox);
    if (!tr.ok()) {
        const auto& e = tr.error;
        rep->failed("token", e.summary() + " (from " + conn->token_url + ")",
                    diagnose::match_token_error(e.code, e.error, e.description));
        co_return;
    }
    auto left = std::chrono::duration_cast<std::chrono::seconds>(tr.token->expires_wall - std::chrono::system_clock::now());
    rep->ok("token", "obtained from " + conn->token_url + ", expires in " + std::to_string(left.count()) + " s");
    for (const auto& p : o.protocols) {
        bool ok = false;
        if (p == "api") ok = co_await test_api(conn, o, cache, rep);
        else if (p == "smtp") ok = co_await test_smtp(conn, o, cache, tls, rep);
        else if (p == "imap") ok = co_await test_imap(conn, o, cache, tls, rep);
        else ok = co_await test_pop3(conn, o, cache, tls, rep);
        if (ok) rep->worked.push_back(p);
    }
}

// The mailbox to test with when none is given: the first user's or sender's of the connection.
std::string default_mailbox(const config::Config& cfg, const std::string& name) {
    for (const auto& u : cfg.users)
        if (u.connection == name) return u.mailbox;
    for (const auto& s : cfg.senders)
        if (s.connection == name) {
            if (!s.mailbox.empty()) return s.mailbox;
            if (s.pattern.find('*') == std::string::npos) return s.pattern;
        }
    return "";
}

}  // namespace xo::cli
