#include "serve/lb/policy/builtin.h"

#include <algorithm>
#include <cmath>

namespace meridian::lb {

void RegisterBuiltinLbPolicies(LbRegistry& r) {
  (void)r.Register("round_robin", "hosts in turn", MakeRoundRobin);
  (void)r.Register("least_request",
                   "two hosts at random, the lower (in flight + 1) x latency (default)",
                   MakeLeastRequest);
  (void)r.Register("least_loaded", "full scan, fewest requests in flight", MakeLeastLoaded);
  (void)r.Register("consistent_hash", "hash ring over the X-Affinity-Key header",
                   MakeConsistentHash);
  (void)r.Register("locality",
                   "the caller's region until its load passes a threshold; panic threshold",
                   MakeLocality);
  (void)r.Register("prequal", "probes: requests in flight (hot/cold), then latency", MakePrequal);
}

size_t PickTwoByCost(const std::vector<Host>& hosts, const std::vector<size_t>& among,
                     bool latency_aware, Rng& rng) {
  if (among.size() == 1) return among[0];
  size_t n = among.size();
  size_t a = static_cast<size_t>(rng.Uniform(0, static_cast<int64_t>(n) - 1));
  size_t b = static_cast<size_t>(rng.Uniform(0, static_cast<int64_t>(n) - 2));
  if (b >= a) ++b;  // two distinct hosts
  const Host& ha = hosts[among[a]];
  const Host& hb = hosts[among[b]];
  if (!latency_aware) {
    if (ha.in_flight != hb.in_flight) return ha.in_flight < hb.in_flight ? among[a] : among[b];
    return among[a];
  }
  // Latencies within kLatencyTolerance of each other, or within
  // kLatencyNoiseMs, are noise: compare
  // requests in flight only, as the latency-blind policy does; beyond it,
  // the expected wait decides.
  constexpr double kLatencyTolerance = 1.5;
  double mean = MeanLatency(hosts);
  double la = ha.latency_ms > 0 ? ha.latency_ms : mean;
  double lb = hb.latency_ms > 0 ? hb.latency_ms : mean;
  if (std::max(la, lb) <= kLatencyTolerance * std::min(la, lb) ||
      std::abs(la - lb) < kLatencyNoiseMs)
    return hb.in_flight < ha.in_flight ? among[b] : among[a];
  return ExpectedCost(ha, mean) <= ExpectedCost(hb, mean) ? among[a] : among[b];
}

}  // namespace meridian::lb
