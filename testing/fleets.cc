#include "testing/fleets.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "core/clock.h"

namespace meridian::test {

namespace {
template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "test fixture: %s: %s\n", what, v.status().ToString().c_str());
    std::abort();
  }
  return *std::move(v);
}
void Must(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "test fixture: %s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}
}  // namespace

RegionId TestFleet::Region(const std::string& name, double utilization_ceiling) {
  meridian::Region r;
  r.name = name;
  r.cloud = "test";
  r.utilization_ceiling = utilization_ceiling;
  RegionId id = Must(builder_.AddRegion(r), "AddRegion");
  first_zone_.push_back(Must(builder_.AddZone(name + "-z0", id), "AddZone"));
  return id;
}

ZoneId TestFleet::Zone(const std::string& name, RegionId region) {
  return Must(builder_.AddZone(name, region), "AddZone");
}

NodeGroupId TestFleet::Group(GroupSpec spec) {
  NodeGroup g;
  g.name = spec.name;
  g.region = spec.region;
  g.zone = spec.zone.Valid() ? spec.zone : first_zone_.at(spec.region.index());
  if (!spec.gpu_type.empty()) {
    g.gpu_type = builder_.AddGpuType(spec.gpu_type);
    g.gpus_per_node = spec.gpus;
  }
  g.cpu_milli = spec.cpu_cores * 1000;
  g.memory_mib = spec.memory_gib * 1024;
  g.price_hour = spec.price_hour;
  g.spot_price_hour = spec.spot_price_hour;
  g.count = spec.count;
  g.spot_count = spec.spot_count;
  g.taints = std::move(spec.taints);
  return Must(builder_.AddNodeGroup(std::move(g)), "AddNodeGroup");
}

void TestFleet::Link(RegionId a, RegionId b, double rtt_ms, double gbps,
                     double egress_usd_per_gb) {
  meridian::Link l;
  l.rtt_ms = rtt_ms;
  l.gbps = gbps;
  l.egress_usd_per_gb = egress_usd_per_gb;
  Must(builder_.SetLink(a, b, l, /*symmetric=*/true), "SetLink");
}

DatasetId TestFleet::Dataset(const std::string& name, double size_gb, RegionId home) {
  meridian::Dataset d;
  d.name = name;
  d.size_gb = size_gb;
  d.home = home;
  return Must(builder_.AddDataset(d), "AddDataset");
}

void TestFleet::Unhealthy(NodeGroupId group, int32_t index) {
  Must(builder_.SetNodeHealth(group, index, false), "SetNodeHealth");
}

void TestFleet::Taint(NodeGroupId group, int32_t index, const std::string& taint) {
  Must(builder_.AddNodeTaint(group, index, taint), "AddNodeTaint");
}

Fleet TestFleet::Build() && { return Must(std::move(builder_).Build(), "Build"); }

Fleet UniformFleet(int32_t nodes, int32_t gpus_per_node) {
  TestFleet f;
  RegionId r = f.Region("r0");
  f.Group({.name = "n",
           .region = r,
           .gpus = gpus_per_node,
           .count = nodes,
           .cpu_cores = 8 * int64_t{gpus_per_node},
           .memory_gib = 64 * int64_t{gpus_per_node}});
  return std::move(f).Build();
}

SyntheticFleetOptions RandomFleetOptions(uint64_t seed) {
  Rng rng(seed * 7919 + 17);
  SyntheticFleetOptions o;
  o.nodes = static_cast<int32_t>(rng.Uniform(8, 64));
  o.regions = static_cast<int32_t>(rng.Uniform(1, 4));
  o.zones_per_region = static_cast<int32_t>(rng.Uniform(1, 2));
  o.gpu_types = static_cast<int32_t>(rng.Uniform(1, 4));
  o.spot_fraction = 0.3 * rng.UniformReal();
  o.unhealthy_fraction = 0.15 * rng.UniformReal();
  o.tainted_fraction = 0.4 * rng.UniformReal();
  o.utilization_ceiling = rng.UniformReal() < 0.3 ? 0.7 + 0.3 * rng.UniformReal() : 1.0;
  o.seed = seed;
  return o;
}

Fleet RandomFleet(uint64_t seed) {
  return Must(MakeSyntheticFleet(RandomFleetOptions(seed)), "MakeSyntheticFleet");
}

}  // namespace meridian::test
