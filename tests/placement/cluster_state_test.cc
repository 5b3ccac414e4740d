// Resources arithmetic and ClusterState: allocation bookkeeping, fractional
// GPUs and the capacity index (checked against a brute-force scan).
#include "placement/cluster_state.h"

#include <algorithm>
#include <vector>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fleets.h"
#include "testing/invariants.h"
#include "testing/jobs.h"

namespace meridian {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<NodeId> Visit(const ClusterState& s, int pool, const TaskShape& shape, bool tightest) {
  std::vector<NodeId> out;
  s.ForEachCandidate(pool, shape, tightest, [&](NodeId id) {
    out.push_back(id);
    return true;
  });
  return out;
}

NodeId N(int32_t i) { return NodeId(i); }

TEST(ResourcesTest, ArithmeticIsExact) {
  Resources a{4000, 16384, 2000};
  Resources b{1500, 1024, 500};
  EXPECT_EQ(a + b, (Resources{5500, 17408, 2500}));
  EXPECT_EQ(a - b, (Resources{2500, 15360, 1500}));
  EXPECT_EQ(b * 3, (Resources{4500, 3072, 1500}));
  Resources c = a;
  c += b;
  c -= b;
  EXPECT_EQ(c, a);
  EXPECT_TRUE(a.Contains(b));
  EXPECT_FALSE(b.Contains(a));
  EXPECT_FALSE(a.Contains(Resources{0, 0, 2001}));  // one field short is enough to fail
  EXPECT_FALSE((b - a).NonNegative());
  EXPECT_TRUE((a - b).NonNegative());
  EXPECT_TRUE(Resources{}.IsZero());
  EXPECT_FALSE(b.IsZero());
  EXPECT_EQ(a.ToString(), "cpu=4 mem=16Gi gpu=2");
}

TEST(ResourcesTest, DominantShareIsLargestFieldShare) {
  Resources total{100000, 1000, 10000};
  EXPECT_DOUBLE_EQ(DominantShare({10000, 500, 1000}, total), 0.5);
  EXPECT_DOUBLE_EQ(DominantShare({0, 0, 0}, total), 0.0);
  EXPECT_DOUBLE_EQ(DominantShare({0, 0, 5000}, Resources{0, 0, 10000}), 0.5);
}

TEST(TaskShapeTest, WholeAndFractionalGpus) {
  EXPECT_EQ(test::WholeGpus(4).total_gpu_milli(), 4000);
  EXPECT_FALSE(test::WholeGpus(4).fractional());
  EXPECT_TRUE(test::GpuShare(250).fractional());
  EXPECT_EQ(test::GpuShare(250).total_gpu_milli(), 250);
  EXPECT_EQ(test::GpuShare(250).AsResources().gpu_milli, 250);
  Job j = test::MakeJob(0, 0, test::WholeGpus(2), 3);
  EXPECT_EQ(j.Demand(), (Resources{24000, 98304, 6000}));
}

TEST(ClusterStateTest, StartsEmpty) {
  Fleet fleet = test::UniformFleet(2, 8);
  ClusterState s(&fleet);
  for (NodeId id : {N(0), N(1)}) {
    EXPECT_EQ(s.node(id).free, fleet.node(id).capacity);
    EXPECT_EQ(s.node(id).whole_free_gpus, 8);
    EXPECT_EQ(s.node(id).tasks, 0);
  }
  EXPECT_TRUE(s.total_used().IsZero());
  EXPECT_EQ(s.pool_free_gpu_milli(0), 16000);
  EXPECT_EQ(s.pool_capacity_gpu_milli(0), 16000);
}

TEST(ClusterStateTest, AllocateAndReleaseAreExactInverses) {
  Fleet fleet = test::UniformFleet(1, 8);
  ClusterState s(&fleet);
  const TaskShape shape = test::WholeGpus(3);
  ASSERT_TRUE(s.Fits(N(0), shape));
  Allocation a = s.Allocate(N(0), shape);
  EXPECT_EQ(a.node, N(0));
  EXPECT_EQ(a.resources, shape.AsResources());
  EXPECT_EQ(a.gpus.size(), 3u);
  EXPECT_EQ(s.node(N(0)).free, fleet.node(N(0)).capacity - shape.AsResources());
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 5);
  EXPECT_EQ(s.node(N(0)).tasks, 1);
  EXPECT_EQ(s.region_used(RegionId(0)), shape.AsResources());
  EXPECT_EQ(s.total_used(), shape.AsResources());
  EXPECT_EQ(s.pool_free_gpu_milli(0), 5000);
  EXPECT_THAT(test::CheckStateMatches(s, {&a, 1}), IsEmpty());

  s.Release(a);
  EXPECT_EQ(s.node(N(0)).free, fleet.node(N(0)).capacity);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 8);
  EXPECT_EQ(s.node(N(0)).tasks, 0);
  EXPECT_TRUE(s.total_used().IsZero());
  EXPECT_EQ(s.pool_free_gpu_milli(0), 8000);
  EXPECT_THAT(test::CheckStateMatches(s, {}), IsEmpty());
}

TEST(ClusterStateTest, RestoreRetakesTheSameGpus) {
  Fleet fleet = test::UniformFleet(1, 4);
  ClusterState s(&fleet);
  Allocation keep = s.Allocate(N(0), test::WholeGpus(1));
  Allocation a = s.Allocate(N(0), test::GpuShare(400));
  s.Release(a);
  s.Restore(a);
  std::vector<Allocation> both = {keep, a};
  EXPECT_THAT(test::CheckStateMatches(s, both), IsEmpty());
  EXPECT_EQ(s.node(N(0)).gpu_free[size_t(a.gpus[0].first)], 600);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 2);
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
}

TEST(ClusterStateTest, TwoHalfGpuTasksShareOneGpu) {
  Fleet fleet = test::UniformFleet(1, 1);
  ClusterState s(&fleet);
  Allocation a = s.Allocate(N(0), test::GpuShare(500));
  ASSERT_TRUE(s.Fits(N(0), test::GpuShare(500)));
  Allocation b = s.Allocate(N(0), test::GpuShare(500));
  EXPECT_EQ(a.gpus[0].first, b.gpus[0].first);
  EXPECT_EQ(s.node(N(0)).gpu_free[0], 0);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 0);
  EXPECT_FALSE(s.Fits(N(0), test::GpuShare(1)));
  s.Release(a);
  EXPECT_EQ(s.node(N(0)).gpu_free[0], 500);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 0);
  s.Release(b);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 1);
}

TEST(ClusterStateTest, SixTenthsAndHalfCannotShareAGpu) {
  Fleet one = test::UniformFleet(1, 1);
  ClusterState s(&one);
  s.Allocate(N(0), test::GpuShare(600));
  EXPECT_FALSE(s.Fits(N(0), test::GpuShare(500)));
  EXPECT_TRUE(s.Fits(N(0), test::GpuShare(400)));

  Fleet two = test::UniformFleet(1, 2);
  ClusterState t(&two);
  Allocation a = t.Allocate(N(0), test::GpuShare(600));
  Allocation b = t.Allocate(N(0), test::GpuShare(500));
  EXPECT_NE(a.gpus[0].first, b.gpus[0].first);
  EXPECT_EQ(t.node(N(0)).whole_free_gpus, 0);
}

TEST(ClusterStateTest, FractionalShareTakesTheTightestGpuThatFits) {
  Fleet fleet = test::UniformFleet(1, 3);
  ClusterState s(&fleet);
  Allocation a = s.Allocate(N(0), test::GpuShare(300));  // one GPU now has 700 free
  Allocation b = s.Allocate(N(0), test::GpuShare(600));  // 700 beats 1000
  EXPECT_EQ(a.gpus[0].first, b.gpus[0].first);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 2);
  Allocation c = s.Allocate(N(0), test::GpuShare(200));  // 100 left is too small
  EXPECT_NE(c.gpus[0].first, a.gpus[0].first);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 1);
}

TEST(ClusterStateTest, WholeGpuRequestsCountOnlyUntouchedGpus) {
  Fleet fleet = test::UniformFleet(1, 2);
  ClusterState s(&fleet);
  Allocation a = s.Allocate(N(0), test::GpuShare(100));
  EXPECT_EQ(s.node(N(0)).free.gpu_milli, 1900);
  EXPECT_FALSE(s.Fits(N(0), test::WholeGpus(2)));  // 1.9 GPUs free, but only 1 whole
  ASSERT_TRUE(s.Fits(N(0), test::WholeGpus(1)));
  Allocation b = s.Allocate(N(0), test::WholeGpus(1));
  EXPECT_NE(b.gpus[0].first, a.gpus[0].first);
  EXPECT_EQ(b.gpus[0].second, 1000);
  EXPECT_EQ(s.node(N(0)).whole_free_gpus, 0);
}

TEST(ClusterStateTest, CpuAndMemoryLimitFit) {
  Fleet fleet = test::UniformFleet(1, 2);  // 16 cores, 128 GiB
  ClusterState s(&fleet);
  EXPECT_FALSE(s.Fits(N(0), TaskShape{17000, 1024, 1, 1000}));
  EXPECT_FALSE(s.Fits(N(0), TaskShape{1000, 129 * 1024, 0, 1000}));
  EXPECT_TRUE(s.Fits(N(0), TaskShape{16000, 128 * 1024, 2, 1000}));
}

TEST(ClusterStateDeathTest, AllocateOnAFullNodeCrashes) {
  Fleet fleet = test::UniformFleet(1, 1);
  ClusterState s(&fleet);
  s.Allocate(N(0), test::WholeGpus(1));
  EXPECT_DEATH(s.Allocate(N(0), test::WholeGpus(1)), "cannot hold");
}

TEST(ClusterStateDeathTest, DoubleReleaseCrashes) {
  Fleet fleet = test::UniformFleet(1, 1);
  ClusterState s(&fleet);
  Allocation a = s.Allocate(N(0), test::WholeGpus(1));
  s.Release(a);
  EXPECT_DEATH(s.Release(a), "twice");
}

TEST(CapacityIndexTest, ReturnsOnlyNodesWithRoomTightestFirst) {
  Fleet fleet = test::UniformFleet(4, 4);
  ClusterState s(&fleet);
  s.Allocate(N(0), test::WholeGpus(3));  // 1 free
  s.Allocate(N(1), test::WholeGpus(1));  // 3 free
  s.Allocate(N(3), test::WholeGpus(2));  // 2 free
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(2), true), ElementsAre(N(3), N(1), N(2)));
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(2), false), ElementsAre(N(2), N(1), N(3)));
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(4), true), ElementsAre(N(2)));
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(1), true), ElementsAre(N(0), N(3), N(1), N(2)));
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
}

TEST(CapacityIndexTest, FractionalTightestFirstPrefersPartlyUsedGpus) {
  Fleet fleet = test::UniformFleet(3, 2);
  ClusterState s(&fleet);
  s.Allocate(N(1), test::GpuShare(500));  // node 1: one GPU half used, one whole
  s.Allocate(N(2), test::WholeGpus(1));   // node 2: one whole GPU
  std::vector<NodeId> tight = Visit(s, 0, test::GpuShare(500), true);
  ASSERT_FALSE(tight.empty());
  EXPECT_EQ(tight.front(), N(1));
  std::vector<NodeId> loose = Visit(s, 0, test::GpuShare(500), false);
  ASSERT_FALSE(loose.empty());
  EXPECT_EQ(loose.front(), N(0));
  // A 0.6 share does not fit the half-used GPU; node 1 still qualifies by its whole GPU.
  EXPECT_THAT(Visit(s, 0, test::GpuShare(600), true), ::testing::Contains(N(1)));
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
}

TEST(CapacityIndexTest, StopsWhenTheCallbackSaysSo) {
  Fleet fleet = test::UniformFleet(5, 1);
  ClusterState s(&fleet);
  int calls = 0;
  s.ForEachCandidate(0, test::WholeGpus(1), true, [&](NodeId) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
}

TEST(CapacityIndexTest, UnhealthyNodesAreNeverCandidates) {
  test::TestFleet tf;
  RegionId r = tf.Region("r0");
  NodeGroupId g = tf.Group({.name = "g", .region = r, .gpus = 4, .count = 4});
  tf.Unhealthy(g, 1);
  Fleet fleet = std::move(tf).Build();
  ClusterState s(&fleet);
  EXPECT_FALSE(s.healthy(N(1)));
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(1), true), ::testing::UnorderedElementsAre(N(0), N(2), N(3)));
  EXPECT_EQ(s.pool_free_gpu_milli(0), 12000);

  s.SetHealthy(N(2), false);
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(1), false), ::testing::UnorderedElementsAre(N(0), N(3)));
  EXPECT_EQ(s.pool_free_gpu_milli(0), 8000);
  // Allocations on an unhealthy node are still tracked; recovery re-indexes it
  // under its current free GPUs.
  Allocation a = s.Allocate(N(2), test::WholeGpus(3));
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
  s.SetHealthy(N(2), true);
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(2), true), ::testing::UnorderedElementsAre(N(0), N(3)));
  EXPECT_THAT(Visit(s, 0, test::WholeGpus(1), true).front(), N(2));
  EXPECT_EQ(s.pool_free_gpu_milli(0), 9000);
  EXPECT_THAT(test::CheckStateMatches(s, {&a, 1}), IsEmpty());
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
}

TEST(CapacityIndexTest, PoolsPerRegionAndGpuTypeWithCpuPoolsFirst) {
  test::TestFleet tf;
  RegionId a = tf.Region("a");
  RegionId b = tf.Region("b");
  tf.Group({.name = "a-h100", .region = a, .gpu_type = "h100"});
  tf.Group({.name = "a-cpu", .region = a, .gpu_type = ""});
  tf.Group({.name = "b-l4", .region = b, .gpu_type = "l4", .gpus = 4});
  Fleet fleet = std::move(tf).Build();
  ClusterState s(&fleet);
  const GpuTypeId h100 = fleet.FindGpuType("h100"), l4 = fleet.FindGpuType("l4");
  ASSERT_GE(s.FindPool(a, h100), 0);
  ASSERT_GE(s.FindPool(a, GpuTypeId()), 0);
  EXPECT_EQ(s.FindPool(a, l4), -1);
  EXPECT_GE(s.FindPool(b, l4), 0);
  ASSERT_EQ(s.region_pools(a).size(), 2u);
  EXPECT_FALSE(s.pool_gpu_type(s.region_pools(a)[0]).Valid());
  EXPECT_EQ(s.pool_region(s.FindPool(b, l4)), b);
  EXPECT_EQ(s.node_pool(fleet.FindNode("b-l4-0")), s.FindPool(b, l4));
}

// Random allocate / release / restore / health flips over random fleets: the
// index and the per-node state always match a brute-force recomputation.
TEST(CapacityIndexTest, ConsistentAfterRandomSequences) {
  const TaskShape shapes[] = {test::WholeGpus(0), test::WholeGpus(1), test::WholeGpus(2),
                              test::WholeGpus(4), test::WholeGpus(8), test::GpuShare(100),
                              test::GpuShare(250), test::GpuShare(500), test::GpuShare(700)};
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Fleet fleet = test::RandomFleet(seed);
    ClusterState s(&fleet);
    Rng rng(seed);
    std::vector<Allocation> held;
    const int64_t n = int64_t(fleet.nodes().size());
    for (int step = 0; step < 400; ++step) {
      int64_t op = rng.Uniform(0, 9);
      if (op <= 5) {
        const TaskShape& shape = shapes[rng.Uniform(0, 8)];
        NodeId id(static_cast<int32_t>(rng.Uniform(0, n - 1)));
        if (s.Fits(id, shape)) held.push_back(s.Allocate(id, shape));
      } else if (op <= 8 && !held.empty()) {
        size_t k = size_t(rng.Uniform(0, int64_t(held.size()) - 1));
        s.Release(held[k]);
        if (rng.Uniform(0, 3) == 0) {
          s.Restore(held[k]);  // trial eviction undone
        } else {
          held.erase(held.begin() + long(k));
        }
      } else {
        NodeId id(static_cast<int32_t>(rng.Uniform(0, n - 1)));
        s.SetHealthy(id, !s.healthy(id));
      }
      if (step % 40 == 39) {
        ASSERT_THAT(test::CheckCapacityIndex(s), IsEmpty()) << "step " << step;
        ASSERT_THAT(test::CheckStateMatches(s, held), IsEmpty()) << "step " << step;
      }
    }
  }
}

}  // namespace
}  // namespace meridian
