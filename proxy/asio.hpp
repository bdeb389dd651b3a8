// The one place the project includes Boost.Asio, Beast and their SSL parts.
// Boost 1.74's awaitable.hpp needs <utility> first (asio issue 944); every
// file includes this header instead of Asio directly.
#pragma once
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace xo {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::asio::awaitable;
using boost::asio::use_awaitable;
using error_code = boost::system::error_code;
}  // namespace xo
