// `meridian serve`: a trained model (written by `meridian train --save`)
// behind HTTP/1.1 (or HTTPS only, given a certificate) on Boost.Beast:
// Asio coroutines, one strand per connection, on a small fixed pool of
// event-loop threads (`threads`), keep-alive.
//
//   POST /v1/predict  {"input": [f, ...]} or {"inputs": [[f, ...], ...]}
//                     -> {"predictions": [class, ...], "probabilities": [[p, ...], ...]}
//   GET  /healthz     200 while the process runs
//   GET  /readyz      200 when the model is loaded and the server is not draining
//   GET  /metrics     JSON: requests, errors, in flight, connections accepted,
//                     latency percentiles
//
// Bad input is answered, never crashes the server: malformed JSON (also
// invalid UTF-8, numbers that overflow a double, nesting over 32 levels), a
// value out of float range or a wrong input size -> 400 with a message
// naming the problem (see predict_request.h); a model output that is not
// finite -> 400; ambiguous framing (Transfer-Encoding other than a lone
// chunked, or with Content-Length) -> 400; a body over the limit -> 413; an
// unknown path -> 404, a wrong method -> 405.
//
// Slow and idle clients: a request's header and body must arrive within
// `request_timeout_s` of its first byte, and a connection waiting for its
// next request (or its first) is closed after `idle_timeout_s`; either way
// the connection is closed without an answer. Over `max_connections` open
// connections, a new one gets `503` (`Connection: close`, over plain HTTP;
// over TLS it is closed at once, before the handshake) and is closed.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "train/mlp.h"

namespace meridian::serve {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  size_t max_body_bytes = 1 << 20;
  size_t max_batch = 4096;  // inputs per request
  std::string name;         // reported by /metrics (e.g. the model path)
  // Fault injection, for gateway tests and benchmarks: every predict answer
  // waits this long (an emulated slower accelerator), and this share of
  // predict requests, spread evenly, get 500.
  double inject_delay_ms = 0;
  double inject_error_rate = 0;
  // Event-loop threads serving every connection (requests are computed on
  // them too); 0: one per CPU.
  int threads = 4;
  double request_timeout_s = 10;  // header + body from the first byte; and writing an answer
  double idle_timeout_s = 60;     // waiting for the next request on a connection
  size_t max_connections = 1024;  // open at once; more get 503 and are closed
  // PEM certificate chain and private key: HTTPS only (TLS 1.2+). Both or neither.
  std::string tls_cert, tls_key;
};

// What one request did, for the server's metrics.
struct Metrics {
  uint64_t requests = 0, errors = 0, in_flight = 0, predictions = 0;
  uint64_t connections = 0;  // accepted since the start
  uint64_t connections_open = 0;
  uint64_t connections_refused = 0;  // over max_connections
  double p50_ms = 0, p99_ms = 0;
};

class ModelServer {
 public:
  static absl::StatusOr<std::unique_ptr<ModelServer>> Start(train::Mlp model,
                                                            ServerOptions options);
  ~ModelServer();  // Stop()
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  bool tls() const { return !options_.tls_cert.empty(); }
  // /readyz answers 503 from now on; requests in flight finish.
  void Drain() { draining_ = true; }
  void Stop();
  Metrics metrics() const;

  // The request handler, without sockets (tests, fuzzing): status and JSON
  // body. Waits --inject-delay-ms here, blocking; the server waits on a timer.
  std::pair<int, std::string> Handle(const std::string& method, const std::string& target,
                                     const std::string& body);

  struct Net;  // sockets, event loops (server.cc)

 private:
  ModelServer(train::Mlp model, ServerOptions options);
  friend struct Net;
  // Fault injection: the 500 this predict call gets, if it gets one.
  std::optional<std::pair<int, std::string>> InjectedError();
  // Handle, but a predict request is answered at once (no injected delay or error).
  std::pair<int, std::string> Answer(const std::string& method, const std::string& target,
                                     const std::string& body);
  std::pair<int, std::string> Predict(const std::string& body);
  void Record(double ms, bool error);

  train::Mlp model_;
  ServerOptions options_;
  int port_ = 0;
  std::atomic<bool> stopping_{false}, draining_{false};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> connections_{0}, connections_open_{0}, connections_refused_{0};
  mutable std::mutex mu_;
  uint64_t requests_ = 0, errors_ = 0, predictions_ = 0;
  std::atomic<uint64_t> predict_calls_{0};
  std::deque<double> latencies_ms_;  // the most recent requests
  std::unique_ptr<Net> net_;
};

}  // namespace meridian::serve
