// What each built-in policy prefers or rejects, on small hand-built fleets.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/policy.h"
#include "testing/fleets.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Filter> MakeFilter(const std::string& name) {
  auto f = test::BuiltinRegistry().MakeFilter(name);
  EXPECT_TRUE(f.ok()) << f.status();
  return *std::move(f);
}
std::unique_ptr<Scorer> MakeScorer(const std::string& name, const PolicyOptions& opts = {}) {
  auto s = test::BuiltinRegistry().MakeScorer(name, opts);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}
std::unique_ptr<Selector> MakeSelector(const std::string& name, const PolicyOptions& opts = {}) {
  auto s = test::BuiltinRegistry().MakeSelector(name, opts);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// Two regions, "a" (zones a-z0, a-z1) and "b"; a100 nodes: a-0/a-1 in a-z0,
// a-z1-0 in a-z1, an h100 node, a tainted node, a spot node and a CPU-only
// node in "a", and b-0 in "b".
class PolicyBehaviorTest : public ::testing::Test {
 protected:
  PolicyBehaviorTest() {
    test::TestFleet tf;
    a_ = tf.Region("a");
    b_ = tf.Region("b");
    ZoneId a1 = tf.Zone("a-z1", a_);
    tf.Group({.name = "a", .region = a_, .count = 2, .spot_count = 1, .price_hour = 8.0});
    tf.Group({.name = "a-z1", .region = a_, .zone = a1});
    tf.Group({.name = "h", .region = a_, .gpu_type = "h100", .price_hour = 32.0});
    tf.Group({.name = "t", .region = a_, .taints = {"gpu=reserved", "team=ml"}});
    tf.Group({.name = "cpu", .region = a_, .gpu_type = ""});
    tf.Group({.name = "b", .region = b_, .price_hour = 4.0});
    tf.Link(a_, b_, 40, 10, 0.05);
    data_ = tf.Dataset("d", 1000, b_);
    fleet_ = std::move(tf).Build();
    state_ = std::make_unique<ClusterState>(&fleet_);
  }
  NodeId Node(const char* name) {
    NodeId id = fleet_.FindNode(name);
    EXPECT_TRUE(id.Valid()) << name;
    return id;
  }
  PlacementContext Ctx(const Job& job, std::span<const Allocation> gang = {},
                       std::span<const TaskClass> mix = {}) {
    return PlacementContext{fleet_, *state_, job, gang, mix};
  }

  Fleet fleet_;
  RegionId a_, b_;
  DatasetId data_;
  std::unique_ptr<ClusterState> state_;
  Job job_ = test::MakeJob(0, 0, test::WholeGpus(1));
};

TEST_F(PolicyBehaviorTest, TaintsFilterNeedsEveryTaintTolerated) {
  auto f = MakeFilter("taints");
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("t-0")));
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-0")));
  job_.tolerations = {"gpu=reserved"};
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("t-0")));
  job_.tolerations = {"team=ml", "gpu=reserved"};
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("t-0")));
}

TEST_F(PolicyBehaviorTest, SpotFilterKeepsSpotNodesForJobsThatAllowThem) {
  auto f = MakeFilter("spot");
  EXPECT_TRUE(fleet_.node(Node("a-spot-0")).spot);
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-spot-0")));
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-0")));
  job_.spot_allowed = true;
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-spot-0")));
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-0")));
}

TEST_F(PolicyBehaviorTest, ResidencyFilterKeepsAllowedRegionsOnly) {
  auto f = MakeFilter("residency");
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-0")));  // no restriction
  job_.allowed_regions = {b_};
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-0")));
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("b-0")));
}

TEST_F(PolicyBehaviorTest, ResidencyFilterKeepsAllowedZonesOnly) {
  auto f = MakeFilter("residency");
  job_.allowed_regions = {a_};
  job_.allowed_zones = {fleet_.node(Node("a-z1-0")).zone};
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-z1-0")));
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-0")));  // region a, zone a-z0
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("b-0")));
}

TEST_F(PolicyBehaviorTest, GpuTypeFilterKeepsAllowedTypes) {
  auto f = MakeFilter("gpu_type");
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("h-0")));  // any type
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("cpu-0")));
  job_.gpu_types = {{fleet_.FindGpuType("h100"), 2.0}};
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("h-0")));
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-0")));
  Job cpu = test::MakeJob(1, 0, test::WholeGpus(0));
  cpu.gpu_types = job_.gpu_types;
  EXPECT_TRUE(f->Feasible(Ctx(cpu), Node("a-0")));  // CPU work may use any node
}

TEST_F(PolicyBehaviorTest, HealthFilterFollowsRunTimeHealth) {
  auto f = MakeFilter("health");
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-0")));
  state_->SetHealthy(Node("a-0"), false);
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-0")));
}

TEST_F(PolicyBehaviorTest, CapacityFilterRejectsFullNodes) {
  auto f = MakeFilter("capacity");
  state_->Allocate(Node("a-0"), test::WholeGpus(8));
  EXPECT_FALSE(f->Feasible(Ctx(job_), Node("a-0")));
  EXPECT_TRUE(f->Feasible(Ctx(job_), Node("a-1")));
}

TEST_F(PolicyBehaviorTest, BestFitPrefersTheFullerNode) {
  auto s = MakeScorer("best_fit");
  state_->Allocate(Node("a-1"), test::WholeGpus(4));
  EXPECT_GT(s->Score(Ctx(job_), Node("a-1")), s->Score(Ctx(job_), Node("a-0")));
}

TEST_F(PolicyBehaviorTest, SpreadPrefersTheEmptierNodeAndAvoidsTheGang) {
  auto s = MakeScorer("spread");
  state_->Allocate(Node("a-1"), test::WholeGpus(4));
  EXPECT_GT(s->Score(Ctx(job_), Node("a-0")), s->Score(Ctx(job_), Node("a-1")));
  job_.replicas = 2;
  std::vector<Allocation> gang = {state_->Allocate(Node("a-0"), job_.shape)};
  EXPECT_LT(s->Score(Ctx(job_, gang), Node("a-0")), s->Score(Ctx(job_), Node("a-0")));
}

TEST_F(PolicyBehaviorTest, FragmentationFillsAHalfUsedGpuRatherThanBreakingAWholeOne) {
  auto s = MakeScorer("fragmentation");
  // a-1: every GPU but one taken whole, one half used; a-0: the same, but the
  // last GPU is untouched and one more is free.
  state_->Allocate(Node("a-1"), test::WholeGpus(6));
  state_->Allocate(Node("a-1"), test::GpuShare(500));
  state_->Allocate(Node("a-0"), test::WholeGpus(6));
  Job half = test::MakeJob(1, 0, test::GpuShare(500));
  for (bool default_mix : {true, false}) {
    SCOPED_TRACE(default_mix ? "default mix" : "explicit mix");
    std::vector<TaskClass> mix = {{test::WholeGpus(1), 0.7}, {test::GpuShare(500), 0.3}};
    std::span<const TaskClass> m;
    if (!default_mix) m = mix;
    EXPECT_GT(s->Score(Ctx(half, {}, m), Node("a-1")), s->Score(Ctx(half, {}, m), Node("a-0")));
  }
  EXPECT_EQ(s->Score(Ctx(half), Node("cpu-0")), 50.0);  // no GPUs: neutral
}

TEST_F(PolicyBehaviorTest, CostPrefersCheaperNodes) {
  auto s = MakeScorer("cost");
  EXPECT_GT(s->Score(Ctx(job_), Node("b-0")), s->Score(Ctx(job_), Node("a-0")));
  EXPECT_GT(s->Score(Ctx(job_), Node("a-0")), s->Score(Ctx(job_), Node("h-0")));
  // $4 per 8 GPUs = $0.5/GPU-hour against the reference: 100 / (1 + 0.5 / ref).
  EXPECT_DOUBLE_EQ(s->Score(Ctx(job_), Node("b-0")), 100.0 / 1.25);
  auto cheap_ref = MakeScorer("cost", {{"reference_usd", "0.5"}});
  EXPECT_DOUBLE_EQ(cheap_ref->Score(Ctx(job_), Node("b-0")), 50.0);
}

TEST_F(PolicyBehaviorTest, CostRejectsBadReference) {
  for (const char* bad : {"abc", "0", "-1", "nan"}) {
    auto s = test::BuiltinRegistry().MakeScorer("cost", {{"reference_usd", bad}});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("reference_usd"));
  }
}

TEST_F(PolicyBehaviorTest, DataLocalityPrefersTheDatasetHome) {
  auto s = MakeScorer("data_locality");
  EXPECT_EQ(s->Score(Ctx(job_), Node("a-0")), 100.0);  // no dataset: indifferent
  job_.dataset = data_;
  EXPECT_EQ(s->Score(Ctx(job_), Node("b-0")), 100.0);
  EXPECT_LT(s->Score(Ctx(job_), Node("a-0")), 50.0);
}

TEST(DataLocalityTest, UnknownLinkScoresZero) {
  test::TestFleet tf;
  RegionId a = tf.Region("a"), b = tf.Region("b");
  tf.Group({.name = "a", .region = a});
  tf.Group({.name = "b", .region = b});
  DatasetId d = tf.Dataset("d", 10, b);
  Fleet fleet = std::move(tf).Build();
  ClusterState state(&fleet);
  Job job = test::MakeJob(0, 0, test::WholeGpus(1));
  job.dataset = d;
  auto s = *test::BuiltinRegistry().MakeScorer("data_locality");
  PlacementContext ctx{fleet, state, job, {}, {}};
  EXPECT_EQ(s->Score(ctx, fleet.FindNode("a-0")), 0.0);
  EXPECT_EQ(s->Score(ctx, fleet.FindNode("b-0")), 100.0);
}

TEST_F(PolicyBehaviorTest, TopologyPrefersTheNodeHoldingTheGangThenItsZone) {
  auto s = MakeScorer("topology");
  job_.replicas = 4;
  std::vector<Allocation> gang = {state_->Allocate(Node("a-0"), job_.shape)};
  const double same_node = s->Score(Ctx(job_, gang), Node("a-0"));
  const double same_zone = s->Score(Ctx(job_, gang), Node("a-1"));
  const double other_zone = s->Score(Ctx(job_, gang), Node("a-z1-0"));
  EXPECT_GT(same_node, same_zone);
  EXPECT_GT(same_zone, other_zone);
}

TEST_F(PolicyBehaviorTest, TopologyFirstReplicaPrefersANodeThatHoldsTheWholeGang) {
  auto s = MakeScorer("topology");
  job_.replicas = 4;
  state_->Allocate(Node("a-1"), test::WholeGpus(6));  // room for 2 of 4
  EXPECT_EQ(s->Score(Ctx(job_), Node("a-0")), 100.0);
  EXPECT_EQ(s->Score(Ctx(job_), Node("a-1")), 50.0);
}

TEST(MaxScoreSelectorTest, PicksTheMaxAndBreaksTiesByNodeId) {
  auto sel = MakeSelector("max_score");
  Rng rng(1);
  std::vector<ScoredCandidate> c = {{NodeId(4), 10}, {NodeId(9), 70}, {NodeId(2), 30}};
  EXPECT_EQ(sel->Select(c, rng), 1u);
  c.push_back({NodeId(5), 70});
  EXPECT_EQ(sel->Select(c, rng), 3u);  // node 5 < node 9
}

TEST(RandomTopSelectorTest, PicksAmongTheTopK) {
  auto sel = MakeSelector("random_top", {{"k", "2"}});
  Rng rng(42);
  std::vector<ScoredCandidate> c = {
      {NodeId(0), 10}, {NodeId(1), 90}, {NodeId(2), 50}, {NodeId(3), 80}, {NodeId(4), 20}};
  std::set<size_t> picked;
  for (int i = 0; i < 200; ++i) picked.insert(sel->Select(c, rng));
  EXPECT_EQ(picked, (std::set<size_t>{1, 3}));
  auto top1 = MakeSelector("random_top", {{"k", "1"}});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1->Select(c, rng), 1u);
}

TEST(RandomTopSelectorTest, RejectsBadK) {
  for (const char* bad : {"0", "-2", "x", "100001"}) {
    auto s = test::BuiltinRegistry().MakeSelector("random_top", {{"k", bad}});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(MaxScoreSelectorTest, RandomTiesDrawOnlyAmongTheTiedBest) {
  std::vector<ScoredCandidate> c = {
      {NodeId(3), 5}, {NodeId(7), 9}, {NodeId(2), 9}, {NodeId(1), 1}, {NodeId(4), 9}};
  Rng rng(5);
  EXPECT_EQ(MakeSelector("max_score")->Select(c, rng), 2u);  // lowest node id among the best
  auto random = MakeSelector("max_score", {{"ties", "random"}});
  std::set<size_t> seen;
  for (int i = 0; i < 300; ++i) seen.insert(random->Select(c, rng));
  EXPECT_EQ(seen, (std::set<size_t>{1, 2, 4}));
  auto bad = test::BuiltinRegistry().MakeSelector("max_score", {{"ties", "first"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("ties"));
}

TEST(ScorerOptionsTest, CpuShareAndNormalizeAreChecked) {
  for (auto [scorer, opts] : std::vector<std::pair<const char*, PolicyOptions>>{
           {"fragmentation", {{"cpu_share", "-1"}}},
           {"fragmentation", {{"cpu_share", "x"}}},
           {"best_fit", {{"cpu_share", "1e9"}}},
           {"best_fit", {{"normalize", "cluster"}}}}) {
    auto s = test::BuiltinRegistry().MakeScorer(scorer, opts);
    ASSERT_FALSE(s.ok()) << scorer;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(opts.begin()->first));
  }
  EXPECT_TRUE(test::BuiltinRegistry()
                  .MakeScorer("best_fit", {{"normalize", "fleet"}, {"cpu_share", "2"}})
                  .ok());
}

}  // namespace
}  // namespace meridian
