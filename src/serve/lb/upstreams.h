// Upstreams: the replicas of one endpoint and what the gateway knows of
// each: requests in flight, a latency moving average, active health-check
// results and passive outlier ejection.
//
// Eligible hosts are those healthy by the active check (a new host is
// presumed healthy until a check fails `unhealthy_threshold` times, or
// unhealthy until one passes: HostConfig::presumed_healthy) and not
// ejected. Outlier ejection, after Envoy's outlier detection:
//   - `consecutive_errors` failures in a row (5xx, refused or reset
//     connection, timeout) eject a host;
//   - a host whose latency average passes `slow_factor` x the median of the
//     others (each with `min_latency_samples` answers), and the median by at
//     least `slow_min_ms`, is ejected as slow;
//   - the k-th ejection lasts k x `base_ejection_s` (at most
//     `max_ejection_s`); then the host returns, and a success resets its
//     error count;
//   - no ejection leaves more than `max_ejected_percent` of the hosts
//     ejected.
//
// Thread-safe: one mutex guards the state; the policy is called under it.
// Time comes from the injected Clock, randomness from a seeded Rng.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "serve/lb/lb.h"

namespace meridian::lb {

struct OutlierOptions {
  int consecutive_errors = 5;         // 0 = never eject for errors
  double slow_factor = 3.0;           // 0 = never eject for latency
  // ... and only this far above the median: between replicas that answer in
  // under a millisecond, 3x is a cold connection or scheduling noise.
  double slow_min_ms = 2.0;
  int min_latency_samples = 20;       // answers before a host's latency counts
  double base_ejection_s = 5.0;
  double max_ejection_s = 300.0;
  double max_ejected_percent = 50.0;  // of the endpoint's hosts
  double latency_alpha = 0.1;         // weight of a new answer in the average
  // A host's average fades towards the others' mean with the time since its
  // last answer (weight exp(-t / latency_decay_s)); 0 = never. Without it, a
  // host whose only answer was slow (a cold start) is never picked again by
  // the latency-aware policies, so its average never corrects (as linkerd's
  // peak-EWMA decays its RTT estimate).
  double latency_decay_s = 10.0;
  // ... and with the picks of other hosts since its last answer (weight
  // exp(-picks / (latency_decay_picks x hosts))): a burst of requests must
  // not starve it either. 0 = never.
  double latency_decay_picks = 16.0;
  // When every host fails its health checks, route to them anyway (Envoy's
  // panic mode): a health checker that cannot get through under overload
  // must not turn an endpoint off. Dead hosts then fail fast (refused).
  bool panic_when_all_unhealthy = true;
};

struct HostConfig {
  std::string id;  // "host:port"
  std::string region;
  // A new host takes traffic before its first health check (static
  // replicas), or only after one passes (replicas that may still be
  // starting, as the controller's).
  bool presumed_healthy = true;
  std::string zone = "";  // zone inside `region` (empty = unknown)
};

struct HostStatus {
  std::string id, region, zone;
  bool healthy = true, ejected = false;
  int64_t in_flight = 0, probed_in_flight = -1;
  double latency_ms = 0;
  uint64_t requests = 0, errors = 0, ejections = 0;
  double ejected_for_s = 0;  // remaining
  std::string last_ejection_reason;
};

class Upstreams {
 public:
  Upstreams(std::unique_ptr<Policy> policy, OutlierOptions options, const Clock* clock,
            uint64_t seed);

  // Replaces the host list; hosts that stay keep their state. Returns the
  // ids of the hosts that are new.
  std::vector<std::string> SetHosts(const std::vector<HostConfig>& hosts);
  // Chooses an eligible host not in `exclude` and counts a request in flight
  // there, or nullopt when none is eligible. Every returned host must be
  // given back with Done().
  std::optional<std::string> Pick(const PickContext& ctx, const std::vector<std::string>& exclude);
  // The end of a request to `id`: success or failure and its latency.
  void Done(const std::string& id, bool ok, double latency_ms);
  // An active health check of `id`: passed or not, and the replica's own
  // count of requests in flight (-1 when unknown).
  void HealthResult(const std::string& id, bool ok, int64_t probed_in_flight,
                    int unhealthy_threshold, int healthy_threshold);

  std::vector<HostStatus> Status() const;
  std::vector<std::string> HostIds() const;
  int64_t InFlight() const;
  // "3 replicas: 1 unhealthy, 2 ejected": why nothing was eligible.
  std::string Describe() const;
  std::string_view policy_name() const { return policy_->name(); }

 private:
  struct State {
    HostConfig config;
    bool healthy = true;
    int check_failures = 0, check_successes = 0;
    int64_t in_flight = 0, probed_in_flight = -1;
    double latency_ms = 0;         // moving average: outlier detection, status
    double policy_latency_ms = 0;  // the same, folded from its faded value: policies
    uint64_t latency_samples = 0;
    double last_answer_s = 0;  // clock seconds of the last latency sample
    uint64_t picks_at_answer = 0;  // picks_ then
    int consecutive_errors = 0;
    double ejected_until = 0;  // clock seconds
    int ejections = 0;
    uint64_t requests = 0, errors = 0;
    std::string reason;
  };
  bool EjectedLocked(const State& s, double now) const { return s.ejected_until > now; }
  void MaybeEjectLocked(State& s, double now, const std::string& reason);
  bool SlowLocked(const State& s) const;
  // The sum of the hosts' averages (those with samples), and one host's
  // average faded towards the others' mean (latency_decay_s).
  struct LatencySum {
    double sum = 0;
    int n = 0;
  };
  LatencySum LatencySumLocked() const;
  uint64_t picks_ = 0;  // every pick of every host
  double FadedLatencyLocked(const State& s, double now, const LatencySum& all) const;

  std::unique_ptr<Policy> policy_;
  OutlierOptions options_;
  const Clock* clock_;
  mutable std::mutex mu_;
  Rng rng_;
  std::vector<State> hosts_;  // sorted by id
  std::vector<Host> scratch_;
  std::vector<size_t> scratch_index_;
};

}  // namespace meridian::lb
