// PlacementEngine: gang placement all-or-nothing, rollback, how filters,
// scorers and the selector are combined, CountFit and Explain.
#include "placement/engine.h"

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
using ::testing::Field;
using ::testing::IsEmpty;

std::unique_ptr<PlacementEngine> MakeEngine(EngineOptions o = {},
                                            const PolicyRegistry& r = test::BuiltinRegistry()) {
  auto e = PlacementEngine::Create(r, std::move(o));
  EXPECT_TRUE(e.ok()) << e.status();
  return *std::move(e);
}

// Everything observable about a ClusterState, for "exactly unchanged" checks.
struct Snapshot {
  std::vector<Resources> free;
  std::vector<std::vector<int16_t>> gpu_free;
  std::vector<int32_t> whole, tasks;
  std::vector<Resources> region_used;
  Resources total_used;
  std::vector<int64_t> pool_free;
  std::vector<std::set<NodeId>> candidates;  // per pool, 1-GPU shape

  static Snapshot Of(const ClusterState& s) {
    Snapshot out;
    const Fleet& f = s.fleet();
    for (size_t i = 0; i < f.nodes().size(); ++i) {
      const NodeState& n = s.node(NodeId(static_cast<int32_t>(i)));
      out.free.push_back(n.free);
      out.gpu_free.push_back(n.gpu_free);
      out.whole.push_back(n.whole_free_gpus);
      out.tasks.push_back(n.tasks);
    }
    for (size_t r = 0; r < f.regions().size(); ++r) {
      out.region_used.push_back(s.region_used(RegionId(static_cast<int32_t>(r))));
      for (int p : s.region_pools(RegionId(static_cast<int32_t>(r)))) {
        out.pool_free.push_back(s.pool_free_gpu_milli(p));
        std::set<NodeId> c;
        s.ForEachCandidate(p, test::WholeGpus(1), true, [&](NodeId id) { return c.insert(id), true; });
        out.candidates.push_back(std::move(c));
      }
    }
    out.total_used = s.total_used();
    return out;
  }
  bool operator==(const Snapshot&) const = default;
};

TEST(EngineCreateTest, RejectsBadOptions) {
  EngineOptions unknown_filter;
  unknown_filter.filters.push_back("nope");
  EXPECT_EQ(PlacementEngine::Create(test::BuiltinRegistry(), unknown_filter).status().code(),
            absl::StatusCode::kNotFound);
  EngineOptions bad_weight;
  bad_weight.scorers = {{"cost", -1.0, {}}};
  EXPECT_EQ(PlacementEngine::Create(test::BuiltinRegistry(), bad_weight).status().code(),
            absl::StatusCode::kInvalidArgument);
  EngineOptions bad_option;
  bad_option.scorers = {{"cost", 1.0, {{"bogus", "1"}}}};
  EXPECT_EQ(PlacementEngine::Create(test::BuiltinRegistry(), bad_option).status().code(),
            absl::StatusCode::kInvalidArgument);
  EngineOptions no_candidates;
  no_candidates.max_candidates = 0;
  EXPECT_EQ(PlacementEngine::Create(test::BuiltinRegistry(), no_candidates).status().code(),
            absl::StatusCode::kInvalidArgument);
  EngineOptions bad_selector;
  bad_selector.selector = "random_top";
  bad_selector.selector_options = {{"k", "0"}};
  EXPECT_FALSE(PlacementEngine::Create(test::BuiltinRegistry(), bad_selector).ok());
}

class EngineTest : public ::testing::Test {
 protected:
  bool Place(ClusterState& s, const Job& job, std::vector<RegionShare> shares,
             std::vector<ReplicaPlacement>* out, bool parts = false) {
    return engine_->PlaceGang(s, job, shares, {}, rng_, parts, out);
  }
  std::unique_ptr<PlacementEngine> engine_ = MakeEngine();
  Rng rng_{1};
};

TEST_F(EngineTest, PlacesAWholeGangAndCommitsIt) {
  Fleet fleet = test::UniformFleet(4, 2);
  ClusterState s(&fleet);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 5);
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE(Place(s, job, {{RegionId(0), GpuTypeId(), 5}}, &out));
  ASSERT_EQ(out.size(), 5u);
  std::vector<Allocation> allocs;
  for (const ReplicaPlacement& r : out) allocs.push_back(r.allocation);
  EXPECT_THAT(test::CheckStateMatches(s, allocs), IsEmpty());
  EXPECT_EQ(s.total_used().gpu_milli, 5000);
}

TEST_F(EngineTest, GangOfThreeWhereTwoFitLeavesStateExactlyUnchanged) {
  Fleet fleet = test::UniformFleet(3, 1);
  ClusterState s(&fleet);
  Allocation other = s.Allocate(NodeId(1), test::WholeGpus(1));
  const Snapshot before = Snapshot::Of(s);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 3);
  std::vector<ReplicaPlacement> out(1);  // a caller's earlier entry must survive
  out[0].score = 42;
  EXPECT_FALSE(Place(s, job, {{RegionId(0), GpuTypeId(), 3}}, &out));
  EXPECT_TRUE(Snapshot::Of(s) == before);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].score, 42);
  EXPECT_THAT(test::CheckStateMatches(s, {&other, 1}), IsEmpty());
  EXPECT_THAT(test::CheckCapacityIndex(s), IsEmpty());
  // The same gang of two fits.
  job.replicas = 2;
  EXPECT_TRUE(Place(s, job, {{RegionId(0), GpuTypeId(), 2}}, &out));
}

TEST_F(EngineTest, RollsBackEarlierSharesWhenALaterShareFails) {
  test::TestFleet tf;
  RegionId a = tf.Region("a"), b = tf.Region("b");
  tf.Group({.name = "a", .region = a, .gpus = 2, .count = 2});
  tf.Group({.name = "b", .region = b, .gpus = 1, .count = 1});
  Fleet fleet = std::move(tf).Build();
  ClusterState s(&fleet);
  const Snapshot before = Snapshot::Of(s);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 5);
  std::vector<ReplicaPlacement> out;
  EXPECT_FALSE(Place(s, job, {{a, GpuTypeId(), 3}, {b, GpuTypeId(), 2}}, &out));
  EXPECT_TRUE(Snapshot::Of(s) == before);
  EXPECT_THAT(out, IsEmpty());
  ASSERT_TRUE(Place(s, job, {{a, GpuTypeId(), 4}, {b, GpuTypeId(), 1}}, &out));
  int in_b = 0;
  for (const ReplicaPlacement& r : out) in_b += fleet.node(r.allocation.node).region == b;
  EXPECT_EQ(in_b, 1);
}

TEST_F(EngineTest, GangIsPackedOntoOneNodeWhenItFits) {
  Fleet fleet = test::UniformFleet(3, 8);
  ClusterState s(&fleet);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 4);
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE(Place(s, job, {{RegionId(0), GpuTypeId(), 4}}, &out));
  std::set<NodeId> nodes;
  for (const ReplicaPlacement& r : out) nodes.insert(r.allocation.node);
  EXPECT_EQ(nodes.size(), 1u);
}

TEST_F(EngineTest, FractionalGangFillsSharedGpus) {
  Fleet fleet = test::UniformFleet(1, 2);
  ClusterState s(&fleet);
  Job job = test::MakeJob(0, 0, test::GpuShare(500), 4);
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE(Place(s, job, {{RegionId(0), GpuTypeId(), 4}}, &out));
  EXPECT_EQ(s.node(NodeId(0)).free.gpu_milli, 0);
  job.replicas = 1;
  EXPECT_FALSE(Place(s, job, {{RegionId(0), GpuTypeId(), 1}}, &out));
}

TEST_F(EngineTest, NeverUsesNodesTheFiltersReject) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "t", .region = r, .count = 4, .taints = {"x"}});
  tf.Group({.name = "s", .region = r, .count = 0, .spot_count = 2});
  NodeGroupId bad = tf.Group({.name = "u", .region = r, .count = 2});
  tf.Unhealthy(bad, 0);
  tf.Unhealthy(bad, 1);
  tf.Group({.name = "ok", .region = r, .gpus = 2});
  Fleet fleet = std::move(tf).Build();
  ClusterState s(&fleet);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 3);
  std::vector<ReplicaPlacement> out;
  EXPECT_FALSE(Place(s, job, {{r, GpuTypeId(), 3}}, &out));
  job.replicas = 2;
  ASSERT_TRUE(Place(s, job, {{r, GpuTypeId(), 2}}, &out));
  for (const ReplicaPlacement& p : out) EXPECT_EQ(p.allocation.node, fleet.FindNode("ok-0"));
}

TEST_F(EngineTest, RecordsWeightedScoreParts) {
  Fleet fleet = test::UniformFleet(2, 8);
  ClusterState s(&fleet);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1));
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE(Place(s, job, {{RegionId(0), GpuTypeId(), 1}}, &out, /*parts=*/true));
  ASSERT_EQ(out.size(), 1u);
  const EngineOptions defaults;
  ASSERT_EQ(out[0].parts.size(), defaults.scorers.size());
  double sum = 0;
  for (size_t i = 0; i < out[0].parts.size(); ++i) {
    EXPECT_EQ(out[0].parts[i].scorer, defaults.scorers[i].name);
    EXPECT_EQ(out[0].parts[i].weight, defaults.scorers[i].weight);
    sum += out[0].parts[i].weight * out[0].parts[i].score;
  }
  // Parts are scored after the choice but before the allocation, like the total.
  EXPECT_NEAR(out[0].score, sum, 1e-9);
}

class EngineWithFakesTest : public ::testing::Test {
 protected:
  EngineWithFakesTest() {
    RegisterBuiltinPolicies(registry_);
    EXPECT_TRUE(test::RegisterFakes(registry_, fake_).ok());
  }
  std::unique_ptr<PlacementEngine> Engine(int max_candidates) {
    EngineOptions o;
    o.filters = {"health", "capacity", "fake_filter"};
    o.scorers = {{"fake_scorer", 1.0, {}}};
    o.selector = "recording_selector";
    o.max_candidates = max_candidates;
    return MakeEngine(o, registry_);
  }
  PolicyRegistry registry_;
  std::shared_ptr<test::FakePolicyState> fake_ = std::make_shared<test::FakePolicyState>();
  Rng rng_{3};
};

TEST_F(EngineWithFakesTest, SelectorSeesOnlyFilteredCandidatesWithinTheBound) {
  Fleet fleet = test::UniformFleet(40, 1);
  ClusterState s(&fleet);
  for (int i = 0; i < 40; i += 3) fake_->rejected.insert(NodeId(i));
  auto engine = Engine(6);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 5);
  RegionShare share{RegionId(0), GpuTypeId(), 5};
  ASSERT_TRUE(engine->PlaceGang(s, job, {&share, 1}, {}, rng_, false, nullptr));
  ASSERT_EQ(fake_->offered.size(), 5u);
  for (const auto& offer : fake_->offered) {
    EXPECT_FALSE(offer.empty());
    EXPECT_LE(offer.size(), 6u);
    std::set<NodeId> unique;
    for (const ScoredCandidate& c : offer) {
      EXPECT_FALSE(fake_->rejected.contains(c.node)) << c.node;
      unique.insert(c.node);
    }
    EXPECT_EQ(unique.size(), offer.size()) << "a candidate offered twice";
  }
}

TEST_F(EngineWithFakesTest, TheHighestScoredNodeWins) {
  Fleet fleet = test::UniformFleet(8, 1);
  ClusterState s(&fleet);
  fake_->scores = {{NodeId(5), 90}, {NodeId(2), 60}, {NodeId(7), 10}};
  auto engine = Engine(100);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 2);
  RegionShare share{RegionId(0), GpuTypeId(), 2};
  std::vector<ReplicaPlacement> out;
  ASSERT_TRUE(engine->PlaceGang(s, job, {&share, 1}, {}, rng_, false, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].allocation.node, NodeId(5));
  EXPECT_EQ(out[0].score, 90);
  EXPECT_EQ(out[1].allocation.node, NodeId(2));
}

TEST_F(EngineTest, CountFitCountsAndLeavesStateUnchanged) {
  Fleet fleet = test::UniformFleet(3, 2);
  ClusterState s(&fleet);
  s.Allocate(NodeId(0), test::WholeGpus(1));
  const Snapshot before = Snapshot::Of(s);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1), 10);
  EXPECT_EQ(engine_->CountFit(s, job, RegionId(0), GpuTypeId(), 10, {}, rng_), 5);
  EXPECT_EQ(engine_->CountFit(s, job, RegionId(0), GpuTypeId(), 3, {}, rng_), 3);
  job.shape = test::WholeGpus(2);
  EXPECT_EQ(engine_->CountFit(s, job, RegionId(0), GpuTypeId(), 10, {}, rng_), 2);
  EXPECT_TRUE(Snapshot::Of(s) == before);
}

TEST_F(EngineTest, ExplainChargesEachNodeToTheFirstFilterThatRejectsIt) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  RegionId other = tf.Region("other");
  tf.Group({.name = "tainted", .region = r, .count = 3, .taints = {"dedicated=team"}});
  tf.Group({.name = "full", .region = r, .count = 2});
  NodeGroupId sick = tf.Group({.name = "sick", .region = r, .count = 1});
  tf.Unhealthy(sick, 0);
  tf.Group({.name = "free", .region = r, .count = 2});
  tf.Group({.name = "elsewhere", .region = other, .count = 5});
  Fleet fleet = std::move(tf).Build();
  ClusterState s(&fleet);
  s.Allocate(fleet.FindNode("full-0"), test::WholeGpus(8));
  s.Allocate(fleet.FindNode("full-1"), test::WholeGpus(7));
  s.Allocate(fleet.FindNode("tainted-0"), test::WholeGpus(8));  // tainted and full: taints
  Job job = test::MakeJob(0, 0, test::WholeGpus(2));
  RegionExplanation ex = engine_->Explain(s, job, r);
  EXPECT_EQ(ex.region, r);
  EXPECT_EQ(ex.nodes_total, 8);
  EXPECT_EQ(ex.nodes_fitting, 2);
  EXPECT_THAT(ex.removed,
              ElementsAre(::testing::AllOf(Field(&FilterCount::filter, "health"),
                                           Field(&FilterCount::nodes_removed, 1)),
                          ::testing::AllOf(Field(&FilterCount::filter, "taints"),
                                           Field(&FilterCount::nodes_removed, 3)),
                          ::testing::AllOf(Field(&FilterCount::filter, "capacity"),
                                           Field(&FilterCount::nodes_removed, 2))));
  job.tolerations = {"dedicated=team"};
  ex = engine_->Explain(s, job, r);
  EXPECT_EQ(ex.nodes_fitting, 4);
  EXPECT_THAT(ex.removed, ElementsAre(Field(&FilterCount::filter, "health"),
                                      Field(&FilterCount::filter, "capacity")));
  EXPECT_EQ(ex.removed[1].nodes_removed, 3);
}

}  // namespace
}  // namespace meridian
