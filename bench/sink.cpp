// xo-sink: a fast loopback upstream for benchmarks, so that the proxy, not the
// upstream, is what is measured. SMTP: EHLO, STARTTLS, AUTH XOAUTH2 (the
// bearer token's RS256 signature and expiry checked against the identity
// provider's public key), MAIL/RCPT/DATA and BDAT (CHUNKING) accepted and discarded. IMAP (implicit
// TLS): AUTHENTICATE XOAUTH2 (SASL-IR), SELECT, FETCH of one fixed message.
//   xo-sink SMTP_PORT IMAP_PORT CERT KEY IDP_PUBLIC_KEY IMAP_MESSAGE_BYTES
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <iostream>
#include <thread>

#include "asio.hpp"
#include "net/link.hpp"
#include "net/tls.hpp"
#include "smtp/parser.hpp"
#include "util/base64.hpp"

using namespace xo;

namespace {

EVP_PKEY* g_idp_key = nullptr;
std::string g_message;   // the IMAP source's one message

// "user=U\x01auth=Bearer T\x01\x01" -> token valid (RS256 by the IdP, not expired)?
bool token_ok(const std::string& b64) {
    auto raw = util::base64_decode(b64);
    if (!raw) return false;
    auto p = raw->find("auth=Bearer ");
    if (p == std::string::npos) return false;
    std::string tok = raw->substr(p + 12, raw->find('\x01', p) - p - 12);
    auto d1 = tok.find('.'), d2 = tok.rfind('.');
    if (d1 == std::string::npos || d1 == d2) return false;
    auto sig = util::base64url_decode(tok.substr(d2 + 1));
    auto claims = util::base64url_decode(tok.substr(d1 + 1, d2 - d1 - 1));
    if (!sig || !claims) return false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, g_idp_key) != 1) return false;
    if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                         reinterpret_cast<const unsigned char*>(tok.data()), d2) != 1)
        return false;
    auto e = claims->find("\"exp\":");
    return e != std::string::npos && std::atoll(claims->c_str() + e + 6) > std::time(nullptr);
}

awaitable<void> smtp_session(tcp::socket s, std::shared_ptr<ssl::context> tls) {
    net::Link c(std::move(s), tls);
    error_code ec;
    c.queue("220 sink.test ESMTP\r\n");
    bool authed = false;
    for (;;) {
        std::string line = co_await c.read_line(16384, ec);
        if (ec) break;
        auto cmd = smtp::parse_command(line);
        switch (cmd.verb) {
            case smtp::Verb::Ehlo:
                c.queue(c.tls_active() ? "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 AUTH XOAUTH2\r\n"
                                       : "250-sink.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
                break;
            case smtp::Verb::Starttls:
                c.queue("220 2.0.0 go\r\n");
                co_await c.flush(ec);
                if (!ec) co_await c.start_tls(true, "", ec);
                if (ec) co_return;
                break;
            case smtp::Verb::Auth: {
                std::string b64 = cmd.arg.size() > 8 ? cmd.arg.substr(8) : "";
                if (b64.empty()) {
                    c.queue("334 \r\n");
                    b64 = co_await c.read_line(16384, ec);
                    if (ec) co_return;
                }
                authed = token_ok(b64);
                c.queue(authed ? "235 2.7.0 ok\r\n" : "535 5.7.8 bad token\r\n");
                break;
            }
            case smtp::Verb::Mail: c.queue(authed ? "250 2.1.0 ok\r\n" : "530 5.7.0 auth first\r\n"); break;
            case smtp::Verb::Rcpt: c.queue("250 2.1.5 ok\r\n"); break;
            case smtp::Verb::Data: {
                c.queue("354 go\r\n");
                smtp::DataScanner scan;
                std::string sink;
                for (;;) {
                    std::string_view chunk = co_await c.read_some(ec);
                    if (ec) co_return;
                    sink.clear();
                    auto r = scan.feed(chunk, sink);
                    c.consume(r.consumed);
                    if (r.done) break;
                }
                c.queue("250 2.0.0 ok: discarded\r\n");
                break;
            }
            case smtp::Verb::Bdat: {   // "BDAT <size> [LAST]": exactly <size> bytes follow
                std::size_t n = std::strtoull(cmd.arg.c_str(), nullptr, 10);
                while (n > 0) {
                    std::string_view chunk = co_await c.read_some(ec);
                    if (ec) co_return;
                    std::size_t take = std::min(n, chunk.size());
                    c.consume(take);
                    n -= take;
                }
                c.queue("250 2.0.0 ok: discarded\r\n");
                break;
            }
            case smtp::Verb::Rset: case smtp::Verb::Noop: c.queue("250 2.0.0 ok\r\n"); break;
            case smtp::Verb::Quit: c.queue("221 2.0.0 bye\r\n"); co_await c.flush(ec); co_return;
            default: c.queue("502 5.5.2 no\r\n");
        }
    }
}

awaitable<void> imap_session(tcp::socket s, std::shared_ptr<ssl::context> tls) {
    net::Link c(std::move(s), tls);
    error_code ec;
    co_await c.start_tls(true, "", ec);
    if (ec) co_return;
    c.queue("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] source ready\r\n");
    for (;;) {
        std::string line = co_await c.read_line(16384, ec);
        if (ec) break;
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), rest = sp == std::string::npos ? "" : line.substr(sp + 1);
        for (std::size_t i = 0; i < rest.size() && rest[i] != ' '; ++i) rest[i] = char(std::toupper((unsigned char)rest[i]));
        if (rest.rfind("CAPABILITY", 0) == 0) {
            c.queue("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\n" + tag + " OK done\r\n");
        } else if (rest.rfind("AUTHENTICATE XOAUTH2 ", 0) == 0) {
            c.queue(token_ok(rest.substr(21)) ? tag + " OK [CAPABILITY IMAP4rev1 IDLE] authenticated\r\n"
                                              : tag + " NO [AUTHENTICATIONFAILED] bad token\r\n");
        } else if (rest.rfind("SELECT", 0) == 0 || rest.rfind("EXAMINE", 0) == 0) {
            c.queue("* 1 EXISTS\r\n* FLAGS (\\Seen)\r\n" + tag + " OK [READ-WRITE] selected\r\n");
        } else if (rest.rfind("FETCH", 0) == 0 || rest.rfind("UID FETCH", 0) == 0) {
            c.queue("* 1 FETCH (BODY[] {" + std::to_string(g_message.size()) + "}\r\n");
            co_await c.flush(ec);
            co_await c.write(g_message, ec);
            c.queue(")\r\n" + tag + " OK fetched\r\n");
        } else if (rest.rfind("LOGOUT", 0) == 0) {
            c.queue("* BYE\r\n" + tag + " OK bye\r\n");
            co_await c.flush(ec);
            co_return;
        } else {
            c.queue(tag + " OK\r\n");
        }
    }
}

template <typename F>
awaitable<void> accept_loop(tcp::acceptor& a, std::shared_ptr<ssl::context> tls, F session) {
    for (;;) {
        tcp::socket s = co_await a.async_accept(asio::make_strand(a.get_executor()), use_awaitable);
        auto ex = s.get_executor();
        asio::co_spawn(ex, session(std::move(s), tls), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::cerr << "usage: xo-sink SMTP_PORT IMAP_PORT CERT KEY IDP_PUBLIC_KEY IMAP_MESSAGE_BYTES\n";
        return 2;
    }
    FILE* f = std::fopen(argv[5], "r");
    if (!f || !(g_idp_key = PEM_read_PUBKEY(f, nullptr, nullptr, nullptr))) {
        std::cerr << "cannot read the identity provider's public key " << argv[5] << "\n";
        return 1;
    }
    std::fclose(f);
    std::size_t size = std::stoull(argv[6]);
    g_message = "Subject: the fixed message\r\n\r\n";
    while (g_message.size() + 80 < size) g_message += std::string(78, 'm') + "\r\n";
    auto tls = net::make_server_context(argv[3], argv[4]);
    asio::io_context io;
    tcp::acceptor smtp(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), uint16_t(std::stoi(argv[1]))));
    tcp::acceptor imap(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), uint16_t(std::stoi(argv[2]))));
    asio::co_spawn(io, accept_loop(smtp, tls, smtp_session), asio::detached);
    asio::co_spawn(io, accept_loop(imap, tls, imap_session), asio::detached);
    asio::signal_set sig(io, SIGTERM, SIGINT);
    sig.async_wait([&](error_code, int) { io.stop(); });
    std::thread t([&] { io.run(); });
    io.run();
    t.join();
    return 0;
}
