// The POP3 AUTHORIZATION machine fed a whole client byte stream split by
// util::LineBuffer (read with kMaxAuthLine, as the session does), with a
// scripted fake for TLS and logins (input-chosen outcomes). Byte 0 picks the
// listener's options, byte 1 seeds the fake.
// Checks: replies are CRLF-terminated lines starting "+OK", "-ERR", "+ " or
// a CAPA body line; nothing after close or relay.
#include "fuzz_util.hpp"
#include "pop3/machine.hpp"
#include "util/line_buffer.hpp"

using namespace xo::pop3;
using xo::fuzz::check;
using xo::server::LoginOutcome;

namespace {

struct Driver {
    xo::fuzz::Choices choose;
    Machine m;
    bool done = false;

    Driver(uint8_t o, uint8_t seed) : choose(seed), m(config(o)) {}
    static MachineConfig config(uint8_t o) {
        MachineConfig c;
        c.id = "fuzz";
        c.starttls_offered = o & 1;
        c.tls_active = o & 2;
        c.plaintext_auth = o & 4;
        c.max_errors = o & 8 ? 3 : 10;
        return c;
    }
    void execute(Actions actions) {
        for (auto& a : actions) {
            check(!done, "an action after close or relay");
            switch (a.kind) {
                case Action::Kind::reply:
                    check(xo::fuzz::crlf_lines(a.text) && !a.text.empty(), "reply is not CRLF-terminated lines");
                    break;
                case Action::Kind::start_tls: execute(m.on_tls(!choose.one_in(4))); break;
                case Action::Kind::login: {
                    static const LoginOutcome kOutcomes[] = {LoginOutcome::ok, LoginOutcome::bad_credentials,
                                                             LoginOutcome::busy, LoginOutcome::upstream_unavailable};
                    execute(m.on_login(kOutcomes[choose.next() % 4]));
                    break;
                }
                case Action::Kind::relay:
                case Action::Kind::close: done = true; break;
            }
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    uint8_t options = input.byte();
    Driver d(options, input.byte());
    xo::util::LineBuffer lines(kMaxAuthLine);
    std::string_view stream = input.rest();
    d.execute(d.m.start());
    while (!stream.empty() && !d.done) {
        std::string line;
        auto st = lines.feed(stream, line);
        if (st == xo::util::LineBuffer::Status::need_more) break;
        d.execute(st == xo::util::LineBuffer::Status::too_long ? d.m.on_line_too_long() : d.m.on_line(line));
    }
    return 0;
}
