// The FGD fragment measure on hand-built nodes, the GPU it picks inside a
// node, the task mix it is weighted by, and where CPU-only work lands under
// every packing policy (mixed fleet: on CPU-only nodes; GPU-only fleet: where
// its CPU strands the fewest GPUs).
#include "placement/fragmentation.h"

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/engine.h"
#include "testing/fleets.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

TaskShape Shape(int64_t cpu_cores, int32_t gpus, int32_t milli = 1000) {
  return TaskShape{cpu_cores * 1000, 1024, gpus, milli};
}

TEST(FragmentTest, ANodeWithoutCpuCountsEveryIdleGpu) {
  std::vector<int16_t> gpus = {1000, 1000, 1000, 0, 500, 1000, 1000, 1000};
  NodeFree exhausted{gpus, /*cpu_milli=*/0, /*memory_mib=*/1 << 20};
  // 6 whole GPUs and half a GPU idle, none usable without CPU.
  EXPECT_EQ(ClassFragment(exhausted, Shape(4, 1)), 6500);
  EXPECT_EQ(ClassFragment(exhausted, Shape(4, 1, 500)), 6500);
  std::vector<TaskClass> mix = {{Shape(4, 1), 0.5}, {Shape(2, 1, 250), 0.3}, {Shape(16, 4), 0.2}};
  EXPECT_DOUBLE_EQ(NodeFragment(exhausted, mix), 6500);
  // The same node with CPU to spare: only the half GPU is lost to whole-GPU
  // classes, nothing to the quarter-GPU class.
  NodeFree roomy{gpus, 64000, 1 << 20};
  EXPECT_EQ(ClassFragment(roomy, Shape(4, 1)), 500);
  EXPECT_EQ(ClassFragment(roomy, Shape(2, 1, 250)), 0);
  EXPECT_DOUBLE_EQ(NodeFragment(roomy, mix), 0.5 * 500 + 0.2 * 500);
  // Too little memory is the same as too little CPU.
  NodeFree no_memory{gpus, 64000, 512};
  EXPECT_EQ(ClassFragment(no_memory, Shape(4, 1)), 6500);
}

TEST(FragmentTest, ClassesThatCannotFitTheGpusOrUseNoneCountEverything) {
  std::vector<int16_t> gpus = {1000, 1000, 300, 0};
  NodeFree n{gpus, 64000, 1 << 20};
  EXPECT_EQ(ClassFragment(n, Shape(8, 4)), 2300);      // needs 4 whole GPUs, has 2
  EXPECT_EQ(ClassFragment(n, Shape(8, 2)), 300);       // fits; the 0.3 GPU is lost
  EXPECT_EQ(ClassFragment(n, Shape(2, 1, 400)), 300);  // 0.3 < 0.4
  EXPECT_EQ(ClassFragment(n, Shape(2, 1, 300)), 0);
  EXPECT_EQ(ClassFragment(n, Shape(8, 0)), 2300);  // CPU-only work uses no GPU
  std::vector<int16_t> none;
  EXPECT_EQ(ClassFragment(NodeFree{none, 64000, 1 << 20}, Shape(8, 0)), 0);
}

TEST(FragmentTest, AClassLimitedToAnotherGpuTypeCountsEverything) {
  std::vector<int16_t> gpus = {1000, 1000};
  NodeFree n{gpus, 64000, 1 << 20, GpuTypeId(0)};
  EXPECT_EQ(ClassFragment(n, Shape(4, 1), GpuTypeId(0)), 0);
  EXPECT_EQ(ClassFragment(n, Shape(4, 1), GpuTypeId(1)), 2000);
  EXPECT_EQ(ClassFragment(n, Shape(4, 1)), 0);  // any type
}

TEST(FragmentTest, AHalfGpuTaskTakesTheGpuThatLeavesAUsableHalf) {
  // Two GPUs, 1.0 and 0.6 free; the workload is half-GPU tasks. Best fit
  // would take the 0.6 GPU and strand 0.1; FGD takes the whole one, leaving
  // 0.5 + 0.6, both usable.
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "n", .region = r, .gpus = 2});
  Fleet fleet = std::move(tf).Build();
  ClusterState state(&fleet);
  const NodeId n = fleet.FindNode("n-0");
  state.Allocate(n, test::GpuShare(400), /*gpu=*/1);
  ASSERT_THAT(state.node(n).gpu_free, ::testing::ElementsAre(1000, 600));
  std::vector<TaskClass> mix = {{test::GpuShare(500), 1.0}};
  FragmentMove move = BestFragmentMove(state.node(n), GpuTypeId(), test::GpuShare(500), mix);
  EXPECT_EQ(move.gpu, 0);
  EXPECT_DOUBLE_EQ(move.delta, 0);
  EXPECT_GT(FragmentMoveScore(move.delta), FragmentMoveScore(100));

  // Through the engine: the fragmentation scorer's choice is what gets allocated.
  EngineOptions o;
  o.scorers = {{"fragmentation", 1.0, {}}};
  auto engine = PlacementEngine::Create(test::BuiltinRegistry(), o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  Job job = test::MakeJob(1, 0, test::GpuShare(500));
  RegionShare share{r, fleet.FindGpuType("a100"), 1};
  Rng rng(1);
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE((*engine)->PlaceGang(state, job, {&share, 1}, mix, rng, false, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(out[0].allocation.gpus, ::testing::ElementsAre(std::pair<int16_t, int16_t>{0, 500}));
  EXPECT_THAT(state.node(n).gpu_free, ::testing::ElementsAre(500, 600));

  // Without a preference the ClusterState still does best fit.
  ClusterState plain(&fleet);
  plain.Allocate(n, test::GpuShare(400), 1);
  Allocation a = plain.Allocate(n, test::GpuShare(500));
  EXPECT_EQ(a.gpus[0].first, 1);
}

TEST(FragmentTest, TheMoveIsTheChangeOfTheExpectedFragment) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "n", .region = r, .gpus = 8, .cpu_cores = 96});
  Fleet fleet = std::move(tf).Build();
  ClusterState state(&fleet);
  const NodeId n = fleet.FindNode("n-0");
  std::vector<TaskClass> mix = {{Shape(12, 1), 1.0}};
  // A CPU-only task that leaves 8 cores strands all 8 GPUs for 12-core tasks.
  EXPECT_DOUBLE_EQ(BestFragmentMove(state.node(n), GpuTypeId(), Shape(88, 0), mix).delta, 8000);
  // One that leaves enough changes nothing.
  EXPECT_DOUBLE_EQ(BestFragmentMove(state.node(n), GpuTypeId(), Shape(8, 0), mix).delta, 0);
  EXPECT_DOUBLE_EQ(FragmentMoveScore(0), 50);
  // A 1-GPU task on an empty node: the node loses one usable GPU, fragments none.
  EXPECT_DOUBLE_EQ(BestFragmentMove(state.node(n), GpuTypeId(), Shape(12, 1), mix).delta, 0);
}

TEST(TaskMixTest, KeepsTheMostFrequentFullShapesUpToTheCoverage) {
  std::vector<ShapeCount> counts = {
      {{4000, 1000, 1, 500}, 30}, {{4000, 3000, 1, 500}, 10},  // one class, memory 1500
      {{8000, 0, 0, 1000}, 25},                                // CPU-only work is a class
      {{12000, 0, 1, 1000}, 30},  {{96000, 0, 8, 1000}, 5},
  };
  std::vector<TaskClass> mix = BuildTaskMix(counts, /*coverage=*/0.9);
  ASSERT_EQ(mix.size(), 3u);  // 40 + 30 + 25 = 95% >= 90%
  EXPECT_EQ(mix[0].shape.cpu_milli, 4000);
  EXPECT_EQ(mix[0].shape.memory_mib, 1500);
  EXPECT_EQ(mix[0].shape.gpu_milli, 500);
  EXPECT_DOUBLE_EQ(mix[0].weight, 40.0 / 95);
  EXPECT_EQ(mix[1].shape.gpus, 1);
  EXPECT_EQ(mix[2].shape.gpus, 0);
  EXPECT_DOUBLE_EQ(mix[0].weight + mix[1].weight + mix[2].weight, 1.0);
  EXPECT_TRUE(BuildTaskMix({}).empty());
}

// Four 8-GPU/96-core nodes and four CPU-only 96-core nodes, no prices: the
// fleet of issue 26. Every packing profile, and the default one, puts 64-core
// CPU-only jobs on the CPU-only nodes.
TEST(CpuOnlyPlacementTest, GoesToCpuOnlyNodesOnAMixedFleet) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "gpu", .region = r, .count = 4, .cpu_cores = 96, .price_hour = 0});
  tf.Group(
      {.name = "cpu", .region = r, .gpu_type = "", .count = 4, .cpu_cores = 96, .price_hour = 0});
  Fleet fleet = std::move(tf).Build();
  std::vector<std::vector<ScorerSpec>> profiles = {EngineOptions{}.scorers,
                                                   {{"best_fit", 1.0, {}}},
                                                   {{"dot_product", 1.0, {}}},
                                                   {{"fragmentation", 1.0, {}}}};
  for (const auto& scorers : profiles) {
    SCOPED_TRACE(scorers.front().name + (scorers.size() > 1 ? " (default profile)" : ""));
    EngineOptions o;
    o.scorers = scorers;
    auto engine = PlacementEngine::Create(test::BuiltinRegistry(), o);
    ASSERT_TRUE(engine.ok()) << engine.status();
    ClusterState state(&fleet);
    Rng rng(7);
    for (int i = 0; i < 4; ++i) {
      Job job = test::MakeJob(i, 0, Shape(64, 0));
      RegionShare share{r, GpuTypeId(), 1};
      std::vector<ReplicaPlacement> out;
      ASSERT_TRUE((*engine)->PlaceGang(state, job, {&share, 1}, {}, rng, false, &out));
      EXPECT_EQ(fleet.node(out[0].allocation.node).gpus, 0)
          << "job " << i << " on " << fleet.node(out[0].allocation.node).name;
    }
    // A fifth cannot fit a CPU-only node any more: it may use a GPU node now.
    Job fifth = test::MakeJob(9, 0, Shape(64, 0));
    RegionShare share{r, GpuTypeId(), 1};
    std::vector<ReplicaPlacement> out;
    ASSERT_TRUE((*engine)->PlaceGang(state, fifth, {&share, 1}, {}, rng, false, &out));
    EXPECT_EQ(fleet.node(out[0].allocation.node).gpus, 8);
  }
}

// GPU nodes only. "busy" has 40 cores and all 8 GPUs free; "full" has 96 cores
// free and no GPU. A 32-core CPU-only job on "busy" would leave 8 cores, too
// few for the 12-core GPU tasks of the mix: every packing profile puts it on
// "full", where it strands nothing (best fit alone would pick the fuller node).
TEST(CpuOnlyPlacementTest, OnAGpuOnlyFleetGoesWhereItStrandsTheLeast) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "busy", .region = r, .cpu_cores = 96});
  tf.Group({.name = "full", .region = r, .cpu_cores = 192});
  Fleet fleet = std::move(tf).Build();
  std::vector<TaskClass> mix = {{Shape(12, 1), 0.8}, {Shape(8, 0), 0.2}};
  for (const char* scorer : {"best_fit", "dot_product", "fragmentation"}) {
    SCOPED_TRACE(scorer);
    ClusterState state(&fleet);
    state.Allocate(fleet.FindNode("busy-0"), Shape(56, 0));
    state.Allocate(fleet.FindNode("full-0"), Shape(96, 8));
    EngineOptions o;
    o.scorers = {{scorer, 1.0, {}}};
    auto engine = PlacementEngine::Create(test::BuiltinRegistry(), o);
    ASSERT_TRUE(engine.ok()) << engine.status();
    Job job = test::MakeJob(1, 0, Shape(32, 0));
    RegionShare share{r, GpuTypeId(), 1};
    Rng rng(3);
    std::vector<ReplicaPlacement> out;
    ASSERT_TRUE((*engine)->PlaceGang(state, job, {&share, 1}, mix, rng, false, &out));
    EXPECT_EQ(fleet.node(out[0].allocation.node).name, "full-0");
  }
}

TEST(FragmentationRateTest, IsTheExpectedFragmentOverTheFreeGpus) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "n", .region = r, .gpus = 2, .count = 2, .cpu_cores = 32});
  Fleet fleet = std::move(tf).Build();
  ClusterState state(&fleet);
  std::vector<TaskClass> mix = {{Shape(4, 1), 1.0}};
  EXPECT_DOUBLE_EQ(FragmentationRate(state, mix), 0);
  // n-0: 0.5 GPU used -> 0.5 of its free 1.5 is lost to 1-GPU tasks.
  state.Allocate(fleet.FindNode("n-0"), test::GpuShare(500));
  EXPECT_DOUBLE_EQ(FragmentationRate(state, mix), 500.0 / 3500.0);
}

}  // namespace
}  // namespace meridian
