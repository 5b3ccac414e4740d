// Test fleets: small hand-built fleets and seeded random ones.
//
// TestFleet wraps FleetBuilder for tests: every step CHECKs its status, since
// a fixture that cannot be built is a bug in the test, not a case to handle.
// Defaults keep hand-built fleets short to write: a region gets one zone
// ("<region>-z0") unless more are added, a group defaults to one on-demand
// node of 8 "a100" GPUs, 64 cores and 512 GiB at $8/node-hour.
// RandomFleet(seed) draws SyntheticFleetOptions from the seed (size, regions,
// GPU types, spot, unhealthy and tainted shares) and builds the synthetic
// fleet: same seed, same fleet. Not thread-safe; value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/fleet.h"
#include "core/synthetic.h"

namespace meridian::test {

struct GroupSpec {
  std::string name{};           // required, unique
  RegionId region{};             // required
  ZoneId zone{};                 // invalid: the region's first zone
  std::string gpu_type = "a100";  // empty: CPU-only nodes
  int32_t gpus = 8;              // per node; ignored for CPU-only nodes
  int32_t count = 1;             // on-demand nodes
  int32_t spot_count = 0;
  int64_t cpu_cores = 64;
  int64_t memory_gib = 512;
  double price_hour = 8.0;       // $/node-hour
  double spot_price_hour = 2.4;
  std::vector<std::string> taints{};
};

class TestFleet {
 public:
  // Adds a region and its first zone "<name>-z0".
  RegionId Region(const std::string& name, double utilization_ceiling = 1.0);
  ZoneId Zone(const std::string& name, RegionId region);
  NodeGroupId Group(GroupSpec spec);
  // Symmetric link.
  void Link(RegionId a, RegionId b, double rtt_ms, double gbps, double egress_usd_per_gb);
  DatasetId Dataset(const std::string& name, double size_gb, RegionId home);
  void Unhealthy(NodeGroupId group, int32_t index);
  void Taint(NodeGroupId group, int32_t index, const std::string& taint);

  Fleet Build() &&;

 private:
  FleetBuilder builder_;
  std::vector<ZoneId> first_zone_;  // by region index
};

// One region "r0" with `nodes` identical nodes of `gpus_per_node` "a100" GPUs
// (CPU and memory scale with the GPUs: 8 cores and 64 GiB per GPU).
Fleet UniformFleet(int32_t nodes, int32_t gpus_per_node);

// Options for a random synthetic fleet: 8..64 nodes, 1..4 regions, 1..2
// zones, 1..4 GPU types, spot 0..30%, unhealthy 0..15%, tainted groups 0..40%.
SyntheticFleetOptions RandomFleetOptions(uint64_t seed);
Fleet RandomFleet(uint64_t seed);

}  // namespace meridian::test
