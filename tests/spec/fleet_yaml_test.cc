// FleetToYaml: what it writes parses back into an equal fleet.
#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

Fleet RoundTrip(const Fleet& f) {
  std::string yaml = FleetToYaml(f);
  std::vector<Diagnostic> diags;
  absl::StatusOr<Fleet> again = ParseFleet(yaml, "roundtrip.yaml", &diags);
  EXPECT_TRUE(again.ok()) << again.status() << "\n" << testing_util::Join(diags) << yaml;
  return again.ok() ? *std::move(again) : Fleet();
}

TEST(FleetYamlTest, ExampleRoundTrips) {
  absl::StatusOr<Fleet> f = LoadFleet(testing_util::ExampleFleetPath(), nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  Fleet again = RoundTrip(*f);
  testing_util::ExpectFleetsEqual(*f, again);
  // And the text is a fixed point.
  EXPECT_EQ(FleetToYaml(*f), FleetToYaml(again));
}

TEST(FleetYamlTest, BuilderFleetWithOverridesAndDirectedLinks) {
  FleetBuilder b;
  RegionId r1 = *b.AddRegion(Region{"r1", "gcp", "Iowa, US", 0.75});
  RegionId r2 = *b.AddRegion(Region{"null", "", "", 1.0});  // a name YAML would read as null
  ZoneId z1 = *b.AddZone("r1-a", r1);
  ZoneId z2 = *b.AddZone("z: 2", r2);
  NodeGroup g;
  g.name = "g#1";
  g.region = r1;
  g.zone = z1;
  g.gpu_type = b.AddGpuType("a100-80gb");
  g.gpus_per_node = 8;
  g.cpu_milli = 95500;
  g.memory_mib = 1000;
  g.price_hour = 0.1 + 0.2;  // not exactly representable in short decimal
  g.spot_price_hour = 1.0 / 3.0;
  g.count = 2;
  g.spot_count = 2;
  g.taints = {"gpu=a100"};
  NodeGroupId gid = *b.AddNodeGroup(g);
  NodeGroup c;
  c.name = "cpu";
  c.region = r2;
  c.zone = z2;
  c.cpu_milli = 2000;
  c.memory_mib = 4096;
  c.count = 1;
  ASSERT_TRUE(b.AddNodeGroup(c).ok());
  ASSERT_TRUE(b.SetNodeHealth(gid, 1, false).ok());
  ASSERT_TRUE(b.AddNodeTaint(gid, 3, "bad-disk").ok());
  ASSERT_TRUE(b.SetLink(r1, r2, Link{10, 2.5, 0.01, true}, false).ok());
  ASSERT_TRUE(b.SetLink(r2, r1, Link{11, 2.5, 0.02, true}, false).ok());
  ASSERT_TRUE(b.AddDataset(Dataset{"ds", 12.25, r2}).ok());
  absl::StatusOr<Fleet> f = std::move(b).Build();
  ASSERT_TRUE(f.ok()) << f.status();
  Fleet again = RoundTrip(*f);
  testing_util::ExpectFleetsEqual(*f, again);
  EXPECT_FALSE(again.node(again.FindNode("g#1-1")).healthy);
  EXPECT_EQ(again.node(again.FindNode("g#1-spot-1")).taints,
            (std::vector<std::string>{"gpu=a100", "bad-disk"}));
}

}  // namespace
}  // namespace meridian::spec
