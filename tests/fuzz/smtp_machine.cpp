// The SMTP machine fed a whole client byte stream, with a scripted upstream:
// lines split by util::LineBuffer into on_line / on_line_too_long, DATA run
// through the real DataScanner, forwards answered with fixed replies or
// (input-chosen) failures, logins, preparations and TLS with input-chosen
// outcomes, pipelined groups resolved as the session does. Byte 0 picks the
// listener's options, byte 1 seeds the fake's choices.
// Checks: every reply and forward is CRLF-terminated lines with no bare CR or
// LF (nothing a client sends can inject a second upstream command), replies
// start with a 3-digit code, nothing comes after close, no reply to the
// upstream arrives unasked.
#include <deque>
#include <optional>

#include "fuzz_util.hpp"
#include "smtp/machine.hpp"

using namespace xo::smtp;
using xo::fuzz::check;
using xo::server::LoginOutcome;

namespace {

bool is_reply(std::string_view s) {
    if (!xo::fuzz::crlf_lines(s) || s.size() < 5) return false;
    std::size_t pos = 0;
    while (pos < s.size()) {
        if (s.size() - pos < 5) return false;
        for (int i = 0; i < 3; ++i)
            if (s[pos + i] < '0' || s[pos + i] > '9') return false;
        if (s[pos + 3] != ' ' && s[pos + 3] != '-') return false;
        pos = s.find("\r\n", pos) + 2;
    }
    return true;
}

Reply reply(int code, std::string text) {
    Reply r;
    r.code = code;
    r.lines.push_back(std::move(text));
    return r;
}

class Driver {
public:
    Driver(uint8_t options, uint8_t seed) : choose_(seed), m_(config(options)) {}

    static MachineConfig config(uint8_t o) {
        MachineConfig c;
        c.id = "fuzz";
        c.hostname = "proxy.test";
        c.starttls_offered = o & 1;
        c.tls_active = o & 2;
        c.plaintext_auth = o & 4;
        c.trusted = o & 8;
        c.bare_newline = o & 16 ? BareNewline::normalize : BareNewline::reject;
        c.max_message_size = o & 32 ? 64 : 100000;
        c.max_errors = o & 64 ? 3 : 10;
        return c;
    }

    void run(std::string_view in) {
        execute(m_.start());
        while (!in.empty() && !closed_) {
            if (in_data_) {
                data(in);
                continue;
            }
            std::string line;
            lines_.set_max_line(m_.max_line());
            auto st = lines_.feed(in, line);
            if (st == LineBuffer::Status::need_more) break;
            if (st == LineBuffer::Status::too_long) {
                execute(m_.on_line_too_long());
                continue;
            }
            if (m_.wants_sync(line)) resolve();
            execute(m_.on_line(line));
            // The client's next bytes may come before the replies (pipelining) or after.
            if (m_.must_resolve() || choose_.one_in(3)) resolve();
        }
        if (!closed_ && !in_data_) resolve();
        if (!closed_) execute(m_.on_upstream_lost());
    }

private:
    void data(std::string_view& in) {
        auto r = scanner_.feed(in, message_);
        in.remove_prefix(r.consumed);
        if (!r.done) return;
        check(xo::fuzz::crlf_lines(message_), "message relayed with a bare CR or LF");
        in_data_ = false;
        DataEnd end;
        if (refused_) {   // the upstream's reply to DATA after the client's early 354
            end.kind = DataEnd::Kind::refused_at_data;
            end.reply = *refused_;
            refused_.reset();
        } else if (scanner_.bare_newlines() && !m_.bare_newline_allowed()) end.kind = DataEnd::Kind::bare_newline;
        else if (scanner_.message_bytes() > m_.max_message_size()) end.kind = DataEnd::Kind::too_big;
        else if (choose_.one_in(8)) end.kind = DataEnd::Kind::upstream_lost;
        else end.reply = choose_.one_in(4) ? reply(554, "5.7.1 rejected") : reply(250, "2.0.0 Ok: queued");
        execute(m_.on_data_end(end));
    }

    void resolve() {
        while (!forwarded_.empty() && !closed_) {
            std::string cmd = forwarded_.front();
            forwarded_.pop_front();
            check(m_.has_pending(), "a forward the machine does not wait for");
            if (choose_.one_in(40)) {
                forwarded_.clear();
                execute(m_.on_upstream_lost());
                return;
            }
            Reply r = cmd.rfind("DATA", 0) == 0 ? reply(354, "End data with <CR><LF>.<CR><LF>") : reply(250, "2.0.0 Ok");
            if (choose_.one_in(6)) r = choose_.one_in(2) ? reply(451, "4.3.0 try later") : reply(550, "5.1.1 no");
            execute(m_.on_upstream(r));
        }
    }

    void execute(Actions actions) {
        for (auto& a : actions) {
            check(!closed_, "an action after close");
            switch (a.kind) {
                case Action::Kind::reply:
                    check(is_reply(a.text), "reply is not CRLF-terminated SMTP reply lines");
                    if (m_.has_pending()) resolve();
                    break;
                case Action::Kind::relay: check(is_reply(a.text), "relayed reply is not SMTP reply lines"); break;
                case Action::Kind::forward:
                    check(xo::fuzz::one_line(a.text), "a forward is not exactly one line");
                    forwarded_.push_back(a.text);
                    break;
                case Action::Kind::start_tls: execute(m_.on_tls(!choose_.one_in(4))); break;
                case Action::Kind::login: {
                    static const LoginOutcome kOutcomes[] = {LoginOutcome::ok, LoginOutcome::ok, LoginOutcome::bad_credentials,
                                                             LoginOutcome::busy, LoginOutcome::upstream_unavailable};
                    execute(m_.on_login(kOutcomes[choose_.next() % 5], "mbox@contoso.test"));
                    break;
                }
                case Action::Kind::prepare_mail: {
                    bool ok = !choose_.one_in(5);
                    m_.set_upstream_chunking(choose_.one_in(2));   // CHUNKING: lockstep DATA goes the early way
                    execute(m_.on_prepared(ok, ok ? "" : "451 4.4.1 upstream unavailable", choose_.one_in(2)));
                    break;
                }
                case Action::Kind::drop_upstream: forwarded_.clear(); break;
                case Action::Kind::begin_data:
                    check(!in_data_, "begin_data twice");
                    in_data_ = true;
                    scanner_ = DataScanner{};
                    message_.clear();
                    if (!a.text.empty()) {   // BDAT, or DATA first: 354, or a refusal for the end of data
                        check(a.text == "DATA\r\n", "begin_data sends something other than DATA first");
                        check(!m_.has_pending(), "an early DATA while replies are still due");
                        if (choose_.one_in(4))
                            refused_ = choose_.one_in(3)   ? reply(421, "4.3.2 closing")
                                       : choose_.one_in(2) ? reply(451, "4.7.500 busy")
                                                           : reply(554, "5.5.1 no valid recipients");
                    }
                    break;
                case Action::Kind::close: closed_ = true; break;
            }
        }
    }

    xo::fuzz::Choices choose_;
    Machine m_;
    LineBuffer lines_{kMaxAuthLine};
    DataScanner scanner_;
    std::string message_;
    bool in_data_ = false, closed_ = false;
    std::optional<Reply> refused_;
    std::deque<std::string> forwarded_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    xo::fuzz::Input input(data, size);
    uint8_t options = input.byte();
    uint8_t seed = input.byte();
    Driver d(options, seed);
    d.run(input.rest());
    return 0;
}
