// RegionPlanner: ranking by objective, residency, utilization ceilings,
// waits, cross-region splits and explanations, on hand-built fleets.
#include "placement/planner.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fakes.h"
#include "testing/fleets.h"
#include "testing/invariants.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<Allocation> Allocs(const Plan& p) {
  std::vector<Allocation> out;
  for (const ReplicaPlacement& r : p.replicas) out.push_back(r.allocation);
  return out;
}

std::map<RegionId, int> ReplicasPerRegion(const Fleet& fleet, const Plan& p) {
  std::map<RegionId, int> out;
  for (const ReplicaPlacement& r : p.replicas) ++out[fleet.node(r.allocation.node).region];
  return out;
}

// Base for planner tests: builds the engine and planner once the fleet is set.
class PlannerTestBase : public ::testing::Test {
 protected:
  void Init(Fleet fleet, PlannerOptions po = {}) {
    fleet_ = std::move(fleet);
    state_ = std::make_unique<ClusterState>(&fleet_);
    auto e = PlacementEngine::Create(test::BuiltinRegistry(), EngineOptions{});
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = *std::move(e);
    planner_ = std::make_unique<RegionPlanner>(&fleet_, engine_.get(), po);
  }
  Plan PlaceJob(const Job& job, bool explain = false, const WaitEstimator* waits = nullptr) {
    return planner_->PlaceJob(*state_, job, waits, {}, rng_, explain);
  }

  Fleet fleet_;
  std::unique_ptr<ClusterState> state_;
  std::unique_ptr<PlacementEngine> engine_;
  std::unique_ptr<RegionPlanner> planner_;
  Rng rng_{1};
};

// "cheap": l4 at $1/GPU-hour; "fast": h100 at $10/GPU-hour, 4x faster for
// the job. Ceiling of "cheap" set per test.
class TwoRegionPlannerTest : public PlannerTestBase {
 protected:
  void Build(double cheap_ceiling = 1.0) {
    test::TestFleet tf;
    cheap_ = tf.Region("cheap", cheap_ceiling);
    fast_ = tf.Region("fast");
    tf.Group({.name = "l4", .region = cheap_, .gpu_type = "l4", .gpus = 4, .count = 2,
              .price_hour = 4.0});
    tf.Group({.name = "h100", .region = fast_, .gpu_type = "h100", .gpus = 8, .count = 2,
              .price_hour = 80.0});
    tf.Link(cheap_, fast_, 20, 10, 0.02);
    Init(std::move(tf).Build());
    l4_ = fleet_.FindGpuType("l4");
    h100_ = fleet_.FindGpuType("h100");
  }
  Job MakeJob(int32_t id, Objective objective, int32_t replicas = 1) {
    Job j = test::MakeJob(id, 0, test::WholeGpus(1), replicas);
    j.objective = objective;
    j.gpu_types = {{l4_, 1.0}, {h100_, 4.0}};
    j.duration_s = 3600;
    return j;
  }
  RegionId cheap_, fast_;
  GpuTypeId l4_, h100_;
};

TEST_F(TwoRegionPlannerTest, CostObjectivePicksTheCheapestRegion) {
  Build();
  Plan p = PlaceJob(MakeJob(0, Objective::kCost));
  ASSERT_TRUE(p.placed);
  EXPECT_FALSE(p.cross_region);
  ASSERT_THAT(p.shares, SizeIs(1));
  EXPECT_EQ(p.shares[0].region, cheap_);
  EXPECT_EQ(p.shares[0].gpu_type, l4_);
  EXPECT_EQ(fleet_.node(p.replicas.at(0).allocation.node).region, cheap_);
  EXPECT_NEAR(p.est_cost_usd, 1.0, 1e-9);  // 1 GPU x 1 h x $1
  ASSERT_THAT(p.ranked, SizeIs(2));
  EXPECT_EQ(p.ranked[0].region, cheap_);
  EXPECT_NEAR(p.ranked[1].runtime_s, 900, 1e-9);
  EXPECT_NEAR(p.ranked[1].compute_usd, 2.5, 1e-9);  // 0.25 h x $10
}

TEST_F(TwoRegionPlannerTest, TimeObjectivePicksTheFastestRegion) {
  Build();
  Plan p = PlaceJob(MakeJob(0, Objective::kTime));
  ASSERT_TRUE(p.placed);
  EXPECT_EQ(p.shares.at(0).region, fast_);
  EXPECT_EQ(p.shares.at(0).gpu_type, h100_);
  EXPECT_NEAR(p.est_completion_s, 900, 1e-9);
}

TEST_F(TwoRegionPlannerTest, WeightedObjectiveFollowsItsWeight) {
  Build();
  Job j = MakeJob(0, Objective::kWeighted);
  j.cost_weight = 0.95;
  EXPECT_EQ(planner_->Rank(*state_, j, nullptr).at(0).region, cheap_);
  j.cost_weight = 0.05;
  EXPECT_EQ(planner_->Rank(*state_, j, nullptr).at(0).region, fast_);
}

TEST_F(TwoRegionPlannerTest, ResidencyIsRespected) {
  Build();
  Job j = MakeJob(0, Objective::kCost);
  j.allowed_regions = {fast_};
  Plan p = PlaceJob(j);
  ASSERT_TRUE(p.placed);
  EXPECT_EQ(p.shares.at(0).region, fast_);
  for (const RegionEstimate& e : p.ranked) EXPECT_EQ(e.region, fast_);
  // Residency with no capacity of an allowed type: nothing to rank, nothing placed.
  j.gpu_types = {{l4_, 1.0}};
  const std::vector<Allocation> before = Allocs(p);
  Plan none = PlaceJob(j, /*explain=*/true);
  EXPECT_FALSE(none.placed);
  EXPECT_THAT(none.ranked, IsEmpty());
  ASSERT_THAT(none.why_not, SizeIs(2));
  ASSERT_THAT(none.why_not[cheap_.index()].notes, SizeIs(1));
  EXPECT_THAT(none.why_not[cheap_.index()].notes[0], HasSubstr("residency"));
  EXPECT_THAT(test::CheckStateMatches(*state_, before), IsEmpty());
}

TEST_F(TwoRegionPlannerTest, CeilingMakesWorkSpillToTheNextRegion) {
  Build(/*cheap_ceiling=*/0.5);  // 4 of the 8 l4 GPUs
  std::vector<Allocation> all;
  for (int i = 0; i < 4; ++i) {
    Plan p = PlaceJob(MakeJob(i, Objective::kCost));
    ASSERT_TRUE(p.placed);
    EXPECT_EQ(p.shares.at(0).region, cheap_) << "job " << i;
    for (const Allocation& a : Allocs(p)) all.push_back(a);
  }
  Plan spill = PlaceJob(MakeJob(4, Objective::kCost), /*explain=*/true);
  ASSERT_TRUE(spill.placed);
  EXPECT_EQ(spill.shares.at(0).region, fast_);
  // Explanation for the cheap region names the ceiling.
  RegionExplanation ex = planner_->ExplainRegion(*state_, MakeJob(5, Objective::kCost), cheap_);
  ASSERT_THAT(ex.notes, SizeIs(1));
  EXPECT_THAT(ex.notes[0], HasSubstr("utilization ceiling 50%"));
  for (const Allocation& a : Allocs(spill)) all.push_back(a);
  EXPECT_THAT(test::CheckStateMatches(*state_, all), IsEmpty());
  EXPECT_LE(state_->region_used(cheap_).gpu_milli, 4000);
}

TEST_F(TwoRegionPlannerTest, AGangOverTheCeilingGoesElsewhereWhole) {
  Build(/*cheap_ceiling=*/0.5);
  Plan p = PlaceJob(MakeJob(0, Objective::kCost, /*replicas=*/5));
  ASSERT_TRUE(p.placed);
  EXPECT_THAT(ReplicasPerRegion(fleet_, p), ElementsAre(::testing::Pair(fast_, 5)));
}

TEST_F(TwoRegionPlannerTest, FullPreferredRegionFallsBackToTheNextOption) {
  Build();
  for (NodeId id : fleet_.region_nodes(cheap_)) state_->Allocate(id, test::WholeGpus(4));
  test::FakeWaitEstimator waits;
  waits.Set(cheap_, l4_, 7200);
  Job j = MakeJob(0, Objective::kTime);
  j.gpu_types = {{l4_, 1.0}, {h100_, 0.5}};  // l4 preferred when free
  std::vector<RegionEstimate> ranked = planner_->Rank(*state_, j, &waits);
  ASSERT_THAT(ranked, SizeIs(2));
  EXPECT_EQ(ranked[0].region, fast_);  // 7200 s wait + 3600 s loses to 7200 s runtime
  EXPECT_EQ(ranked[1].wait_s, 7200);
  waits.Set(cheap_, l4_, 100);
  ranked = planner_->Rank(*state_, j, &waits);
  EXPECT_EQ(ranked[0].region, cheap_);
  Plan p = PlaceJob(j, false, &waits);
  ASSERT_TRUE(p.placed);  // the cheap region is full: the next option wins
  EXPECT_EQ(p.shares.at(0).region, fast_);
}

TEST_F(TwoRegionPlannerTest, DatasetTransferCountsTowardsCompletion) {
  test::TestFleet tf;
  RegionId a = tf.Region("a"), b = tf.Region("b");
  tf.Group({.name = "a", .region = a});
  tf.Group({.name = "b", .region = b});
  tf.Link(a, b, 100, 1, 0.1);
  DatasetId d = tf.Dataset("d", 900, b);  // 2 h over 1 Gbit/s
  Init(std::move(tf).Build());
  Job j = test::MakeJob(0, 0, test::WholeGpus(1));
  j.dataset = d;
  Plan p = PlaceJob(j);
  ASSERT_TRUE(p.placed);
  EXPECT_EQ(p.shares.at(0).region, b);
  ASSERT_THAT(p.ranked, SizeIs(2));
  EXPECT_NEAR(p.ranked[1].transfer_s, 7200.1, 1e-6);
  EXPECT_NEAR(p.ranked[1].egress_usd, 90, 1e-9);
}

// Three regions "a", "b", "c", two 1-GPU nodes each, equal prices; a-c is the
// best-connected pair.
class SplitPlannerTest : public PlannerTestBase {
 protected:
  void Build(PlannerOptions po = {}) {
    test::TestFleet tf;
    a_ = tf.Region("a");
    b_ = tf.Region("b");
    c_ = tf.Region("c");
    for (RegionId r : {a_, b_, c_})
      tf.Group({.name = fleet_name(r), .region = r, .gpus = 1, .count = 2, .price_hour = 1.0});
    tf.Link(a_, b_, 100, 10, 0.02);
    tf.Link(a_, c_, 10, 10, 0.02);
    tf.Link(b_, c_, 50, 10, 0.02);
    Init(std::move(tf).Build(), po);
  }
  static std::string fleet_name(RegionId r) { return std::string(1, char('a' + r.value())); }
  Job Gang(int32_t replicas, bool cross_region) {
    Job j = test::MakeJob(0, 0, test::WholeGpus(1), replicas);
    j.cross_region_allowed = cross_region;
    return j;
  }
  RegionId a_, b_, c_;
};

TEST_F(SplitPlannerTest, SplitsOverTheBestConnectedPairWhenNoRegionFits) {
  Build();
  Plan p = PlaceJob(Gang(4, true));
  ASSERT_TRUE(p.placed);
  EXPECT_TRUE(p.cross_region);
  ASSERT_THAT(p.shares, SizeIs(2));
  std::set<RegionId> regions = {p.shares[0].region, p.shares[1].region};
  EXPECT_EQ(regions, (std::set<RegionId>{a_, c_}));
  EXPECT_EQ(p.shares[0].replicas + p.shares[1].replicas, 4);
  EXPECT_THAT(ReplicasPerRegion(fleet_, p),
              ElementsAre(::testing::Pair(a_, 2), ::testing::Pair(c_, 2)));
  EXPECT_THAT(test::CheckStateMatches(*state_, Allocs(p)), IsEmpty());
}

TEST_F(SplitPlannerTest, NoSplitWhenNotAllowed) {
  Build();
  Plan p = PlaceJob(Gang(4, false), /*explain=*/true);
  EXPECT_FALSE(p.placed);
  EXPECT_FALSE(p.cross_region);
  EXPECT_THAT(p.replicas, IsEmpty());
  EXPECT_THAT(test::CheckStateMatches(*state_, {}), IsEmpty());
  ASSERT_THAT(p.why_not, SizeIs(3));
  for (const RegionExplanation& ex : p.why_not) {
    EXPECT_EQ(ex.nodes_fitting, 2);
    ASSERT_THAT(ex.notes, SizeIs(1));
    EXPECT_THAT(ex.notes[0], HasSubstr("not all 4 replicas"));
  }
}

TEST_F(SplitPlannerTest, AGangThatFitsOneRegionIsNotSplit) {
  Build();
  Plan p = PlaceJob(Gang(2, true));
  ASSERT_TRUE(p.placed);
  EXPECT_FALSE(p.cross_region);
  EXPECT_THAT(p.shares, SizeIs(1));
}

TEST_F(SplitPlannerTest, SplitHonoursResidency) {
  Build();
  Job j = Gang(4, true);
  j.allowed_regions = {a_, b_};
  Plan p = PlaceJob(j);
  ASSERT_TRUE(p.placed);
  EXPECT_THAT(ReplicasPerRegion(fleet_, p),
              ElementsAre(::testing::Pair(a_, 2), ::testing::Pair(b_, 2)));
}

TEST_F(SplitPlannerTest, SplitsOverThreeRegionsOnlyWhenAllowedTo) {
  Build();
  Plan p = PlaceJob(Gang(6, true));
  ASSERT_TRUE(p.placed);
  EXPECT_TRUE(p.cross_region);
  EXPECT_THAT(p.shares, SizeIs(3));

  Build(PlannerOptions{.max_split_regions = 2});
  Plan two = PlaceJob(Gang(6, true));
  EXPECT_FALSE(two.placed);
  EXPECT_THAT(test::CheckStateMatches(*state_, {}), IsEmpty());
}

TEST_F(SplitPlannerTest, SplitUsesTheRoomLeft) {
  Build();
  state_->Allocate(fleet_.FindNode("c-0"), test::WholeGpus(1));
  // c has one GPU left: a (2) + c (1) cannot hold 4; a + b can.
  Plan p = PlaceJob(Gang(4, true));
  ASSERT_TRUE(p.placed);
  EXPECT_THAT(ReplicasPerRegion(fleet_, p),
              ElementsAre(::testing::Pair(a_, 2), ::testing::Pair(b_, 2)));
}

}  // namespace
}  // namespace meridian
