// What a reload (SIGHUP) keeps and what it replaces, below the daemon:
// Listeners::reload gives new sessions the new Services on the sockets already
// bound, refuses (and changes nothing) when a certificate cannot be loaded,
// and names what only a restart applies; a connection's identities tell which
// cached tokens and pooled upstream sessions carry over; the pool registry
// retires the pools of connections that changed.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "config/config.hpp"
#include "server/listeners.hpp"
#include "server/services.hpp"
#include "smtp/pool.hpp"

using namespace xo;
using namespace std::chrono_literals;

namespace {

uint16_t free_port() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

config::Listener smtp_listener(const std::string& name, uint16_t port) {
    config::Listener l;
    l.name = name;
    l.protocol = config::Protocol::smtp;
    l.port = port;
    l.line = 1;
    return l;
}

std::shared_ptr<server::Services> services(const std::string& hostname, std::vector<config::Listener> listeners,
                                           const std::shared_ptr<server::Services>& previous = nullptr) {
    auto s = std::make_shared<server::Services>(previous ? previous->shared_counters : nullptr);
    s->cfg.listeners = std::move(listeners);
    s->authenticator = std::make_unique<auth::Authenticator>(s->cfg);
    s->smtp_pools = std::make_shared<smtp::PoolRegistry>();
    s->hostname = hostname;
    return s;
}

// The first line a new client of 127.0.0.1:port is greeted with ("" if none within 5 s).
std::string greeting(uint16_t port) {
    asio::io_context io;
    tcp::socket sock(io);
    std::string line;
    asio::streambuf buf;
    asio::async_connect(sock, std::vector<tcp::endpoint>{{asio::ip::make_address("127.0.0.1"), port}},
                        [&](const error_code& ec, const tcp::endpoint&) {
                            if (ec) return;
                            asio::async_read_until(sock, buf, "\r\n", [&](const error_code& ec2, std::size_t n) {
                                if (!ec2) line.assign(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + n);
                            });
                        });
    io.run_for(5s);
    return line;
}

// A self-signed P-256 certificate and its key, written to a fresh directory.
struct TestCert {
    std::string dir, cert, key;
    TestCert() {
        dir = (std::filesystem::temp_directory_path() / ("xo-reload-" + std::to_string(getpid()))).string();
        std::filesystem::create_directories(dir);
        cert = dir + "/cert.pem";
        key = dir + "/key.pem";
        EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        X509* x = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, pkey);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_sign(x, pkey, EVP_sha256());
        FILE* f = std::fopen(cert.c_str(), "w");
        PEM_write_X509(f, x);
        std::fclose(f);
        f = std::fopen(key.c_str(), "w");
        PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
        X509_free(x);
        EVP_PKEY_free(pkey);
    }
    ~TestCert() { std::filesystem::remove_all(dir); }
};

bool has_note(const std::vector<std::string>& notes, const std::string& part) {
    for (const auto& n : notes)
        if (n.find(part) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST(ListenersReload, NewSessionsGetTheNewServicesOnTheSameSocket) {
    const uint16_t p1 = free_port(), p2 = free_port(), p3 = free_port();
    TestCert good;
    auto tls = smtp_listener("tls", p3);
    tls.tls = config::ListenerTls::starttls;
    tls.cert_file = good.cert;
    tls.key_file = good.key;
    asio::io_context io;
    auto first = services("first.test", {smtp_listener("main", p1), smtp_listener("second", p2), tls});
    server::Listeners listeners(io, first);
    listeners.start();
    auto work = asio::make_work_guard(io);
    std::thread t([&] { io.run(); });

    EXPECT_EQ(greeting(p1), "220 first.test ESMTP xoauth2-proxy\r\n");

    // "second" removed, "third" added: both keep their old state until a restart, and say so.
    auto next = services("next.test", {smtp_listener("main", p1), smtp_listener("third", free_port()), tls}, first);
    auto notes = listeners.reload(next);
    EXPECT_TRUE(has_note(notes, "listener second was removed from the file")) << ::testing::PrintToString(notes);
    EXPECT_TRUE(has_note(notes, "listener third")) << ::testing::PrintToString(notes);
    EXPECT_EQ(greeting(p1), "220 next.test ESMTP xoauth2-proxy\r\n");
    EXPECT_EQ(greeting(p2), "220 first.test ESMTP xoauth2-proxy\r\n");   // removed: still the old one

    EXPECT_EQ(greeting(p3), "220 next.test ESMTP xoauth2-proxy\r\n");

    // A certificate that cannot be loaded: the reload throws and changes nothing.
    auto bad = tls;
    bad.cert_file = good.dir + "/missing.pem";
    auto broken = services("broken.test", {smtp_listener("main", p1), bad}, next);
    EXPECT_ANY_THROW(listeners.reload(broken));
    EXPECT_EQ(greeting(p1), "220 next.test ESMTP xoauth2-proxy\r\n");
    EXPECT_EQ(greeting(p3), "220 next.test ESMTP xoauth2-proxy\r\n");

    // A port change needs a restart: named, and the listener keeps its socket and old configuration.
    auto moved = services("moved.test", {smtp_listener("main", free_port()), tls}, next);
    notes = listeners.reload(moved);
    EXPECT_TRUE(has_note(notes, "binding changes need a restart")) << ::testing::PrintToString(notes);
    EXPECT_EQ(greeting(p1), "220 next.test ESMTP xoauth2-proxy\r\n");

    // The counters span every generation.
    EXPECT_EQ(&moved->counters, &first->counters);

    listeners.stop();
    work.reset();
    io.stop();
    t.join();
}

TEST(ConnectionIdentity, TokenAndSmtpIdentitiesFollowWhatTheyDependOn) {
    config::Connection c;
    c.name = "ms";
    c.tenant = "contoso";
    c.client_id = "app";
    c.client_secret.value = "s3cret";
    c.smtp = {"smtp.office365.com", 587, config::UpstreamTls::starttls};
    auto same = c;
    same.line = 42;   // where it is declared does not matter
    EXPECT_EQ(same.token_identity(), c.token_identity());
    EXPECT_EQ(same.smtp_identity(), c.smtp_identity());
    EXPECT_EQ(c.token_identity().size(), 64u);
    EXPECT_EQ(c.token_identity().find("s3cret"), std::string::npos);

    auto rotated = c;
    rotated.client_secret.value = "new";
    EXPECT_NE(rotated.token_identity(), c.token_identity());
    EXPECT_NE(rotated.smtp_identity(), c.smtp_identity());

    auto limits = c;
    limits.upstream_wait = 5000ms;
    EXPECT_EQ(limits.token_identity(), c.token_identity());   // the token still serves
    EXPECT_NE(limits.smtp_identity(), c.smtp_identity());     // a new pool with the new limits

    auto moved = c;
    moved.smtp.port = 465;
    EXPECT_NE(moved.smtp_identity(), c.smtp_identity());
    auto scope = c;
    scope.scope = "https://outlook.office365.com/.default other";
    EXPECT_NE(scope.token_identity(), c.token_identity());
}

TEST(PoolRegistry, AReloadKeepsThePoolsOfUnchangedConnectionsOnly) {
    config::Config cfg;
    config::Connection a;
    a.name = "a";
    a.client_id = "app-a";
    config::Connection b = a;
    b.name = "b";
    cfg.connections = {{"a", a}, {"b", b}};

    smtp::PoolRegistry reg;
    auto pa = reg.get(a, "m@contoso.test");
    auto pb = reg.get(b, "m@contoso.test");
    EXPECT_EQ(reg.get(a, "m@contoso.test"), pa);
    EXPECT_NE(reg.get(a, "other@contoso.test"), pa);

    // A reload: a unchanged, b with a smaller cap.
    config::Config next = cfg;
    next.connections["b"].max_upstream_sessions = 1;
    reg.retain(next);
    EXPECT_EQ(reg.get(next.connections["a"], "m@contoso.test"), pa);   // same pool: the cap holds across the reload
    auto pb2 = reg.get(next.connections["b"], "m@contoso.test");
    EXPECT_NE(pb2, pb);

    // The retired pool gives back the room it handed out and opens nothing more.
    asio::io_context io;
    bool got = false;
    asio::co_spawn(io, [&]() -> awaitable<void> {
        auto lease = co_await pb2->acquire();
        got = lease.room;
        EXPECT_EQ(pb2->open_sessions(), 1u);
        pb2->forfeit();
        EXPECT_EQ(pb2->open_sessions(), 0u);
    }, asio::detached);
    io.run_for(2s);
    EXPECT_TRUE(got);
}
