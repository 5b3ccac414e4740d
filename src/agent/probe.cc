#include "agent/probe.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace meridian::agent {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

ProbeResult ProbeHttp(const std::string& host, int port, const std::string& path,
                      double timeout_s) {
  ProbeResult out;
  net::io_context ioc;
  net::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::request<http::empty_body> req(http::verb::get, path, 11);
  req.set(http::field::host, absl::StrCat(host, ":", port));
  req.set(http::field::user_agent, "meridian-agent");
  req.set(http::field::connection, "close");
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(timeout_s));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // One chain: resolve, connect, write, read; any error ends it with its reason.
  auto fail = [&out](const char* what, const beast::error_code& ec) {
    out.error = ec == beast::error::timeout ? absl::StrCat(what, ": timed out")
                                            : absl::StrCat(what, ": ", ec.message());
  };
  resolver.async_resolve(
      host, std::to_string(port),
      [&](const beast::error_code& ec, net::ip::tcp::resolver::results_type results) {
        if (ec) return fail("resolve", ec);
        stream.expires_at(deadline);
        stream.async_connect(
            results, [&](const beast::error_code& ec, const net::ip::tcp::endpoint&) {
              if (ec) return fail("connect", ec);
              http::async_write(stream, req, [&](const beast::error_code& ec, size_t) {
                if (ec) return fail("send", ec);
                http::async_read(stream, buffer, parser, [&](const beast::error_code& ec, size_t) {
                  if (ec) return fail("read", ec);
                  out.status = static_cast<int>(parser.get().result_int());
                  out.ready = out.status == 200;
                });
              });
            });
      });
  // The resolver has no deadline of its own: bound the whole run, then
  // cancel what is left and let it finish (handlers refer to these locals).
  ioc.run_for(timeout + std::chrono::milliseconds(100));
  if (!ioc.stopped()) {
    resolver.cancel();
    beast::error_code ignored;
    stream.socket().close(ignored);
    ioc.run();
    out = ProbeResult();
    out.error = "timed out";
  }
  return out;
}

}  // namespace meridian::agent
