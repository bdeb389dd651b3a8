// The SMTP machine's side that faces the upstream: what each reply to a
// forwarded command, a lost upstream and the end of a message come to.
#include "smtp/machine.hpp"

namespace xo::smtp {

Actions Machine::on_upstream(const Reply& r) {
    Actions a;
    if (pending_.empty()) return a;
    Pending p = pending_.front();
    pending_.pop_front();
    if (r.code == 421) {   // the upstream is going away: this session's client is not
        if (p != Pending::rset) relay(a, std::string("451 4.4.2 Upstream closed the connection, try again later") + "\r\n");
        Actions rest = on_upstream_lost();
        a.insert(a.end(), rest.begin(), rest.end());
        return a;
    }
    const bool ok = r.code / 100 == 2;
    switch (p) {
        case Pending::rset:
            if (!ok) {
                upstream_txn_ = false;
                a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});
            }
            return a;
        case Pending::mail:
            relay(a, r.wire());
            if (!ok) {
                upstream_txn_ = false;
                if (state_ == State::mail || state_ == State::rcpt) enter_state(State::greeted);
            }
            return a;
        case Pending::rcpt:
            relay(a, r.wire());
            if (ok && (state_ == State::mail || state_ == State::rcpt)) {
                ++recipients_;
                enter_state(State::rcpt);
            }
            return a;
        case Pending::data:
            if (r.code == 354 && (state_ == State::mail || state_ == State::rcpt)) {
                relay(a, std::string("354 End data with <CR><LF>.<CR><LF>") + "\r\n");
                a.push_back(Action{Action::Kind::begin_data, {}, {}, Pending::rset});
                enter_state(State::data);
                return a;
            }
            if (r.code == 354) {   // 354 although the MAIL failed: the upstream is confused
                relay(a, "451 4.5.0 Upstream protocol error (354 without a transaction), try again later\r\n");
                a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});
                upstream_txn_ = false;
            } else {
                relay(a, r.wire());
                reset_upstream_transaction(a);
            }
            if (state_ == State::mail || state_ == State::rcpt) enter_state(State::greeted);
            return a;
    }
    return a;
}

Actions Machine::on_upstream_lost() {
    Actions a;
    for (Pending p : pending_)
        if (p != Pending::rset) relay(a, std::string("451 4.4.2 Upstream connection lost, try again later") + "\r\n");
    pending_.clear();
    upstream_txn_ = false;
    recipients_ = 0;
    if (state_ == State::mail || state_ == State::rcpt || state_ == State::data) enter_state(State::greeted);
    a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});
    return a;
}

Actions Machine::on_data_end(const DataEnd& end) {
    Actions a;
    if (end.kind == DataEnd::Kind::refused_at_data && end.reply.code != 421) {
        // The upstream refused DATA after the client had its 354: its reply is the client's
        // answer, and the upstream still holds MAIL and RCPT.
        relay(a, end.reply.wire());
        reset_upstream_transaction(a);
        enter_state(State::greeted);
        return a;
    }
    upstream_txn_ = false;
    recipients_ = 0;
    enter_state(State::greeted);
    switch (end.kind) {
        case DataEnd::Kind::relayed:
        case DataEnd::Kind::refused_at_data:   // (421 here: the others returned above)
            if (end.reply.code == 421) {
                relay(a, std::string("451 4.4.2 Upstream closed the connection, message not accepted, try again later") + "\r\n");
                a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});
                return a;
            }
            relay(a, end.reply.wire());
            if (end.reply.code / 100 == 2) ++messages_;
            return a;
        case DataEnd::Kind::too_big:
            relay(a, std::string("552 5.3.4 Message size exceeds fixed maximum message size") + "\r\n");
            break;
        case DataEnd::Kind::bare_newline:
            relay(a, std::string("550 5.6.0 Message refused: bare CR or LF in the message; lines must end in CRLF") + "\r\n");
            break;
        case DataEnd::Kind::upstream_lost:
            relay(a, std::string("451 4.4.2 Upstream connection lost during data transfer, message not accepted, try again later") + "\r\n");
            break;
    }
    a.push_back(Action{Action::Kind::drop_upstream, {}, {}, Pending::rset});   // it holds a partial message
    return a;
}

}  // namespace xo::smtp
