// The simulator drives the unchanged Scheduler: same placements as a direct
// scheduling pass, deterministic, work conserved across preemption.
#include "sim/simulator.h"

#include <map>

#include "core/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/registry.h"
#include "sim/report.h"
#include "spec/spec.h"
#include "testing/fleets.h"

namespace meridian::sim {
namespace {

Fleet ExampleFleet() {
  auto f = spec::LoadFleet(std::string(MERIDIAN_SOURCE_DIR) + "/examples/fleets/multi-region.yaml",
                           nullptr);
  EXPECT_TRUE(f.ok()) << f.status();
  return *std::move(f);
}

Fleet OneNodeFleet(int gpus) {
  test::TestFleet f;
  RegionId r = f.Region("r");
  f.Group({.name = "n", .region = r, .gpus = gpus, .price_hour = 10});
  return std::move(f).Build();
}

TraceJob OneGpuJob(std::string name, double submit, double duration) {
  TraceJob j;
  j.name = std::move(name);
  j.submit_s = submit;
  j.duration_s = duration;
  j.shape = TaskShape{1000, 4096, 1, 1000};
  return j;
}

SimPolicy Policy(const std::string& name) {
  auto p = MakeBuiltinSimPolicy(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

// One engine, two drivers: a direct scheduling pass (what `meridian place`
// runs) and the simulator at time zero place every job on the same nodes.
TEST(Simulator, SamePlacementsAsDirectSchedulingAtTimeZero) {
  Fleet fleet = ExampleFleet();
  SyntheticTraceOptions so;
  so.jobs = 40;
  so.max_gpus = 8;
  so.fractional_share = 0.2;
  Trace trace = SyntheticTrace(so, TraceOptions{});
  for (TraceJob& j : trace.jobs) j.submit_s = 0;
  for (const std::string name : {"fifo", "drf", "fgd", "meridian"}) {
    SimPolicy policy = Policy(name);
    SimOptions options;
    options.departures = false;

    // Driver 1: the Scheduler directly, as `meridian place` uses it.
    Workload w = TraceToWorkload(fleet, trace, policy, options);
    FakeClock clock(0);
    Rng rng(options.seed);
    PolicyRegistry registry;
    RegisterBuiltinPolicies(registry);
    SchedulerOptions direct_opts = policy.scheduler;
    direct_opts.explain = true;  // as `meridian place`: explanations do not change decisions
    auto sched = Scheduler::Create(&fleet, registry, direct_opts, &clock, &rng);
    ASSERT_TRUE(sched.ok());
    for (const Tenant& t : w.tenants) ASSERT_TRUE((*sched)->AddTenant(t).ok());
    for (const Job& j : w.jobs) ASSERT_TRUE((*sched)->Submit(j).ok());
    (*sched)->SetTaskMix(WorkloadTaskMix(w.jobs));  // as `meridian place` and the simulator
    (void)(*sched)->Schedule();
    std::map<int32_t, std::vector<int32_t>> direct;
    for (JobId id : (*sched)->running())
      for (const Allocation& a : (*sched)->allocations(id)) direct[id.value()].push_back(a.node.value());

    // Driver 2: the simulator; collect what it placed at t = 0.
    std::map<int32_t, std::vector<int32_t>> simulated;
    options.on_decision = [&](double t, const Decision& d) {
      if (t != 0) return;
      if (d.kind == DecisionKind::kPreempted) simulated.erase(d.job.value());
      if (!d.plan.placed) return;
      for (const ReplicaPlacement& r : d.plan.replicas)
        simulated[d.job.value()].push_back(r.allocation.node.value());
    };
    auto result = RunSimulation(fleet, trace, policy, options);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_FALSE(direct.empty()) << name;
    EXPECT_EQ(direct, simulated) << "policy " << name;
  }
}

TEST(Simulator, DeterministicForASeed) {
  Fleet fleet = ExampleFleet();
  SyntheticTraceOptions so;
  so.jobs = 300;
  so.max_gpus = 16;
  Trace trace = SyntheticTrace(so, TraceOptions{});
  for (const std::string name : {"fifo", "tiresias", "random"}) {
    SimOptions options;
    options.node_mtbf_s = 200000;
    auto a = RunSimulation(fleet, trace, Policy(name), options);
    auto b = RunSimulation(fleet, trace, Policy(name), options);
    ASSERT_TRUE(a.ok() && b.ok());
    a->wall_s = b->wall_s = 0;
    RunInfo info;
    EXPECT_EQ(ResultsToJson({*a}, info), ResultsToJson({*b}, info)) << name;
  }
}

TEST(Simulator, FifoQueuesBehindTheFirstJob) {
  Fleet fleet = OneNodeFleet(1);
  Trace trace;
  trace.jobs = {OneGpuJob("a", 0, 100), OneGpuJob("b", 10, 50)};
  auto r = RunSimulation(fleet, trace, Policy("fifo"), SimOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->jobs_completed, 2);
  EXPECT_DOUBLE_EQ(r->makespan_s, 150);
  EXPECT_DOUBLE_EQ(r->avg_jct_s, (100 + 140) / 2.0);  // b waits 90 s, runs 50 s
  EXPECT_DOUBLE_EQ(r->avg_queue_s, 45);
  EXPECT_NEAR(r->gpu_util, 1.0, 1e-9);
  EXPECT_NEAR(r->cost_usd, 150.0 / 3600 * 10, 1e-9);
}

TEST(Simulator, LasPreemptsTheLongJobAndItResumesItsRemainingWork) {
  Fleet fleet = OneNodeFleet(1);
  Trace trace;
  // "long" passes the first LAS threshold (3600 GPU-s) before "short" arrives.
  trace.jobs = {OneGpuJob("long", 0, 10000), OneGpuJob("short", 5000, 100)};
  auto r = RunSimulation(fleet, trace, Policy("tiresias"), SimOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->jobs_completed, 2);
  EXPECT_EQ(r->preemptions, 1);
  // short starts on arrival (5000) and ends at 5100; long loses no work.
  EXPECT_DOUBLE_EQ(r->makespan_s, 10100);
  EXPECT_DOUBLE_EQ(r->avg_jct_s, (10100 + 100) / 2.0);
}

TEST(Simulator, NodeFailuresRequeueJobsThatStillComplete) {
  Fleet fleet = ExampleFleet();
  SyntheticTraceOptions so;
  so.jobs = 200;
  so.max_gpus = 8;
  Trace trace = SyntheticTrace(so, TraceOptions{});
  SimOptions options;
  options.node_mtbf_s = 20000;
  options.node_repair_s = 600;
  auto r = RunSimulation(fleet, trace, Policy("fifo"), options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->preemptions, 0);
  EXPECT_EQ(r->jobs_completed + r->jobs_unschedulable, r->jobs_total);
  EXPECT_GT(r->jobs_completed, 190);
}

TEST(Simulator, AllocationAsLoadGrows) {
  SyntheticFleetOptions fo;
  fo.nodes = 40;
  fo.regions = 1;
  auto fleet = MakeSyntheticFleet(fo);
  ASSERT_TRUE(fleet.ok());
  SyntheticTraceOptions so;
  so.jobs = 400;
  so.max_gpus = 4;
  so.fractional_share = 0.4;
  Trace trace = SyntheticTrace(so, TraceOptions{});
  SimOptions options;
  options.departures = false;
  auto r = RunSimulation(*fleet, trace, Policy("fgd"), options);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->allocation_curve.empty());
  for (size_t i = 1; i < r->allocation_curve.size(); ++i) {
    EXPECT_GE(r->allocation_curve[i].first, r->allocation_curve[i - 1].first);
    EXPECT_GE(r->allocation_curve[i].second + 1e-12, r->allocation_curve[i - 1].second);
    EXPECT_LE(r->allocation_curve[i].second, 1.0 + 1e-12);
  }
  EXPECT_GE(r->unallocated_gpu_share, 0.0);
  EXPECT_LT(r->unallocated_gpu_share, 1.0);
}

TEST(Simulator, UnknownPolicyIsAClearError) {
  SimPolicyRegistry r;
  RegisterBuiltinSimPolicies(r);
  auto p = r.Make("yarn");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(
      std::string(p.status().message()),
      ::testing::HasSubstr(
          "unknown policy 'yarn'; known: adaptive, adaptive_wan_blind, best_fit, cheapest"));
}

}  // namespace
}  // namespace meridian::sim
