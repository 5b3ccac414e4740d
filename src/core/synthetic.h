// Synthetic fleets and job mixes for benchmarks, property tests and the
// simulator's scale runs. Deterministic for a seed.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "core/fleet.h"
#include "core/workload.h"

namespace meridian {

struct SyntheticFleetOptions {
  int32_t nodes = 1000;
  int32_t regions = 4;
  int32_t zones_per_region = 2;
  // GPU types cycle over node groups: "a100" (8/node), "h100" (8), "l4" (4), "v100" (4).
  int32_t gpu_types = 4;
  double spot_fraction = 0.1;      // share of each group's nodes that are spot
  double unhealthy_fraction = 0;   // share of nodes marked unhealthy
  double tainted_fraction = 0;     // share of node groups tainted "dedicated=team"
  double utilization_ceiling = 1.0;
  uint64_t seed = 1;
};

// Regions "region-<i>", zones "region-<i>-<z>", links between every pair
// (RTT 10-150 ms, 1-10 Gbit/s, $0.01-0.09/GB), one dataset per region.
absl::StatusOr<Fleet> MakeSyntheticFleet(const SyntheticFleetOptions& options);

struct SyntheticJobOptions {
  int32_t jobs = 100;
  int32_t tenants = 3;
  int32_t max_replicas = 8;       // gang sizes drawn from 1..max (powers of two favoured)
  double fractional_share = 0.2;  // jobs asking for a fraction of one GPU
  double residency_share = 0.2;   // jobs limited to one or two regions
  double spot_share = 0.3;
  double cross_region_share = 0.1;
  int32_t priorities = 3;         // priorities 0, 10, 20, ...
  uint64_t seed = 1;
};

// A job mix against `fleet` (uses its GPU types, regions, datasets). Tenants
// "tenant-<i>" with weight i+1, guarantee of a share of the fleet's GPUs.
Workload MakeSyntheticJobs(const Fleet& fleet, const SyntheticJobOptions& options);

}  // namespace meridian
