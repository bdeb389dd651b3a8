// xo-load: the benchmarks' legacy client and XOAUTH2 client in one.
//   xo-load smtp  --port P --conc C --total M --per-session N --size BYTES [--lockstep] (--login U --password W | --direct --token-file F --mailbox A --ca CA)
//     (MAIL, RCPT and DATA go pipelined in one write; --lockstep: one at a time, as printers send)
//   xo-load login --port P --conc C --total M --login-prefix U --users K --password W
//   xo-load idle  --port P --conc C --hold SECONDS
//   xo-load imap  --port P (--login U --password W | --direct --token-file F --mailbox A --ca CA)
// Prints one JSON line: messages, bytes, seconds, p50/p99 per-message latency (ms), errors.
// With --per-session 1 the latency is the whole session's (connect, login, the message), as a
// one-message client sees it; login mode's is connect to 235 (direct: EHLO, STARTTLS, EHLO, XOAUTH2).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "asio.hpp"
#include "net/link.hpp"
#include "net/tls.hpp"
#include "smtp/parser.hpp"
#include "sasl/sasl.hpp"
#include "util/base64.hpp"

using namespace xo;
using clock_type = std::chrono::steady_clock;

namespace {

struct Options {
    std::string mode, login, password, token, mailbox = "erp@contoso.test", ca, login_prefix;
    uint16_t port = 0;
    int conc = 1, total = 1, per_session = 10, users = 1, hold = 10;
    std::size_t size = 10240;
    bool direct = false;
    bool lockstep = false;   // smtp: MAIL, RCPT, DATA each waiting for its reply (else pipelined)
};

struct Stats {
    uint64_t messages = 0, bytes = 0, errors = 0;
    std::vector<double> latency_ms;
    std::string first_error;
};

Options g;
std::string g_message;   // dot-stuffed, ends with CRLF.CRLF
std::atomic<int> g_next{0};
std::shared_ptr<ssl::context> g_tls;

awaitable<smtp::Reply> reply(net::Link& l, smtp::ReplyParser& p, error_code& ec) {
    smtp::Reply r;
    for (;;) {
        std::string_view d = co_await l.read_some(ec);
        if (ec) co_return r;
        std::string_view rest = d;
        auto st = p.feed(rest, r);
        l.consume(d.size() - rest.size());
        if (st == smtp::ReplyParser::Status::reply) co_return r;
        if (st == smtp::ReplyParser::Status::error) {
            ec = asio::error::invalid_argument;
            co_return r;
        }
    }
}

awaitable<smtp::Reply> cmd(net::Link& l, smtp::ReplyParser& p, const std::string& line, error_code& ec) {
    l.queue(line + "\r\n");
    co_return co_await reply(l, p, ec);
}

// Connect and authenticate (plain AUTH PLAIN to the proxy, or STARTTLS + XOAUTH2 direct).
awaitable<bool> smtp_open(net::Link& l, smtp::ReplyParser& p, const std::string& login, Stats& st) {
    error_code ec;
    auto fail = [&](const std::string& what) {
        ++st.errors;
        if (st.first_error.empty()) st.first_error = what + (ec ? ": " + ec.message() : "");
        return false;
    };
    co_await l.connect("127.0.0.1", g.port, ec);
    if (ec) co_return fail("connect");
    auto r = co_await reply(l, p, ec);
    if (ec || r.code != 220) co_return fail("greeting");
    r = co_await cmd(l, p, "EHLO load.test", ec);
    if (ec || r.code != 250) co_return fail("EHLO");
    if (g.direct) {
        r = co_await cmd(l, p, "STARTTLS", ec);
        if (ec || r.code != 220) co_return fail("STARTTLS");
        co_await l.start_tls(false, "localhost", ec);
        if (ec) co_return fail("TLS");
        r = co_await cmd(l, p, "EHLO load.test", ec);
        if (ec || r.code != 250) co_return fail("EHLO2");
        r = co_await cmd(l, p, "AUTH XOAUTH2", ec);
        if (!ec && r.code == 334) r = co_await cmd(l, p, sasl::xoauth2_initial_response(g.mailbox, g.token), ec);
    } else {
        std::string plain = std::string("\0", 1) + login + std::string("\0", 1) + g.password;
        r = co_await cmd(l, p, "AUTH PLAIN " + util::base64_encode(plain), ec);
    }
    if (ec || r.code != 235) co_return fail("AUTH " + std::to_string(r.code) + " " + r.text());
    co_return true;
}

awaitable<void> smtp_worker(Stats* st) {
    auto ex = co_await asio::this_coro::executor;
    while (g_next.fetch_add(g.per_session) < g.total) {
        net::Link l(ex, g_tls);
        smtp::ReplyParser p;
        auto session_start = clock_type::now();
        if (!co_await smtp_open(l, p, g.login, *st)) continue;
        error_code ec;
        for (int i = 0; i < g.per_session && !ec; ++i) {
            auto t0 = g.per_session == 1 ? session_start : clock_type::now();
            const std::string mail = "MAIL FROM:<" + g.mailbox + "> SIZE=" + std::to_string(g.size);
            smtp::Reply r1, r2, r3;
            if (g.lockstep) {   // one command at a time, each reply awaited (no PIPELINING)
                r1 = co_await cmd(l, p, mail, ec);
                if (!ec && r1.code == 250) r2 = co_await cmd(l, p, "RCPT TO:<sink@contoso.test>", ec);
                if (!ec && r2.code == 250) r3 = co_await cmd(l, p, "DATA", ec);
            } else {
                l.queue(mail + "\r\nRCPT TO:<sink@contoso.test>\r\nDATA\r\n");
                r1 = co_await reply(l, p, ec);
                r2 = co_await reply(l, p, ec);
                r3 = co_await reply(l, p, ec);
            }
            if (ec || r1.code != 250 || r2.code != 250 || r3.code != 354) {
                ++st->errors;
                if (st->first_error.empty()) st->first_error = "transaction " + std::to_string(r1.code) + "/" + std::to_string(r2.code) + "/" + std::to_string(r3.code);
                break;
            }
            co_await l.write(g_message, ec);
            auto r = co_await reply(l, p, ec);
            if (ec || r.code != 250) {
                ++st->errors;
                if (st->first_error.empty()) st->first_error = "end of data " + std::to_string(r.code) + " " + r.text();
                break;
            }
            ++st->messages;
            st->bytes += g.size;
            st->latency_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        }
        if (!ec) co_await cmd(l, p, "QUIT", ec);
        l.close();
    }
}

awaitable<void> login_worker(Stats* st) {
    auto ex = co_await asio::this_coro::executor;
    int n;
    while ((n = g_next.fetch_add(1)) < g.total) {
        net::Link l(ex, g_tls);
        smtp::ReplyParser p;
        std::string login = g.users > 1 ? g.login_prefix + std::to_string(n % g.users) : g.login_prefix;
        auto t0 = clock_type::now();
        if (!co_await smtp_open(l, p, login, *st)) continue;
        ++st->messages;
        st->latency_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        error_code ec;
        co_await cmd(l, p, "QUIT", ec);
        l.close();
    }
}

awaitable<void> idle_worker(Stats* st) {
    auto ex = co_await asio::this_coro::executor;
    net::Link l(ex, g_tls);
    smtp::ReplyParser p;
    error_code ec;
    co_await l.connect("127.0.0.1", g.port, ec);
    if (!ec) {
        auto r = co_await reply(l, p, ec);
        if (!ec && r.code == 220) ++st->messages;
        else ++st->errors;
    } else {
        ++st->errors;
    }
    asio::steady_timer t(ex, std::chrono::seconds(g.hold));
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    l.close();
}

awaitable<void> imap_worker(Stats* st) {
    auto ex = co_await asio::this_coro::executor;
    net::Link l(ex, g_tls);
    error_code ec;
    co_await l.connect("127.0.0.1", g.port, ec);
    if (g.direct && !ec) co_await l.start_tls(false, "localhost", ec);
    std::string greeting = co_await l.read_line(1 << 20, ec);
    if (g.direct) l.queue("a1 AUTHENTICATE XOAUTH2 " + sasl::xoauth2_initial_response(g.mailbox, g.token) + "\r\n");
    else l.queue("a1 LOGIN " + g.login + " \"" + g.password + "\"\r\n");
    std::string ok;
    while (!ec && ok.rfind("a1 ", 0) != 0) ok = co_await l.read_line(1 << 20, ec);
    l.queue("a2 SELECT INBOX\r\n");
    std::string s;
    while (!ec && s.rfind("a2 ", 0) != 0) s = co_await l.read_line(1 << 20, ec);
    auto t0 = clock_type::now();
    l.queue("a3 FETCH 1 BODY[]\r\n");
    std::string head = co_await l.read_line(1 << 20, ec);
    auto open = head.rfind('{');
    std::size_t want = open == std::string::npos ? 0 : std::stoull(head.substr(open + 1));
    std::size_t got = 0;
    while (!ec && got < want) {
        std::string_view d = co_await l.read_some(ec);
        std::size_t n = std::min(d.size(), want - got);
        l.consume(n);
        got += n;
    }
    std::string tail;
    while (!ec && tail.rfind("a3 ", 0) != 0) tail = co_await l.read_line(1 << 20, ec);
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    if (ec || got != want || want == 0 || tail.find("OK") == std::string::npos) {
        ++st->errors;
        st->first_error = "fetch: " + (ec ? ec.message() : head.substr(0, 80) + " / " + tail.substr(0, 80));
    } else {
        st->messages = 1;
        st->bytes = got;
        st->latency_ms.push_back(secs * 1000);
    }
    l.queue("a4 LOGOUT\r\n");
    co_await l.flush(ec);
    l.close();
}

double pct(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, std::size_t(p * double(v.size())))];
}

}  // namespace

// This process's CPU time (user + system): the client's share of a row's CPU.
static double own_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return sec(ru.ru_utime) + sec(ru.ru_stime);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: see the header of bench/load.cpp\n";
        return 2;
    }
    g.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--port") g.port = uint16_t(std::stoi(next()));
        else if (a == "--conc") g.conc = std::stoi(next());
        else if (a == "--total") g.total = std::stoi(next());
        else if (a == "--per-session") g.per_session = std::stoi(next());
        else if (a == "--size") g.size = std::stoull(next());
        else if (a == "--login") g.login = g.login_prefix = next();
        else if (a == "--login-prefix") g.login_prefix = next();
        else if (a == "--users") g.users = std::stoi(next());
        else if (a == "--password") g.password = next();
        else if (a == "--direct") g.direct = true;
        else if (a == "--lockstep") g.lockstep = true;
        else if (a == "--token-file") { std::ifstream f(next()); std::getline(f, g.token); }
        else if (a == "--mailbox") g.mailbox = next();
        else if (a == "--ca") g.ca = next();
        else if (a == "--hold") g.hold = std::stoi(next());
    }
    g_tls = net::make_client_context(g.ca);
    std::string body = "Subject: bench\r\n\r\n";
    while (body.size() + 80 < g.size) body += std::string(76, 'b') + "\r\n";
    g_message = body + ".\r\n";
    asio::io_context io;
    std::vector<Stats> stats(std::size_t(g.mode == "imap" ? 1 : g.conc));
    auto t0 = clock_type::now();
    for (auto& s : stats) {
        auto strand = asio::make_strand(io);
        if (g.mode == "smtp") asio::co_spawn(strand, smtp_worker(&s), asio::detached);
        else if (g.mode == "login") asio::co_spawn(strand, login_worker(&s), asio::detached);
        else if (g.mode == "idle") asio::co_spawn(strand, idle_worker(&s), asio::detached);
        else if (g.mode == "imap") asio::co_spawn(strand, imap_worker(&s), asio::detached);
    }
    io.run();
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    Stats all;
    for (auto& s : stats) {
        all.messages += s.messages;
        all.bytes += s.bytes;
        all.errors += s.errors;
        all.latency_ms.insert(all.latency_ms.end(), s.latency_ms.begin(), s.latency_ms.end());
        if (all.first_error.empty()) all.first_error = s.first_error;
    }
    nlohmann::json j = {{"mode", g.mode}, {"direct", g.direct}, {"conc", g.conc}, {"size", g.size},
                        {"messages", all.messages}, {"bytes", all.bytes}, {"seconds", secs},
                        {"per_second", all.messages / secs}, {"mb_per_second", double(all.bytes) / 1048576 / secs},
                        {"p50_ms", pct(all.latency_ms, 0.5)}, {"p99_ms", pct(all.latency_ms, 0.99)},
                        {"errors", all.errors}, {"first_error", all.first_error}, {"cpu_s", own_cpu_seconds()}};
    std::cout << j.dump() << "\n";
    return all.errors ? 1 : 0;
}
