#include "net/upstream_base.hpp"

#include "diagnose/diagnose.hpp"
#include "net/tls.hpp"
#include "sasl/sasl.hpp"

namespace xo::net {

const char* to_string(UpstreamError::Kind k) {
    switch (k) {
        case UpstreamError::Kind::none: return "none";
        case UpstreamError::Kind::token: return "token";
        case UpstreamError::Kind::connect: return "connect";
        case UpstreamError::Kind::tls: return "tls";
        case UpstreamError::Kind::auth: return "auth";
        case UpstreamError::Kind::protocol: return "protocol";
    }
    return "?";
}

UpstreamBase::UpstreamBase(const asio::any_io_executor& ex, const config::Connection& conn, const config::Upstream& where,
                           std::string mailbox, std::shared_ptr<oauth::TokenCache> tokens, std::shared_ptr<ssl::context> tls)
    : conn_(conn), where_(where), mailbox_(std::move(mailbox)), tokens_(std::move(tokens)), link_(ex, std::move(tls)) {}

std::string UpstreamBase::tls_description() const {
    return std::string(where_.tls == config::UpstreamTls::starttls ? "STARTTLS " : "implicit TLS ") + link_.tls_version() +
           (link_.tls_resumed() ? " resumed" : "");
}

bool UpstreamBase::fail(UpstreamError& err, UpstreamError::Kind kind, std::string detail, std::string advice) {
    err.kind = kind;
    err.detail = std::move(detail);
    err.advice = std::move(advice);
    return false;
}

std::string UpstreamBase::initial_response(const std::string& token) const {
    return bearer() ? sasl::oauthbearer_initial_response(mailbox_, where_.host, where_.port, token)
                    : sasl::xoauth2_initial_response(mailbox_, token);
}

namespace {
bool token_failure(UpstreamError& err, const oauth::TokenResult& t) {
    err.kind = UpstreamError::Kind::token;
    err.detail = t.error.summary();
    err.advice = diagnose::token_error_advice(t.error.code, t.error.error, t.error.description);
    return false;
}
}  // namespace

awaitable<bool> UpstreamBase::connect(std::string& token, UpstreamError& err) {
    // The token first: without one there is no point in connecting.
    auto tr = co_await tokens_->get(conn_.name, mailbox_);
    if (!tr.ok()) co_return token_failure(err, tr);
    token = tr.token->access_token;
    token_expires_ = tr.token->expires_at;
    error_code ec;
    link_.set_timeout(std::chrono::seconds(60));
    co_await link_.connect(where_.host, where_.port, ec);
    if (ec) co_return fail(err, UpstreamError::Kind::connect, "connect " + where_.text() + ": " + ec.message());
    step("connect");
    if (where_.tls == config::UpstreamTls::implicit) co_return co_await start_tls(err);
    co_return true;
}

awaitable<bool> UpstreamBase::start_tls(UpstreamError& err) {
    error_code ec;
    co_await link_.start_tls(false, where_.host, ec);
    if (!ec) {
        step("tls");
        co_return true;
    }
    std::string why = link_.native_ssl() ? verify_error(link_.native_ssl()) : "";
    co_return fail(err, UpstreamError::Kind::tls,
                   "TLS handshake with " + where_.text() + ": " + (why.empty() ? ec.message() : why),
                   "the server's certificate must be valid for " + where_.host +
                       " and signed by a CA in the system store or the connection's ca_file");
}

awaitable<bool> UpstreamBase::authenticate_with_retry(std::string token, UpstreamError& err) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool retry = false;
        if (co_await authenticate(token, retry, err)) {
            step("authenticate");
            co_return true;
        }
        if (!retry || attempt == 1) break;
        tokens_->invalidate(conn_.name, mailbox_, token);
        auto tr = co_await tokens_->get(conn_.name, mailbox_);
        if (!tr.ok()) co_return token_failure(err, tr);
        token = tr.token->access_token;
        token_expires_ = tr.token->expires_at;
    }
    co_return false;
}

}  // namespace xo::net
