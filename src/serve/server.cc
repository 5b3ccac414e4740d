#include "serve/server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <condition_variable>
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <thread>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "serve/http_front.h"
#include "serve/predict_request.h"

namespace meridian::serve {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

std::string Error(const std::string& message) { return ErrorJson(message); }

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

// One client connection. Its coroutine and every call on its socket run on
// the strand the socket was accepted with, Close (posted by Stop) too.
struct Conn {
  virtual ~Conn() = default;
  virtual void Close() = 0;
  virtual net::any_io_executor executor() = 0;
  bool busy = false;  // answering a request: Stop lets it finish (strand only)
};

template <class Stream>
struct ConnOf : Conn {
  template <class... Args>
  explicit ConnOf(Args&&... args) : stream(std::forward<Args>(args)...) {}
  void Close() override {
    beast::error_code ignored;
    beast::get_lowest_layer(stream).socket().close(ignored);
  }
  net::any_io_executor executor() override { return stream.get_executor(); }
  Stream stream;
};

using Plain = beast::tcp_stream;
using Tls = beast::ssl_stream<beast::tcp_stream>;

// Sent to a connection over max_connections (plain HTTP only).
const std::string& BusyResponse() {
  static const std::string* text = [] {
    std::string body = ErrorJson("too many connections to this model server; retry");
    return new std::string(
        absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nServer: meridian-serve\r\n"
                     "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                     "Content-Length: ",
                     body.size(), "\r\n\r\n", body));
  }();
  return *text;
}

bool IsPredict(const std::string& method, const std::string& target) {
  return method == "POST" && target.substr(0, target.find('?')) == "/v1/predict";
}

}  // namespace

struct ModelServer::Net {
  explicit Net(int threads)
      : ioc(threads), work(net::make_work_guard(ioc)), acceptor(net::make_strand(ioc)) {}
  net::io_context ioc;
  // Keeps the threads running while no connection is open; reset by Stop,
  // then they end once the last handler has run.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::optional<ssl::context> tls;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable ended;          // a connection ended
  std::set<std::shared_ptr<Conn>> conns;  // guarded by mu
  net::awaitable<void> Accept(ModelServer* s);
  template <class Stream>
  net::awaitable<void> Session(ModelServer* s, std::shared_ptr<ConnOf<Stream>> c);
};

ModelServer::ModelServer(train::Mlp model, ServerOptions options)
    : model_(std::move(model)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ModelServer>> ModelServer::Start(train::Mlp model,
                                                                ServerOptions options) {
  size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", options.listen, "' is not HOST:PORT"));
  beast::error_code ec;
  net::ip::address ip = net::ip::make_address(options.listen.substr(0, colon), ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", options.listen, "': ", ec.message()));
  if (options.tls_cert.empty() != options.tls_key.empty())
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (!(options.request_timeout_s > 0) || !(options.idle_timeout_s > 0))
    return absl::InvalidArgumentError("request and idle timeouts must be positive");
  if (options.max_connections < 1)
    return absl::InvalidArgumentError("max_connections must be at least 1");
  if (options.threads == 0) options.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (options.threads < 1) options.threads = 1;
  std::unique_ptr<ModelServer> s(new ModelServer(std::move(model), std::move(options)));
  s->net_ = std::make_unique<Net>(s->options_.threads);
  Net& n = *s->net_;
  if (s->tls()) {
    n.tls.emplace(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(n.tls->native_handle(), TLS1_2_VERSION);
    n.tls->use_certificate_chain_file(s->options_.tls_cert, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-cert ", s->options_.tls_cert, ": ", ec.message()));
    n.tls->use_private_key_file(s->options_.tls_key, ssl::context::pem, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-key ", s->options_.tls_key, ": ", ec.message()));
  }
  tcp::endpoint ep(ip, static_cast<unsigned short>(port));
  n.acceptor.open(ep.protocol(), ec);
  if (!ec) n.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) n.acceptor.bind(ep, ec);
  if (!ec) n.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", s->options_.listen, ": ", ec.message()));
  s->port_ = n.acceptor.local_endpoint().port();
  net::co_spawn(n.acceptor.get_executor(), n.Accept(s.get()), net::detached);
  for (int i = 0; i < s->options_.threads; ++i)
    n.threads.emplace_back([c = &n.ioc] { c->run(); });
  return s;
}

ModelServer::~ModelServer() { Stop(); }

void ModelServer::Stop() {
  if (stopping_.exchange(true) || net_ == nullptr) return;
  draining_ = true;
  Net& n = *net_;
  net::post(n.acceptor.get_executor(), [&n] {
    beast::error_code ignored;
    n.acceptor.close(ignored);
  });
  // Idle and reading connections are closed now; one being answered ends
  // after its answer (its session sees stopping_).
  std::unique_lock<std::mutex> l(n.mu);
  for (const std::shared_ptr<Conn>& c : n.conns)
    net::post(c->executor(), [c] {
      if (!c->busy) c->Close();
    });
  n.ended.wait(l, [&n] { return n.conns.empty(); });
  l.unlock();
  n.work.reset();  // the threads end with the last handler (a posted Close)
  for (std::thread& t : n.threads) t.join();
  n.threads.clear();
  beast::error_code ignored;
  n.acceptor.close(ignored);  // closed already by the posted close; no thread runs now
}

net::awaitable<void> ModelServer::Net::Accept(ModelServer* s) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(
        net::make_strand(ioc), net::redirect_error(net::use_awaitable, ec));
    if (s->stopping_) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted || ec == net::error::bad_descriptor) co_return;
      continue;  // EMFILE and the like: go on accepting
    }
    ++s->connections_;
    if (s->connections_open_ >= s->options_.max_connections) {
      ++s->connections_refused_;
      if (!s->tls()) {
        // Best effort, without waiting: a fresh socket takes a few hundred bytes.
        socket.non_blocking(true, ec);
        const std::string& busy = BusyResponse();
        socket.write_some(net::buffer(busy), ec);
        socket.shutdown(tcp::socket::shutdown_send, ec);
      }
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto start = [&](auto c) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (s->stopping_) return;
        conns.insert(c);
      }
      ++s->connections_open_;
      net::co_spawn(c->stream.get_executor(), Session(s, c), net::detached);
    };
    if (tls) {
      start(std::make_shared<ConnOf<Tls>>(std::move(socket), *tls));
    } else {
      start(std::make_shared<ConnOf<Plain>>(std::move(socket)));
    }
  }
}

template <class Stream>
net::awaitable<void> ModelServer::Net::Session(ModelServer* s, std::shared_ptr<ConnOf<Stream>> c) {
  constexpr bool kTls = std::is_same_v<Stream, Tls>;
  const ServerOptions& o = s->options_;
  auto& lowest = beast::get_lowest_layer(c->stream);
  beast::error_code ec;
  beast::flat_buffer buffer;
  bool open = true;
  bool refused = false;  // answered a request it did not read to its end
  if constexpr (kTls) {
    lowest.expires_after(Seconds(o.request_timeout_s));
    co_await c->stream.async_handshake(ssl::stream_base::server,
                                       net::redirect_error(net::use_awaitable, ec));
    open = !ec;
  }
  while (open && !s->stopping_) {
    // Idle: the first byte of the next request, unless it is buffered already.
    if (buffer.size() == 0) {
      lowest.expires_after(Seconds(o.idle_timeout_s));
      size_t n = co_await c->stream.async_read_some(buffer.prepare(16 * 1024),
                                                    net::redirect_error(net::use_awaitable, ec));
      buffer.commit(n);
      if (ec) break;
    }
    // Then the whole request, header and body, within the request timeout.
    lowest.expires_after(Seconds(o.request_timeout_s));
    http::request_parser<http::string_body> parser;
    parser.body_limit(o.max_body_bytes);
    parser.header_limit(16 * 1024);
    co_await http::async_read_header(c->stream, buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
    int refuse = 0;
    std::string why;
    if (!ec) {
      if (absl::Status f = front::CheckFraming(parser.get()); !f.ok()) {
        refuse = 400;
        why = std::string(f.message());
      } else {
        co_await http::async_read(c->stream, buffer, parser,
                                  net::redirect_error(net::use_awaitable, ec));
      }
    }
    http::response<http::string_body> res;
    res.set(http::field::content_type, "application/json");
    res.set(http::field::server, "meridian-serve");
    bool keep_alive = false;
    if (ec == http::error::body_limit) {
      refuse = 413;
      why = absl::StrCat("request body over the limit of ", o.max_body_bytes, " bytes");
    } else if (ec && ec.category() == http::make_error_code(http::error::bad_method).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      refuse = 400;
      why = absl::StrCat("malformed HTTP request: ", ec.message());
    } else if (ec) {
      break;  // closed, reset, timed out: nothing to answer
    }
    c->busy = true;
    refused = refuse != 0;
    if (refuse != 0) {
      res.result(static_cast<http::status>(refuse));
      res.body() = Error(why);
      s->Record(0, true);
    } else {
      http::request<http::string_body> req = parser.release();
      keep_alive = req.keep_alive();
      std::string method(req.method_string()), target(req.target());
      ++s->in_flight_;
      auto t0 = std::chrono::steady_clock::now();
      std::pair<int, std::string> answer;
      if (IsPredict(method, target)) {
        if (auto injected = s->InjectedError()) {
          answer = *std::move(injected);
        } else {
          if (o.inject_delay_ms > 0) {
            net::steady_timer delay(c->stream.get_executor());
            delay.expires_after(Seconds(o.inject_delay_ms / 1000));
            co_await delay.async_wait(net::redirect_error(net::use_awaitable, ec));
          }
          answer = s->Predict(req.body());
        }
      } else {
        answer = s->Answer(method, target, req.body());
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count();
      --s->in_flight_;
      s->Record(ms, answer.first >= 400);
      res.result(static_cast<http::status>(answer.first));
      res.version(req.version());
      res.body() = std::move(answer.second);
    }
    res.keep_alive(keep_alive && !s->stopping_);
    res.prepare_payload();
    lowest.expires_after(Seconds(o.request_timeout_s));
    co_await http::async_write(c->stream, res, net::redirect_error(net::use_awaitable, ec));
    c->busy = false;
    if (ec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  if (refused && !kTls && lowest.socket().is_open()) {
    // Lingering close: the client may still be sending what we refused;
    // closing with it unread would reset the connection, and the reset can
    // destroy our answer before the client reads it. Read and drop it (1 s
    // at most), after saying we are done.
    lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest.expires_after(std::chrono::seconds(1));
    for (int i = 0; i < 256 && !ignored; ++i) {
      buffer.consume(buffer.size());
      co_await c->stream.async_read_some(buffer.prepare(16 * 1024),
                                         net::redirect_error(net::use_awaitable, ignored));
    }
  }
  if constexpr (kTls) {
    if (lowest.socket().is_open()) {
      lowest.expires_after(std::chrono::seconds(1));
      co_await c->stream.async_shutdown(net::redirect_error(net::use_awaitable, ignored));
    }
  }
  lowest.socket().shutdown(tcp::socket::shutdown_both, ignored);
  c->Close();
  --s->connections_open_;
  {
    std::lock_guard<std::mutex> l(mu);
    conns.erase(c);
  }
  ended.notify_all();
}

std::optional<std::pair<int, std::string>> ModelServer::InjectedError() {
  if (options_.inject_error_rate <= 0) return std::nullopt;
  // Deterministic: request k fails when floor(k x rate) steps up.
  uint64_t k = ++predict_calls_;
  double r = options_.inject_error_rate;
  if (std::floor(static_cast<double>(k) * r) > std::floor(static_cast<double>(k - 1) * r))
    return std::make_pair(500, Error("injected failure (--inject-error-rate)"));
  return std::nullopt;
}

void ModelServer::Record(double ms, bool error) {
  std::lock_guard<std::mutex> l(mu_);
  ++requests_;
  if (error) ++errors_;
  latencies_ms_.push_back(ms);
  if (latencies_ms_.size() > 10000) latencies_ms_.pop_front();
}

Metrics ModelServer::metrics() const {
  Metrics m;
  std::vector<double> lat;
  {
    std::lock_guard<std::mutex> l(mu_);
    m.requests = requests_;
    m.errors = errors_;
    m.predictions = predictions_;
    lat.assign(latencies_ms_.begin(), latencies_ms_.end());
  }
  m.in_flight = in_flight_;
  m.connections = connections_;
  m.connections_open = connections_open_;
  m.connections_refused = connections_refused_;
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    m.p50_ms = lat[lat.size() / 2];
    m.p99_ms = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  return m;
}

std::pair<int, std::string> ModelServer::Handle(const std::string& method,
                                                const std::string& target,
                                                const std::string& body) {
  if (IsPredict(method, target)) {
    if (auto injected = InjectedError()) return *std::move(injected);
    if (options_.inject_delay_ms > 0)
      std::this_thread::sleep_for(
          std::chrono::duration<double, std::milli>(options_.inject_delay_ms));
  }
  return Answer(method, target, body);
}

std::pair<int, std::string> ModelServer::Answer(const std::string& method,
                                                const std::string& target,
                                                const std::string& body) {
  std::string path = target.substr(0, target.find('?'));
  if (path == "/v1/predict") {
    if (method != "POST") return {405, Error("use POST for /v1/predict")};
    return Predict(body);
  }
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (method != "GET") return {405, Error(absl::StrCat("use GET for ", path))};
    if (path == "/healthz") return {200, Json{{"status", "ok"}}.dump()};
    if (path == "/readyz") {
      if (draining_) return {503, Json{{"status", "draining"}}.dump()};
      return {200, Json{{"status", "ready"}, {"model", options_.name}}.dump(
                       -1, ' ', false, Json::error_handler_t::replace)};
    }
    Metrics m = metrics();
    return {200, Json{{"model", options_.name},
                      {"requests", m.requests},
                      {"errors", m.errors},
                      {"in_flight", m.in_flight},
                      {"predictions", m.predictions},
                      {"connections", m.connections},
                      {"connections_open", m.connections_open},
                      {"connections_refused", m.connections_refused},
                      {"latency_p50_ms", m.p50_ms},
                      {"latency_p99_ms", m.p99_ms}}
                     .dump(-1, ' ', false, Json::error_handler_t::replace)};
  }
  return {404, Error(absl::StrCat("no such path ", Printable(path),
                                  "; try POST /v1/predict, GET /healthz, /readyz, /metrics"))};
}

std::pair<int, std::string> ModelServer::Predict(const std::string& body) {
  const size_t width = static_cast<size_t>(model_.sizes().front());
  PredictParse in = ParsePredictBody(body, width, options_.max_batch);
  if (!in.ok()) return {in.status, Error(in.error)};
  Eigen::MatrixXf x(static_cast<Eigen::Index>(in.input.rows),
                    static_cast<Eigen::Index>(in.input.cols));
  for (size_t i = 0; i < in.input.rows; ++i)
    for (size_t j = 0; j < in.input.cols; ++j)
      x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
          in.input.values[i * in.input.cols + j];
  Eigen::MatrixXf p = model_.Probabilities(x);
  Json preds = Json::array(), probs = Json::array();
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    if (!p.row(i).allFinite())
      return {400, Error(absl::StrCat("the model's output for input ", i,
                                      " is not a finite number (its values are too large)"))};
    Eigen::Index best = 0;
    p.row(i).maxCoeff(&best);
    preds.push_back(static_cast<int>(best));
    Json row = Json::array();
    for (Eigen::Index k = 0; k < p.cols(); ++k) row.push_back(p(i, k));
    probs.push_back(std::move(row));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    predictions_ += in.input.rows;
  }
  return {200, Json{{"predictions", preds}, {"probabilities", probs}}.dump()};
}

}  // namespace meridian::serve
