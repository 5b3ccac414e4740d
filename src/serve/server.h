// `meridian serve`: a trained model (written by `meridian train --save`)
// behind HTTP/1.1 on Boost.Beast, one thread per connection, keep-alive.
//
//   POST /v1/predict  {"input": [f, ...]} or {"inputs": [[f, ...], ...]}
//                     -> {"predictions": [class, ...], "probabilities": [[p, ...], ...]}
//   GET  /healthz     200 while the process runs
//   GET  /readyz      200 when the model is loaded and the server is not draining
//   GET  /metrics     JSON: requests, errors, in flight, connections accepted,
//                     latency percentiles
//
// Bad input is answered, never crashes the server: malformed JSON or a wrong
// input size -> 400 with a message, a body over the limit -> 413, an unknown
// path -> 404, a wrong method -> 405.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
};

// What one request did, for the server's metrics.
struct Metrics {
  uint64_t requests = 0, errors = 0, in_flight = 0, predictions = 0;
  uint64_t connections = 0;  // accepted since the start
  double p50_ms = 0, p99_ms = 0;
};

class ModelServer {
 public:
  static absl::StatusOr<std::unique_ptr<ModelServer>> Start(train::Mlp model,
                                                            ServerOptions options);
  ~ModelServer();  // Stop()
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // /readyz answers 503 from now on; requests in flight finish.
  void Drain() { draining_ = true; }
  void Stop();
  Metrics metrics() const;

  // The request handler, without sockets (tests, fuzzing): status and JSON body.
  std::pair<int, std::string> Handle(const std::string& method, const std::string& target,
                                     const std::string& body);

 private:
  ModelServer(train::Mlp model, ServerOptions options);
  void AcceptLoop();
  void Serve(int fd);
  std::pair<int, std::string> Predict(const std::string& body);
  void Record(double ms, bool error);

  train::Mlp model_;
  ServerOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false}, draining_{false};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> connections_{0};
  mutable std::mutex mu_;
  uint64_t requests_ = 0, errors_ = 0, predictions_ = 0;
  std::atomic<uint64_t> predict_calls_{0};
  std::deque<double> latencies_ms_;  // the most recent requests
  struct Conn {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<int> fds_;
  std::vector<Conn> conns_;  // finished ones are joined as new ones arrive
  std::thread acceptor_;
};

}  // namespace meridian::serve
