// `meridian serve`: a model written by `meridian train --save` behind HTTP,
// until SIGINT or SIGTERM (then it drains: /readyz answers 503, requests in
// flight finish). `meridian predict`: its client for the demo.
#include <signal.h>

#include <algorithm>
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "serve/server.h"
#include "train/dataset.h"
#include "train/mlp.h"

namespace meridian::cli {

int RunServe(const ServeArgs& in) {
  ServeArgs a = in;
  // Inside a Meridian job: a relative model is in the cluster's shared
  // directory, and `--listen job` is the port the controller reserved.
  const char* shared = std::getenv("MERIDIAN_SHARED_DIR");
  if (shared != nullptr && *shared != '\0' && !a.model.empty() && a.model[0] != '/')
    a.model = std::string(shared) + "/" + a.model;
  if (a.listen == "job") {
    const char* host = std::getenv("MASTER_ADDR");
    const char* port = std::getenv("MASTER_PORT");
    if (host == nullptr || port == nullptr || *port == '\0') {
      std::fprintf(stderr, "meridian serve: --listen job needs MASTER_ADDR and MASTER_PORT (set "
                           "inside a Meridian job)\n");
      return kExitInvalid;
    }
    a.listen = std::string(host) + ":" + port;
  }
  absl::StatusOr<train::Mlp> model = train::LoadModel(a.model);
  if (!model.ok()) {
    std::fprintf(stderr, "meridian serve: %s\n", std::string(model.status().message()).c_str());
    return kExitInvalid;
  }
  std::vector<int> sizes = model->sizes();
  // Block the stop signals before any thread starts, then wait for one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  serve::ServerOptions o;
  o.listen = a.listen;
  o.max_body_bytes = static_cast<size_t>(a.max_body_bytes);
  o.name = a.model;
  o.inject_delay_ms = a.inject_delay_ms;
  o.inject_error_rate = a.inject_error_rate;
  o.threads = a.threads;
  o.request_timeout_s = a.request_timeout_s;
  o.idle_timeout_s = a.idle_timeout_s;
  o.max_connections = static_cast<size_t>(a.max_connections);
  o.tls_cert = a.tls_cert;
  o.tls_key = a.tls_key;
  absl::StatusOr<std::unique_ptr<serve::ModelServer>> s =
      serve::ModelServer::Start(*std::move(model), o);
  if (!s.ok()) {
    std::fprintf(stderr, "meridian serve: %s\n", std::string(s.status().message()).c_str());
    return absl::IsInvalidArgument(s.status()) ? kExitInvalid : kExitError;
  }
  if (!a.address_file.empty()) {
    absl::Status w = WriteFileAtomic(a.address_file, (*s)->address() + "\n", 0644);
    if (!w.ok()) {
      std::fprintf(stderr, "meridian serve: %s\n", std::string(w.message()).c_str());
      return kExitError;
    }
  }
  std::printf("serving %s (%d inputs -> %d classes) on %s://%s\n", a.model.c_str(), sizes.front(),
              sizes.back(), (*s)->tls() ? "https" : "http", (*s)->address().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*s)->Drain();
  if (a.drain_seconds > 0) {
    // Gateways see /readyz fail and stop sending; what they sent meanwhile is served.
    std::printf("draining for %.1f s\n", a.drain_seconds);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(a.drain_seconds));
  }
  (*s)->Stop();
  serve::Metrics m = (*s)->metrics();
  std::printf("stopped: %llu requests, %llu errors\n", static_cast<unsigned long long>(m.requests),
              static_cast<unsigned long long>(m.errors));
  return kExitOk;
}

std::string HttpGet(const std::string& address, const std::string& target) {
  namespace net = boost::asio;
  namespace http = boost::beast::http;
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) return "";
  try {
    net::io_context ioc;
    net::ip::tcp::socket sock(ioc);
    sock.connect({net::ip::make_address(address.substr(0, colon)), static_cast<unsigned short>(port)});
    http::request<http::string_body> req(http::verb::get, target, 11);
    req.set(http::field::host, address);
    http::write(sock, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    return res.body();
  } catch (const std::exception&) {
    return "";
  }
}

// `meridian predict`: sends held-out samples to a running `meridian serve`,
// one request each on a keep-alive connection, and reports accuracy and
// latency: the client side of the demo.
int RunPredict(const PredictArgs& a) {
  namespace net = boost::asio;
  namespace http = boost::beast::http;
  train::Dataset all;
  if (a.dataset == "synthetic") {
    all = train::SyntheticDigits(2000, a.seed);
  } else {
    std::string path = a.dataset;
    if (a.dataset == "digits") path = DigitsPath();
    absl::StatusOr<train::Dataset> d = train::LoadDigitsCsv(path);
    if (!d.ok()) {
      std::fprintf(stderr, "meridian predict: %s\n", std::string(d.status().message()).c_str());
      return kExitInvalid;
    }
    all = *std::move(d);
  }
  train::Dataset tr, te;
  train::Split(all, 0.25, a.seed, &tr, &te);  // the split `meridian train` holds out
  size_t colon = a.server.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(a.server.substr(colon + 1), &port)) {
    std::fprintf(stderr, "meridian predict: --server '%s' is not HOST:PORT\n", a.server.c_str());
    return kExitInvalid;
  }
  try {
    net::io_context ioc;
    net::ip::tcp::socket sock(ioc);
    sock.connect({net::ip::make_address(a.server.substr(0, colon)), static_cast<unsigned short>(port)});
    size_t n = std::min<size_t>(static_cast<size_t>(a.samples), te.size());
    size_t right = 0, errors = 0;
    std::vector<double> ms;
    boost::beast::flat_buffer buf;
    for (size_t i = 0; i < n; ++i) {
      nlohmann::json row = nlohmann::json::array();
      for (Eigen::Index k = 0; k < te.x.cols(); ++k) row.push_back(te.x(static_cast<Eigen::Index>(i), k));
      http::request<http::string_body> req(
          http::verb::post,
          a.endpoint.empty() ? "/v1/predict" : "/v1/endpoints/" + a.endpoint + "/predict", 11);
      req.set(http::field::host, a.server);
      if (!a.token.empty()) req.set(http::field::authorization, "Bearer " + a.token);
      req.set(http::field::content_type, "application/json");
      req.keep_alive(true);
      req.body() = nlohmann::json{{"input", row}}.dump();
      req.prepare_payload();
      auto t0 = std::chrono::steady_clock::now();
      http::write(sock, req);
      http::response<http::string_body> res;
      http::read(sock, buf, res);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (res.result_int() != 200) {
        if (errors++ == 0)
          std::fprintf(stderr, "meridian predict: HTTP %d: %s\n", res.result_int(), res.body().c_str());
        continue;
      }
      right += nlohmann::json::parse(res.body())["predictions"][0].get<int>() == te.y[i] ? 1 : 0;
    }
    std::sort(ms.begin(), ms.end());
    double p50 = ms.empty() ? 0 : ms[ms.size() / 2], p99 = ms.empty() ? 0 : ms[ms.size() * 99 / 100];
    std::printf("%zu requests to %s: %zu errors, accuracy %.2f%%, latency p50 %.2f ms, p99 %.2f ms\n",
                n, a.server.c_str(), errors, n ? 100.0 * right / n : 0.0, p50, p99);
    return errors == 0 ? kExitOk : kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "meridian predict: %s: %s\n", a.server.c_str(), e.what());
    return kExitError;
  }
}

}  // namespace meridian::cli
