// Test helpers: a raw TCP client to 127.0.0.1 (bytes in, what came back
// out), for requests a well-behaved HTTP client would not send, and a
// self-signed certificate made with the openssl CLI.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
// clang-format off
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
// clang-format on

namespace meridian::serve::rawhttp {

namespace net = boost::asio;
namespace http = boost::beast::http;

// One connection with a receive timeout of `timeout_s` (so a hang fails a
// test instead of blocking it).
class RawConn {
 public:
  explicit RawConn(int port, int timeout_s = 10) : sock_(ioc_) {
    sock_.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    timeval tv{timeout_s, 0};
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void Send(const std::string& bytes) {
    boost::system::error_code ec;
    net::write(sock_, net::buffer(bytes), ec);
  }
  // The next response: status 0 when none came (closed, reset or timed out).
  std::pair<int, std::string> Read() {
    http::response<http::string_body> res;
    boost::system::error_code ec;
    http::read(sock_, buf_, res, ec);
    if (ec) return {0, ec.message()};
    return {res.result_int(), res.body()};
  }
  // True when the peer closed the connection (EOF or reset) before
  // `timeout_s`; false when it stayed open that long or sent data.
  bool ClosedByPeer() {
    char c;
    ssize_t n = ::recv(sock_.native_handle(), &c, 1, 0);
    if (n == 0) return true;
    return n < 0 && (errno == ECONNRESET || errno == EPIPE);
  }
  net::ip::tcp::socket& socket() { return sock_; }

 private:
  net::io_context ioc_;
  net::ip::tcp::socket sock_;
  boost::beast::flat_buffer buf_;
};

// A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem);
// false when the openssl CLI failed.
inline bool MakeSelfSignedCert(const std::string& dir) {
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout '" +
      dir + "/key.pem' -out '" + dir + "/cert.pem' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// One HTTPS exchange with 127.0.0.1:`port`, the server's certificate
// verified against `ca`: status and body, or 0 and why there was none.
inline std::pair<int, std::string> HttpsExchange(int port, const std::string& ca,
                                                 http::verb verb, const std::string& target,
                                                 const std::string& body) {
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.load_verify_file(ca, ec);
  if (ec) return {0, "load " + ca + ": " + ec.message()};
  ctx.set_verify_mode(ssl::verify_peer);
  net::io_context ioc;
  boost::beast::ssl_stream<boost::beast::tcp_stream> tls(ioc, ctx);
  tls.next_layer().expires_after(std::chrono::seconds(10));
  tls.next_layer().connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
      ec);
  if (!ec) tls.handshake(ssl::stream_base::client, ec);
  if (ec) return {0, "connect/handshake: " + ec.message()};
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.body() = body;
  req.prepare_payload();
  http::write(tls, req, ec);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  if (!ec) http::read(tls, buf, res, ec);
  if (ec) return {0, "exchange: " + ec.message()};
  std::string replica;
  if (auto it = res.find("X-Meridian-Replica"); it != res.end()) replica = std::string(it->value());
  return {res.result_int(), replica.empty() ? res.body() : replica + " " + res.body()};
}

}  // namespace meridian::serve::rawhttp
