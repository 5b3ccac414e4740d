// Helpers shared by the spec tests: parse-and-collect, diagnostic lookup,
// field-by-field fleet comparison. Test-only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/fleet.h"
#include "gtest/gtest.h"
#include "spec/spec.h"

namespace meridian::spec::testing_util {

inline std::string SourceDir() { return MERIDIAN_SOURCE_DIR; }
inline std::string ExampleFleetPath() { return SourceDir() + "/examples/fleets/multi-region.yaml"; }
inline std::string ExampleWorkloadPath() { return SourceDir() + "/examples/jobs/mixed.yaml"; }
inline std::string SharedDataDir() { return SourceDir() + "/../shared/data"; }

inline std::string Join(const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const Diagnostic& d : diags) out += d.ToString() + "\n";
  return out;
}

inline std::vector<Diagnostic> FleetDiags(std::string_view text, std::string_view file = "f.yaml") {
  std::vector<Diagnostic> diags;
  absl::StatusOr<Fleet> f = ParseFleet(text, file, &diags);
  EXPECT_FALSE(f.ok()) << "expected the fleet to be rejected";
  if (!f.ok()) {
    EXPECT_FALSE(diags.empty());
    if (!diags.empty()) {
      EXPECT_EQ(f.status().message(), diags.front().ToString());
    }
  }
  return diags;
}

inline std::vector<Diagnostic> WorkloadDiags(std::string_view text, const Fleet* fleet,
                                             std::string_view file = "w.yaml") {
  std::vector<Diagnostic> diags;
  absl::StatusOr<Workload> w = ParseWorkload(text, file, fleet, &diags);
  EXPECT_FALSE(w.ok()) << "expected the workload to be rejected";
  if (!w.ok()) {
    EXPECT_FALSE(diags.empty());
  }
  return diags;
}

// True when some diagnostic has this position and path and its message
// contains `fragment` (line/column 0 match anything).
inline bool HasDiag(const std::vector<Diagnostic>& diags, int line, int column,
                    std::string_view path, std::string_view fragment) {
  for (const Diagnostic& d : diags) {
    if ((line == 0 || d.line == line) && (column == 0 || d.column == column) && d.path == path &&
        d.message.find(fragment) != std::string::npos)
      return true;
  }
  return false;
}

#define EXPECT_DIAG(diags, line, column, path, fragment)                                    \
  EXPECT_TRUE(::meridian::spec::testing_util::HasDiag(diags, line, column, path, fragment)) \
      << "wanted " << line << ":" << column << ": " << path << ": ..." << fragment          \
      << "...\ngot:\n"                                                                      \
      << ::meridian::spec::testing_util::Join(diags)

inline void ExpectLinkEq(const Link& a, const Link& b, const std::string& what) {
  EXPECT_EQ(a.known, b.known) << what;
  EXPECT_EQ(a.rtt_ms, b.rtt_ms) << what;
  EXPECT_EQ(a.gbps, b.gbps) << what;
  EXPECT_EQ(a.egress_usd_per_gb, b.egress_usd_per_gb) << what;
}

// Field-by-field equality of two fleets (ids, names, shapes, prices, nodes,
// links, datasets).
inline void ExpectFleetsEqual(const Fleet& a, const Fleet& b) {
  ASSERT_EQ(a.regions().size(), b.regions().size());
  for (size_t i = 0; i < a.regions().size(); ++i) {
    EXPECT_EQ(a.regions()[i].name, b.regions()[i].name);
    EXPECT_EQ(a.regions()[i].cloud, b.regions()[i].cloud);
    EXPECT_EQ(a.regions()[i].location, b.regions()[i].location);
    EXPECT_EQ(a.regions()[i].utilization_ceiling, b.regions()[i].utilization_ceiling);
  }
  ASSERT_EQ(a.zones().size(), b.zones().size());
  for (size_t i = 0; i < a.zones().size(); ++i) {
    EXPECT_EQ(a.zones()[i].name, b.zones()[i].name);
    EXPECT_EQ(a.zones()[i].region, b.zones()[i].region);
  }
  EXPECT_EQ(a.gpu_types(), b.gpu_types());
  ASSERT_EQ(a.groups().size(), b.groups().size());
  for (size_t i = 0; i < a.groups().size(); ++i) {
    const NodeGroup& x = a.groups()[i];
    const NodeGroup& y = b.groups()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.region, y.region);
    EXPECT_EQ(x.zone, y.zone);
    EXPECT_EQ(x.gpu_type, y.gpu_type);
    EXPECT_EQ(x.gpus_per_node, y.gpus_per_node);
    EXPECT_EQ(x.cpu_milli, y.cpu_milli);
    EXPECT_EQ(x.memory_mib, y.memory_mib);
    EXPECT_EQ(x.price_hour, y.price_hour);
    EXPECT_EQ(x.spot_price_hour, y.spot_price_hour);
    EXPECT_EQ(x.count, y.count);
    EXPECT_EQ(x.spot_count, y.spot_count);
    EXPECT_EQ(x.taints, y.taints);
  }
  ASSERT_EQ(a.nodes().size(), b.nodes().size());
  for (size_t i = 0; i < a.nodes().size(); ++i) {
    const Node& x = a.nodes()[i];
    const Node& y = b.nodes()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.group, y.group);
    EXPECT_EQ(x.capacity, y.capacity);
    EXPECT_EQ(x.spot, y.spot);
    EXPECT_EQ(x.healthy, y.healthy) << x.name;
    EXPECT_EQ(x.price_hour, y.price_hour);
    EXPECT_EQ(x.taints, y.taints) << x.name;
  }
  for (size_t r = 0; r < a.regions().size(); ++r)
    for (size_t s = 0; s < a.regions().size(); ++s)
      ExpectLinkEq(a.link(RegionId(int32_t(r)), RegionId(int32_t(s))),
                   b.link(RegionId(int32_t(r)), RegionId(int32_t(s))),
                   a.regions()[r].name + "->" + a.regions()[s].name);
  ASSERT_EQ(a.datasets().size(), b.datasets().size());
  for (size_t i = 0; i < a.datasets().size(); ++i) {
    EXPECT_EQ(a.datasets()[i].name, b.datasets()[i].name);
    EXPECT_EQ(a.datasets()[i].size_gb, b.datasets()[i].size_gb);
    EXPECT_EQ(a.datasets()[i].home, b.datasets()[i].home);
  }
}

}  // namespace meridian::spec::testing_util
