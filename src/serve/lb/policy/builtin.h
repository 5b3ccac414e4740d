// Factories of the built-in load-balancing policies, one file each.
#pragma once

#include <memory>

#include "serve/lb/lb.h"

namespace meridian::lb {

// Hosts in turn, in id order.
absl::StatusOr<std::unique_ptr<Policy>> MakeRoundRobin(const LbOptions& options);
// Two hosts at random, the one with the lower expected wait; options:
// latency_aware=true|false (false: fewer requests in flight only, as Envoy).
absl::StatusOr<std::unique_ptr<Policy>> MakeLeastRequest(const LbOptions& options);
// Every host scanned, the fewest requests in flight (ties at random).
absl::StatusOr<std::unique_ptr<Policy>> MakeLeastLoaded(const LbOptions& options);
// A hash ring (vnodes per host, default 100) over the affinity key.
absl::StatusOr<std::unique_ptr<Policy>> MakeConsistentHash(const LbOptions& options);
// The caller's region first; options overflow_in_flight (default 8),
// panic_percent (default 50).
absl::StatusOr<std::unique_ptr<Policy>> MakeLocality(const LbOptions& options);
// Prequal-like: probes (default 3) classified hot or cold by requests in
// flight (hot above the quantile option, default 0.75), the coldest
// lowest-latency one wins.
absl::StatusOr<std::unique_ptr<Policy>> MakePrequal(const LbOptions& options);

// Latency averages closer than this are equal for the latency-aware
// policies, however large their ratio: below a millisecond a difference is a
// cold connection or scheduling noise, and a host that lost on it would get
// no requests, so its average would never be corrected.
constexpr double kLatencyNoiseMs = 1.0;

// Power-of-two-choices over `hosts` by expected cost; shared by policies.
size_t PickTwoByCost(const std::vector<Host>& hosts, const std::vector<size_t>& among,
                     bool latency_aware, Rng& rng);

}  // namespace meridian::lb
