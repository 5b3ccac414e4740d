#include "serve/server.h"

#include <sys/socket.h>

#include <algorithm>
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace meridian::serve {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Json = nlohmann::json;

std::string Error(const std::string& message) { return Json{{"error", message}}.dump(); }

// The io_context and acceptor, kept out of the header.
struct Net {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
};

std::mutex g_nets_mu;
std::map<const ModelServer*, std::unique_ptr<Net>>& Nets() {
  static auto* nets = new std::map<const ModelServer*, std::unique_ptr<Net>>();
  return *nets;
}

Net* NetOf(const ModelServer* s) {
  std::lock_guard<std::mutex> l(g_nets_mu);
  auto it = Nets().find(s);
  return it == Nets().end() ? nullptr : it->second.get();
}

}  // namespace

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
  std::unique_ptr<ModelServer> s(new ModelServer(std::move(model), std::move(options)));
  auto n = std::make_unique<Net>();
  tcp::endpoint ep(ip, static_cast<unsigned short>(port));
  n->acceptor.open(ep.protocol(), ec);
  if (!ec) n->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) n->acceptor.bind(ep, ec);
  if (!ec) n->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", s->options_.listen, ": ", ec.message()));
  s->port_ = n->acceptor.local_endpoint().port();
  s->listen_fd_ = n->acceptor.native_handle();
  {
    std::lock_guard<std::mutex> l(g_nets_mu);
    Nets()[s.get()] = std::move(n);
  }
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

ModelServer::~ModelServer() {
  Stop();
  std::lock_guard<std::mutex> l(g_nets_mu);
  Nets().erase(this);
}

void ModelServer::Stop() {
  if (stopping_.exchange(true)) return;
  draining_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<Conn> conns;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    conns.swap(conns_);
  }
  for (Conn& c : conns) c.thread.join();
  if (Net* n = NetOf(this)) {
    beast::error_code ec;
    n->acceptor.close(ec);
  }
}

void ModelServer::AcceptLoop() {
  Net* n = NetOf(this);
  while (!stopping_) {
    tcp::socket sock(n->ioc);
    beast::error_code ec;
    n->acceptor.accept(sock, ec);
    if (stopping_) return;
    if (ec) {
      if (ec == net::error::invalid_argument || ec == net::error::bad_descriptor) return;
      continue;
    }
    ++connections_;
    sock.set_option(tcp::no_delay(true), ec);
    int fd = sock.release(ec);
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    // Join the connections that have ended, so threads do not pile up.
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (*it->done) {
        it->thread.join();
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
    fds_.push_back(fd);
    auto done = std::make_shared<std::atomic<bool>>(false);
    conns_.push_back(Conn{std::thread([this, fd, done] {
                            Serve(fd);
                            *done = true;
                          }),
                          done});
  }
}

void ModelServer::Serve(int fd) {
  Net* n = NetOf(this);
  tcp::socket sock(n->ioc);
  beast::error_code ec;
  sock.assign(tcp::v4(), fd, ec);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(16 * 1024);
    http::read(sock, buffer, parser, ec);
    http::response<http::string_body> res;
    res.set(http::field::content_type, "application/json");
    res.set(http::field::server, "meridian-serve");
    bool keep_alive = false;
    if (ec == http::error::body_limit) {
      res.result(http::status::payload_too_large);
      res.body() = Error(absl::StrCat("request body over the limit of ", options_.max_body_bytes,
                                      " bytes"));
      Record(0, true);
    } else if (ec) {
      break;  // closed, reset, or not HTTP: nothing to answer
    } else {
      http::request<http::string_body> req = parser.release();
      keep_alive = req.keep_alive();
      ++in_flight_;
      auto t0 = std::chrono::steady_clock::now();
      auto [status, body] = Handle(std::string(req.method_string()), std::string(req.target()),
                                   req.body());
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count();
      --in_flight_;
      Record(ms, status >= 400);
      res.result(static_cast<http::status>(status));
      res.version(req.version());
      res.body() = std::move(body);
    }
    res.keep_alive(keep_alive);
    res.prepare_payload();
    http::write(sock, res, ec);
    if (ec || !keep_alive) break;
  }
  sock.shutdown(tcp::socket::shutdown_both, ec);
  int native = sock.release(ec);
  std::lock_guard<std::mutex> l(mu_);
  fds_.erase(std::remove(fds_.begin(), fds_.end(), native), fds_.end());
  ::close(native);
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
  std::string path = target.substr(0, target.find('?'));
  if (path == "/v1/predict") {
    if (method != "POST") return {405, Error("use POST for /v1/predict")};
    if (options_.inject_error_rate > 0) {
      // Deterministic: request k fails when floor(k x rate) steps up.
      uint64_t k = ++predict_calls_;
      double r = options_.inject_error_rate;
      if (std::floor(static_cast<double>(k) * r) > std::floor(static_cast<double>(k - 1) * r))
        return {500, Error("injected failure (--inject-error-rate)")};
    }
    if (options_.inject_delay_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(options_.inject_delay_ms));
    return Predict(body);
  }
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (method != "GET") return {405, Error(absl::StrCat("use GET for ", path))};
    if (path == "/healthz") return {200, Json{{"status", "ok"}}.dump()};
    if (path == "/readyz") {
      if (draining_) return {503, Json{{"status", "draining"}}.dump()};
      return {200, Json{{"status", "ready"}, {"model", options_.name}}.dump()};
    }
    Metrics m = metrics();
    return {200, Json{{"model", options_.name},
                      {"requests", m.requests},
                      {"errors", m.errors},
                      {"in_flight", m.in_flight},
                      {"predictions", m.predictions},
                      {"connections", m.connections},
                      {"latency_p50_ms", m.p50_ms},
                      {"latency_p99_ms", m.p99_ms}}
                     .dump()};
  }
  return {404, Error(absl::StrCat("no such path ", path,
                                  "; try POST /v1/predict, GET /healthz, /readyz, /metrics"))};
}

std::pair<int, std::string> ModelServer::Predict(const std::string& body) {
  Json req;
  try {
    req = Json::parse(body);
  } catch (const Json::parse_error& e) {
    return {400, Error(absl::StrCat("malformed JSON: ", e.what()))};
  }
  const size_t width = static_cast<size_t>(model_.sizes().front());
  std::vector<const Json*> rows;
  if (req.is_object() && req.contains("inputs") && req["inputs"].is_array()) {
    for (const Json& r : req["inputs"]) rows.push_back(&r);
  } else if (req.is_object() && req.contains("input")) {
    rows.push_back(&req["input"]);
  } else {
    return {400, Error("expected {\"input\": [numbers]} or {\"inputs\": [[numbers], ...]}")};
  }
  if (rows.empty()) return {400, Error("\"inputs\" is empty")};
  if (rows.size() > options_.max_batch)
    return {413, Error(absl::StrCat(rows.size(), " inputs; at most ", options_.max_batch,
                                    " per request"))};
  Eigen::MatrixXf x(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(width));
  for (size_t i = 0; i < rows.size(); ++i) {
    const Json& r = *rows[i];
    if (!r.is_array())
      return {400, Error(absl::StrCat("input ", i, " is not an array of numbers"))};
    if (r.size() != width)
      return {400, Error(absl::StrCat("input ", i, " has ", r.size(), " values; the model takes ",
                                      width))};
    for (size_t j = 0; j < width; ++j) {
      if (!r[j].is_number())
        return {400, Error(absl::StrCat("input ", i, " value ", j, " is not a number"))};
      x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = r[j].get<float>();
    }
  }
  Eigen::MatrixXf p = model_.Probabilities(x);
  Json preds = Json::array(), probs = Json::array();
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    Eigen::Index best = 0;
    p.row(i).maxCoeff(&best);
    preds.push_back(static_cast<int>(best));
    Json row = Json::array();
    for (Eigen::Index k = 0; k < p.cols(); ++k) row.push_back(p(i, k));
    probs.push_back(std::move(row));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    predictions_ += rows.size();
  }
  return {200, Json{{"predictions", preds}, {"probabilities", probs}}.dump()};
}

}  // namespace meridian::serve
