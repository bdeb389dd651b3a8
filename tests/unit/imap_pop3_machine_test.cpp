// The IMAP and POP3 pre-authentication machines driven by transcripts, with
// no sockets (format: machine_test_util.hpp).
#include <gtest/gtest.h>

#include "imap/machine.hpp"
#include "machine_test_util.hpp"
#include "pop3/machine.hpp"

using xo::test::MachineTranscript;

namespace {

// Runs a transcript through a machine with feed(bytes) or on_line(line).
template <typename M, typename A>
class Driver {
public:
    Driver(const MachineTranscript& t, M& m) : t_(t), m_(m) {}

    template <typename Feed>
    void run(Feed feed) {
        execute(m_.start());
        for (const auto& s : t_.steps) {
            if (closed_ || relaying_) break;
            if (s.kind == 'L') logins_.push_back(s.text);
            if (s.kind != 'C') continue;
            out_.push_back("C: " + s.text);
            feed(*this, s.text + "\r\n");
        }
        xo::test::expect_output(t_, out_);
    }

    void execute(std::vector<A> actions) {
        for (auto& a : actions) {
            switch (a.kind) {
                case A::Kind::reply: xo::test::add_lines(out_, 'S', a.text); break;
                case A::Kind::start_tls:
                    out_.push_back("A: start_tls");
                    execute(m_.on_tls(true));
                    break;
                case A::Kind::login: {
                    out_.push_back("A: login " + a.text + " (password of " + std::to_string(a.secret.size()) + ")");
                    std::string o = logins_.empty() ? "ok" : logins_.front();
                    if (!logins_.empty()) logins_.pop_front();
                    login(xo::test::login_outcome(o));
                    break;
                }
                case A::Kind::relay:
                    out_.push_back("A: relay");
                    relaying_ = true;
                    break;
                case A::Kind::close:
                    out_.push_back("A: close");
                    closed_ = true;
                    return;
            }
        }
    }

    void login(xo::server::LoginOutcome o) {
        if constexpr (std::is_same_v<M, xo::imap::Machine>) execute(m_.on_login(o, "IMAP4rev1 IDLE"));
        else execute(m_.on_login(o));
    }

    bool closed_ = false, relaying_ = false;

private:
    const MachineTranscript& t_;
    M& m_;
    std::deque<std::string> logins_;
    std::vector<std::string> out_;
};

}  // namespace

TEST(ImapMachine, Transcripts) {
    for (std::string name : {"imap_preauth.txt", "imap_literals.txt", "imap_logout.txt"}) {
        auto t = xo::test::load_machine_transcript(name);
        xo::imap::Machine m({"test", t.options.count("starttls") > 0, false, !t.options.count("tls-required")});
        Driver<xo::imap::Machine, xo::imap::Action> d(t, m);
        d.run([&m](auto& drv, std::string bytes) {
            std::string_view in = bytes;
            while (!in.empty() && !drv.closed_ && !drv.relaying_) drv.execute(m.feed(in));
        });
    }
}

TEST(Pop3Machine, Transcripts) {
    for (std::string name : {"pop3_auth.txt", "pop3_quit.txt"}) {
        auto t = xo::test::load_machine_transcript(name);
        xo::pop3::Machine m({"test", t.options.count("starttls") > 0, false, !t.options.count("tls-required")});
        Driver<xo::pop3::Machine, xo::pop3::Action> d(t, m);
        d.run([&m](auto& drv, std::string bytes) {
            bytes.resize(bytes.size() - 2);
            drv.execute(m.on_line(bytes));
        });
    }
}
