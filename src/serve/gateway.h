// `meridian gateway`: an HTTP/1.1 reverse proxy in front of model-server
// replicas, event-driven on Boost.Asio/Beast (C++20 coroutines on a small
// thread pool), with keep-alive connection pools to every replica.
//
//   POST /v1/endpoints/NAME/predict  -> a replica's POST /v1/predict
//   POST /v1/predict                 -> the same, when there is one endpoint
//   GET  /healthz                    the gateway itself
//   GET  /gateway/status             JSON: endpoints, replicas, health, ejections
//
// Before a request is proxied, its framing is checked (Transfer-Encoding
// other than a lone chunked, with Content-Length, or Content-Length twice:
// 400, see http_front.h), its target must be a normal path (`..`, `//`,
// percent-encoded dots or slashes: 400), and hop-by-hop headers
// (Connection and what it names, Keep-Alive, Proxy-*, TE, Trailer,
// Transfer-Encoding, Upgrade) are dropped.
//
// Per request: the bearer token of the endpoint is checked (401), an
// eligible replica is chosen by the endpoint's lb::Upstreams (policy,
// health, ejection), and on a refused connection, a timeout or a 5xx the
// request is sent to another replica, up to `retries` times (predictions
// are idempotent). With no eligible replica the answer is 503 at once.
// Headers: `Authorization: Bearer T`, `X-Meridian-Region` (the caller's
// region, default the gateway's), `X-Meridian-Zone` (the caller's zone,
// default the gateway's when the region is), `X-Affinity-Key`
// (consistent_hash); answers carry `X-Meridian-Replica`.
//
// Active health checks: every `interval_s`, GET /readyz on each replica
// (then /metrics for its requests in flight, which prequal uses).
//
// TLS: with `tls_cert`/`tls_key` the gateway serves HTTPS only; replicas
// given as `https://HOST:PORT` are reached over TLS (verified against
// `upstream_ca`), the rest over plain HTTP (the controller's replicas are
// plain).
//
// Thread-safe. Endpoints can be replaced while serving (SetEndpoints), as
// the controller's list changes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "serve/lb/lb.h"
#include "serve/lb/upstreams.h"

namespace meridian::serve {

struct EndpointConfig {
  std::string name;
  std::vector<lb::HostConfig> hosts;
  std::string token;  // bearer token; empty = no authentication
};

struct HealthCheckOptions {
  double interval_s = 1.0;
  double timeout_s = 1.0;
  int unhealthy_threshold = 2;  // failed checks in a row before a replica is unhealthy
  int healthy_threshold = 1;    // passed checks in a row before it is healthy again
};

struct GatewayOptions {
  std::string listen = "127.0.0.1:8080";
  // Event-loop threads; 0: one per CPU this process may run on (its
  // affinity mask), as nginx's `worker_processes auto`.
  int threads = 2;
  std::string policy = "least_request";
  lb::LbOptions policy_options;
  lb::OutlierOptions outlier;
  HealthCheckOptions health;
  int retries = 1;                // further replicas tried after a failure
  double connect_timeout_s = 1.0;
  double upstream_timeout_s = 30.0;
  size_t max_body_bytes = 1 << 20;
  // Client connections: a request's header and body must arrive within
  // request_timeout_s of its first byte (an answer must be taken within it
  // too), a connection waiting for its next request is closed after
  // idle_timeout_s, and over max_connections open ones a new connection
  // gets 503 (Connection: close) and is closed.
  double request_timeout_s = 30.0;
  double idle_timeout_s = 120.0;
  size_t max_connections = 10000;
  // PEM certificate chain and key: clients speak HTTPS only (TLS 1.2+).
  std::string tls_cert, tls_key;
  // A replica whose address is `https://HOST:PORT` is reached over TLS, its
  // certificate verified against this PEM bundle (empty: the system's CAs)
  // and its name or IP address. Other replicas are plain HTTP.
  std::string upstream_ca;
  std::string region;             // the gateway's region: the default caller region
  std::string zone;               // the gateway's zone in it: the default caller zone
  size_t max_idle_per_host = 256; // pooled keep-alive connections per replica
  uint64_t seed = 1;
};

// What an endpoint carries now, for autoscaling and `status`.
struct EndpointLoad {
  std::string name;
  int64_t in_flight = 0;
  uint64_t requests = 0, failed = 0;  // failed: answered 5xx to the client
  size_t replicas = 0, eligible = 0;
};

class Gateway {
 public:
  // `clock` (ejection times) must outlive the gateway.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(GatewayOptions options,
                                                        std::vector<EndpointConfig> endpoints,
                                                        const Clock* clock);
  ~Gateway();  // Stop()
  void SetEndpoints(std::vector<EndpointConfig> endpoints);
  int port() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  void Stop();
  std::string StatusJson() const;
  std::vector<EndpointLoad> Load() const;

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks a policy name and its options against the built-in registry.
absl::Status CheckPolicy(const std::string& policy, const lb::LbOptions& options);

}  // namespace meridian::serve
