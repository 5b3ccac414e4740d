// Conformance suite every registered filter, scorer and selector passes.
//
// Parameterised over the names the registry reports after
// RegisterBuiltinPolicies, so a newly registered policy is covered without
// touching this file. Scenarios are random fleets (unhealthy nodes, taints,
// spot) with random prior allocations, random synthetic jobs (some tolerating
// the synthetic taint) and random partial gangs.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/engine.h"
#include "placement/policy.h"
#include "placement/registry.h"
#include "testing/fleets.h"
#include "testing/invariants.h"
#include "testing/jobs.h"
#include "testing/policies.h"

namespace meridian {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kSeeds = 25;

enum class Kind { kFilter, kScorer, kSelector };

struct PolicyName {
  Kind kind;
  std::string name;
};

std::vector<PolicyName> AllPolicies() {
  std::vector<PolicyName> out;
  const PolicyRegistry& r = test::BuiltinRegistry();
  for (const std::string& n : r.FilterNames()) out.push_back({Kind::kFilter, n});
  for (const std::string& n : r.ScorerNames()) out.push_back({Kind::kScorer, n});
  for (const std::string& n : r.SelectorNames()) out.push_back({Kind::kSelector, n});
  return out;
}

std::string ParamName(const ::testing::TestParamInfo<PolicyName>& info) {
  const char* kind = info.param.kind == Kind::kFilter   ? "filter_"
                     : info.param.kind == Kind::kScorer ? "scorer_"
                                                        : "selector_";
  return kind + info.param.name;
}

// Makes the policy and returns its status and, when it was made, its name().
struct Made {
  absl::Status status;
  std::string name;
};
Made MakePolicy(const PolicyName& p, const PolicyOptions& opts) {
  const PolicyRegistry& r = test::BuiltinRegistry();
  auto take = [](auto made) -> Made {
    if (!made.ok()) return {made.status(), ""};
    return {absl::OkStatus(), std::string((*made)->name())};
  };
  switch (p.kind) {
    case Kind::kFilter:
      return take(r.MakeFilter(p.name, opts));
    case Kind::kScorer:
      return take(r.MakeScorer(p.name, opts));
    case Kind::kSelector:
      return take(r.MakeSelector(p.name, opts));
  }
  return {absl::InternalError("unreachable"), ""};
}

class PolicyFactoryTest : public ::testing::TestWithParam<PolicyName> {};

TEST_P(PolicyFactoryTest, EmptyOptionsSucceed) {
  Made m = MakePolicy(GetParam(), {});
  EXPECT_TRUE(m.status.ok()) << m.status;
}

TEST_P(PolicyFactoryTest, NameIsTheRegisteredName) {
  Made m = MakePolicy(GetParam(), {});
  ASSERT_TRUE(m.status.ok()) << m.status;
  EXPECT_EQ(m.name, GetParam().name);
}

TEST_P(PolicyFactoryTest, UnknownOptionIsRejected) {
  Made m = MakePolicy(GetParam(), {{"no_such_option", "1"}});
  EXPECT_EQ(m.status.code(), absl::StatusCode::kInvalidArgument) << m.status;
  EXPECT_THAT(std::string(m.status.message()), HasSubstr("no_such_option"));
}

INSTANTIATE_TEST_SUITE_P(Builtins, PolicyFactoryTest, ::testing::ValuesIn(AllPolicies()),
                         ParamName);

TEST(PolicyRegistryTest, ListsTheBuiltins) {
  const PolicyRegistry& r = test::BuiltinRegistry();
  // Every policy the default EngineOptions name, plus the documented extras.
  EXPECT_THAT(r.FilterNames(), ::testing::IsSupersetOf({"health", "residency", "gpu_type",
                                                        "spot", "taints", "capacity"}));
  EXPECT_THAT(r.ScorerNames(),
              ::testing::IsSupersetOf({"best_fit", "spread", "fragmentation", "cost",
                                       "data_locality", "topology"}));
  EXPECT_THAT(r.SelectorNames(), ::testing::IsSupersetOf({"max_score", "random_top"}));
  EXPECT_TRUE(PlacementEngine::Create(r, EngineOptions{}).ok());
}

TEST(PolicyRegistryTest, UnknownNameIsNotFoundAndListsTheKnownOnes) {
  auto f = test::BuiltinRegistry().MakeFilter("nope");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("capacity"));
}

TEST(PolicyRegistryTest, DuplicateRegistrationIsRejected) {
  PolicyRegistry r;
  RegisterBuiltinPolicies(r);
  absl::Status s = r.RegisterScorer("cost", [](const PolicyOptions&) {
    return absl::StatusOr<std::unique_ptr<Scorer>>(absl::InternalError("unused"));
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
}

// ---------------------------------------------------------------------------
// Random scenarios shared by the filter and scorer suites.

struct Scenario {
  Fleet fleet;
  std::unique_ptr<ClusterState> state;
  Workload workload;
  std::vector<Allocation> held;  // every allocation made, gangs included
};

std::unique_ptr<Scenario> MakeScenario(uint64_t seed) {
  auto sc = std::make_unique<Scenario>();
  sc->fleet = test::RandomFleet(seed);
  sc->state = std::make_unique<ClusterState>(&sc->fleet);
  sc->workload = MakeSyntheticJobs(sc->fleet, test::RandomJobOptions(seed));
  Rng rng(seed);
  for (Job& j : sc->workload.jobs)
    if (rng.Uniform(0, 2) == 0) j.tolerations.push_back("dedicated=team");
  const TaskShape fill[] = {test::WholeGpus(1), test::WholeGpus(2), test::WholeGpus(4),
                            test::GpuShare(300), test::GpuShare(500)};
  const int64_t n = int64_t(sc->fleet.nodes().size());
  for (int i = 0; i < 3 * n; ++i) {
    NodeId id(static_cast<int32_t>(rng.Uniform(0, n - 1)));
    const TaskShape& shape = fill[rng.Uniform(0, 4)];
    if (sc->state->Fits(id, shape)) sc->held.push_back(sc->state->Allocate(id, shape));
  }
  for (int i = 0; i < n / 8; ++i)
    sc->state->SetHealthy(NodeId(static_cast<int32_t>(rng.Uniform(0, n - 1))), false);
  return sc;
}

// Calls f(ctx, node) for a spread of jobs, each with a random partial gang
// already allocated, over every node of the fleet.
void ForEachCase(Scenario& sc, uint64_t seed,
                 const std::function<void(const PlacementContext&, NodeId)>& f) {
  Rng rng(seed ^ 0x9e3779b97f4a7c15ull);
  const std::vector<TaskClass> mix = {{test::GpuShare(500), 0.5}, {test::WholeGpus(2), 0.5}};
  for (size_t ji = 0; ji < sc.workload.jobs.size(); ji += 5) {
    const Job& job = sc.workload.jobs[ji];
    std::vector<Allocation> gang;
    const int64_t placed = rng.Uniform(0, job.replicas - 1);
    for (int64_t k = 0; k < placed; ++k) {
      NodeId id(static_cast<int32_t>(rng.Uniform(0, int64_t(sc.fleet.nodes().size()) - 1)));
      if (sc.state->Fits(id, job.shape)) gang.push_back(sc.state->Allocate(id, job.shape));
    }
    std::span<const TaskClass> task_mix;
    if (rng.Uniform(0, 1) == 1) task_mix = mix;
    PlacementContext ctx{sc.fleet, *sc.state, job, gang, task_mix};
    for (size_t i = 0; i < sc.fleet.nodes().size(); ++i) f(ctx, NodeId(static_cast<int32_t>(i)));
    for (const Allocation& a : gang) sc.state->Release(a);
  }
}

std::vector<std::unique_ptr<Filter>> DefaultFilters() {
  std::vector<std::unique_ptr<Filter>> out;
  for (const std::string& name : EngineOptions{}.filters)
    out.push_back(*test::BuiltinRegistry().MakeFilter(name));
  return out;
}

// ---------------------------------------------------------------------------
// Filters.

// What each built-in filter must answer, recomputed from first principles.
using Oracle = std::function<bool(const PlacementContext&, NodeId)>;
const std::map<std::string, Oracle>& FilterOracles() {
  static const std::map<std::string, Oracle> oracles = {
      {"health", [](const PlacementContext& c, NodeId id) { return c.state.healthy(id); }},
      {"residency",
       [](const PlacementContext& c, NodeId id) {
         const auto& allowed = c.job.allowed_regions;
         return allowed.empty() || std::find(allowed.begin(), allowed.end(),
                                             c.fleet.node(id).region) != allowed.end();
       }},
      {"gpu_type",
       [](const PlacementContext& c, NodeId id) {
         const Node& n = c.fleet.node(id);
         if (c.job.shape.gpus == 0) return true;
         if (!n.gpu_type.Valid()) return false;
         if (c.job.gpu_types.empty()) return true;
         for (const GpuChoice& g : c.job.gpu_types)
           if (g.type == n.gpu_type && g.speed > 0) return true;
         return false;
       }},
      {"spot",
       [](const PlacementContext& c, NodeId id) {
         return !c.fleet.node(id).spot || c.job.spot_allowed;
       }},
      {"taints",
       [](const PlacementContext& c, NodeId id) {
         for (const std::string& t : c.fleet.node(id).taints)
           if (std::find(c.job.tolerations.begin(), c.job.tolerations.end(), t) ==
               c.job.tolerations.end())
             return false;
         return true;
       }},
      {"capacity",
       [](const PlacementContext& c, NodeId id) {
         const NodeState& s = c.state.node(id);
         const TaskShape& t = c.job.shape;
         if (s.free.cpu_milli < t.cpu_milli || s.free.memory_mib < t.memory_mib) return false;
         if (t.gpus == 0) return true;
         int whole = 0;
         bool share = false;
         for (int16_t g : s.gpu_free) {
           whole += g == 1000;
           share |= g >= t.gpu_milli;
         }
         return t.fractional() ? share : whole >= t.gpus;
       }},
  };
  return oracles;
}

class FilterConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Filter> Make() { return *test::BuiltinRegistry().MakeFilter(GetParam()); }
};

TEST_P(FilterConformanceTest, DeterministicAndLeavesStateAlone) {
  std::unique_ptr<Filter> f = Make();
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    auto sc = MakeScenario(seed);
    int accepted = 0, rejected = 0;
    ForEachCase(*sc, seed, [&](const PlacementContext& ctx, NodeId id) {
      bool a = f->Feasible(ctx, id);
      ASSERT_EQ(a, f->Feasible(ctx, id)) << "node " << id;
      (a ? accepted : rejected)++;
    });
    EXPECT_GT(accepted + rejected, 0);
    EXPECT_THAT(test::CheckStateMatches(*sc->state, sc->held), IsEmpty());
  }
}

TEST_P(FilterConformanceTest, AgreesWithItsOracle) {
  auto it = FilterOracles().find(GetParam());
  if (it == FilterOracles().end())
    GTEST_SKIP() << "no oracle for filter '" << GetParam() << "': add one to FilterOracles()";
  std::unique_ptr<Filter> f = Make();
  int accepted = 0, rejected = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    auto sc = MakeScenario(seed);
    ForEachCase(*sc, seed, [&](const PlacementContext& ctx, NodeId id) {
      bool want = it->second(ctx, id);
      ASSERT_EQ(f->Feasible(ctx, id), want)
          << "job '" << ctx.job.name << "' on node " << ctx.fleet.node(id).name;
      (want ? accepted : rejected)++;
    });
  }
  // The scenarios must exercise both answers, or the comparison proves little.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

INSTANTIATE_TEST_SUITE_P(Builtins, FilterConformanceTest,
                         ::testing::ValuesIn(test::BuiltinRegistry().FilterNames()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// Scorers.

class ScorerConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScorerConformanceTest, ScoresFeasibleNodesInRangeDeterministically) {
  std::unique_ptr<Scorer> scorer = *test::BuiltinRegistry().MakeScorer(GetParam());
  std::vector<std::unique_ptr<Filter>> filters = DefaultFilters();
  int scored = 0;
  double lo = 100, hi = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    auto sc = MakeScenario(seed);
    ForEachCase(*sc, seed, [&](const PlacementContext& ctx, NodeId id) {
      for (const auto& f : filters)
        if (!f->Feasible(ctx, id)) return;
      double s = scorer->Score(ctx, id);
      ASSERT_FALSE(std::isnan(s)) << "node " << ctx.fleet.node(id).name;
      ASSERT_GE(s, 0.0) << "job '" << ctx.job.name << "' node " << ctx.fleet.node(id).name;
      ASSERT_LE(s, 100.0) << "job '" << ctx.job.name << "' node " << ctx.fleet.node(id).name;
      ASSERT_EQ(s, scorer->Score(ctx, id)) << "not deterministic";
      lo = std::min(lo, s);
      hi = std::max(hi, s);
      ++scored;
    });
    EXPECT_THAT(test::CheckStateMatches(*sc->state, sc->held), IsEmpty());
  }
  EXPECT_GT(scored, 100);
  EXPECT_LT(lo, hi) << "a scorer that gives every node the same score cannot steer placement";
}

INSTANTIATE_TEST_SUITE_P(Builtins, ScorerConformanceTest,
                         ::testing::ValuesIn(test::BuiltinRegistry().ScorerNames()),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// Selectors.

std::vector<ScoredCandidate> RandomCandidates(Rng& rng) {
  std::vector<ScoredCandidate> c(size_t(rng.Uniform(1, 24)));
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = {NodeId(static_cast<int32_t>(rng.Uniform(0, 500))),
            double(rng.Uniform(0, 40)) * 2.5};  // coarse scores: ties happen
  return c;
}

class SelectorConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SelectorConformanceTest, PicksAnIndexInRange) {
  std::unique_ptr<Selector> sel = *test::BuiltinRegistry().MakeSelector(GetParam());
  Rng gen(7), rng(11);
  for (int i = 0; i < 500; ++i) {
    std::vector<ScoredCandidate> c = RandomCandidates(gen);
    ASSERT_LT(sel->Select(c, rng), c.size());
  }
  std::vector<ScoredCandidate> one = {{NodeId(3), 12.0}};
  EXPECT_EQ(sel->Select(one, rng), 0u);
}

TEST_P(SelectorConformanceTest, SameSeedSameChoices) {
  std::unique_ptr<Selector> sel = *test::BuiltinRegistry().MakeSelector(GetParam());
  Rng gen(3), a(99), b(99);
  for (int i = 0; i < 200; ++i) {
    std::vector<ScoredCandidate> c = RandomCandidates(gen);
    ASSERT_EQ(sel->Select(c, a), sel->Select(c, b));
  }
}

TEST_P(SelectorConformanceTest, NeverPicksBelowTheMedianOfDistinctScores) {
  // Every built-in favours high scores; a selector that picks low ones is broken.
  std::unique_ptr<Selector> sel = *test::BuiltinRegistry().MakeSelector(GetParam());
  Rng rng(5);
  std::vector<ScoredCandidate> c;
  for (int i = 0; i < 20; ++i) c.push_back({NodeId(i), double((i * 7) % 20)});
  for (int i = 0; i < 200; ++i) ASSERT_GE(c[sel->Select(c, rng)].score, 10.0);
}

INSTANTIATE_TEST_SUITE_P(Builtins, SelectorConformanceTest,
                         ::testing::ValuesIn(test::BuiltinRegistry().SelectorNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace meridian
