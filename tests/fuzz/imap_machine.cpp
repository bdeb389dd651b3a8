// The IMAP pre-authentication machine fed a whole client byte stream through
// Machine::feed, with a scripted fake for TLS and logins (input-chosen
// outcomes). Byte 0 picks the listener's options, byte 1 seeds the fake.
// Checks: replies are CRLF-terminated lines (untagged, tagged or "+"), feed()
// always makes progress, nothing after close or relay.
#include "fuzz_util.hpp"
#include "imap/machine.hpp"

using namespace xo::imap;
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
                case Action::Kind::reply: {
                    std::string_view t = a.text;
                    // A reply may carry a literal (quote()): only its line ends are checked.
                    check(t.size() >= 3 && t.substr(t.size() - 2) == "\r\n", "reply without CRLF");
                    check(t[0] == '*' || t[0] == '+' || t[0] != ' ', "reply starts with a blank");
                    break;
                }
                case Action::Kind::start_tls: execute(m.on_tls(!choose.one_in(4))); break;
                case Action::Kind::login: {
                    static const LoginOutcome kOutcomes[] = {LoginOutcome::ok, LoginOutcome::bad_credentials,
                                                             LoginOutcome::busy, LoginOutcome::upstream_unavailable};
                    execute(m.on_login(kOutcomes[choose.next() % 4], "IMAP4rev1 IDLE"));
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
    std::size_t chunk = options & 16 ? 7 : 4096;
    std::string_view stream = input.rest();
    d.execute(d.m.start());
    while (!stream.empty() && !d.done) {
        std::string_view piece = stream.substr(0, chunk);
        stream.remove_prefix(piece.size());
        int idle = 0;
        while (!piece.empty() && !d.done) {
            std::size_t before = piece.size();
            Actions a = d.m.feed(piece);
            if (a.empty() && piece.size() == before) break;   // more bytes needed
            if (piece.size() == before) check(++idle < 8, "feed() answers again and again without consuming");
            d.execute(std::move(a));
        }
    }
    return 0;
}
