// Round mode and the goodput job model: rounds delay arrivals, the restart
// penalty delays progress, Tiresias demotes and preempts, Gavel's policy
// moves jobs to faster types, fifo ignores the fleet file's type order,
// adaptive resizes elastic jobs; the goodput model on a small profile.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "placement/round_allocator.h"
#include "sim/goodput.h"
#include "sim/simulator.h"
#include "testing/fleets.h"

namespace meridian::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

SimPolicy Policy(const std::string& name) {
  auto p = MakeBuiltinSimPolicy(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TraceJob Job(std::string name, double submit, double duration, int32_t gpus = 1) {
  TraceJob j;
  j.name = std::move(name);
  j.submit_s = submit;
  j.duration_s = duration;
  j.replicas = gpus;
  j.shape = TaskShape{1000, 4096, 1, 1000};
  return j;
}

Fleet Gpus(int32_t nodes, int32_t gpus, std::string type = "a100") {
  test::TestFleet f;
  RegionId r = f.Region("r");
  f.Group({.name = "n", .region = r, .gpu_type = std::move(type), .gpus = gpus, .count = nodes});
  return std::move(f).Build();
}

PolicyResult Simulate(const Fleet& fleet, const Trace& trace, const std::string& policy,
                      SimOptions o) {
  auto r = RunSimulation(fleet, trace, Policy(policy), o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : PolicyResult{};
}

TEST(Rounds, ArrivalsWaitForTheNextRoundAndRestartsCostThePenalty) {
  Fleet fleet = Gpus(1, 1);
  Trace trace;
  trace.jobs = {Job("a", 10, 100)};
  SimOptions o;
  o.round_s = 60;
  o.restart_penalty_s = 30;
  PolicyResult r = Simulate(fleet, trace, "fifo", o);
  // Placed at the round at t=60, 30 s restart, 100 s of work: done at 190.
  EXPECT_EQ(r.jobs_completed, 1);
  EXPECT_DOUBLE_EQ(r.avg_jct_s, 190 - 10);
  EXPECT_DOUBLE_EQ(r.avg_queue_s, 50);
  // Event-driven with the same penalty: starts at once, 130 s.
  o.round_s = 0;
  r = Simulate(fleet, trace, "fifo", o);
  EXPECT_DOUBLE_EQ(r.avg_jct_s, 130);
}

TEST(Rounds, TiresiasDemotesALongJobAndPreemptsItForANewOne) {
  Fleet fleet = Gpus(1, 1);
  Trace trace;
  trace.jobs = {Job("long", 0, 10000), Job("short", 100, 60)};
  SimOptions o;
  o.round_s = 60;
  SimPolicy p = Policy("tiresias");
  p.round_options = {{"threshold_gpu_s", "120"}};
  auto r = RunSimulation(fleet, trace, p, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->jobs_completed, 2);
  EXPECT_EQ(r->preemptions, 1);  // long, demoted after 120 GPU-s, yields to short
  // short: arrives 100, runs from the round at 120 to 180.
  EXPECT_DOUBLE_EQ(r->jct_cdf.front(), 80);
  // Without demotion (a huge threshold) short waits for long.
  p.round_options = {{"threshold_gpu_s", "1e9"}};
  r = RunSimulation(fleet, trace, p, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->preemptions, 0);
  EXPECT_GT(r->jct_cdf.front(), 9000);
}

Fleet Hetero(std::vector<std::string> order) {
  test::TestFleet f;
  RegionId r = f.Region("r");
  for (const std::string& t : order)
    f.Group({.name = t, .region = r, .gpu_type = t, .gpus = 1, .count = 3});
  return std::move(f).Build();
}

TraceJob Typed(std::string name, double submit, double k80_s, double p100, double v100) {
  TraceJob j = Job(std::move(name), submit, k80_s);
  j.speeds = {{"k80", 1}, {"p100", p100}, {"v100", v100}};
  j.gpu_types = {"k80", "p100", "v100"};
  return j;
}

TEST(Rounds, GavelMovesARunningJobToAFasterTypeWhenOneFrees) {
  test::TestFleet f;
  RegionId reg = f.Region("r");
  f.Group({.name = "k80", .region = reg, .gpu_type = "k80", .gpus = 1, .count = 1});
  f.Group({.name = "v100", .region = reg, .gpu_type = "v100", .gpus = 1, .count = 1});
  Fleet fleet = std::move(f).Build();
  Trace trace;
  trace.jobs = {Typed("a", 0, 400, 2, 4), Typed("b", 0, 4000, 2, 4)};
  SimOptions o;
  o.round_s = 360;
  SimPolicy p = Policy("gavel");
  p.round_options = {{"reset_s", "360"}};
  auto r = RunSimulation(fleet, trace, p, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // a takes the V100 (400 / 4 = 100 s); b runs on the K80 for the first
  // round (360 of 4000), then on the V100: (4000 - 360) / 4 = 910 s more.
  EXPECT_EQ(r->jobs_completed, 2);
  EXPECT_DOUBLE_EQ(r->jct_cdf.front(), 100);
  EXPECT_DOUBLE_EQ(r->jct_cdf.back(), 360 + 910);
  // By default it reallocates at the next round too; with Gavel's minimum
  // of 1920 s between resets b moves at the first round after that, 2160 s,
  // and needs (4000 - 2160) / 4 = 460 s more.
  PolicyResult d = Simulate(fleet, trace, "gavel", o);
  EXPECT_DOUBLE_EQ(d.jct_cdf.back(), 360 + 910);
  o.allocation_reset_s = 1920;
  d = Simulate(fleet, trace, "gavel", o);
  EXPECT_DOUBLE_EQ(d.jct_cdf.back(), 2160 + 460);
}

TEST(Rounds, FifoAndGavelDoNotDependOnTheOrderOfTypesInTheFleet) {
  Trace trace;
  Rng rng(3);
  for (int i = 0; i < 40; ++i)
    trace.jobs.push_back(Typed("j" + std::to_string(i), i * 50.0, 2000 + rng.UniformReal() * 8000,
                               1.5 + rng.UniformReal() * 2, 2 + rng.UniformReal() * 4));
  SimOptions o;
  o.round_s = 360;
  for (const std::string policy : {"fifo", "gavel"}) {
    PolicyResult a = Simulate(Hetero({"k80", "p100", "v100"}), trace, policy, o);
    PolicyResult b = Simulate(Hetero({"v100", "k80", "p100"}), trace, policy, o);
    EXPECT_EQ(a.jobs_completed, 40) << policy;
    EXPECT_DOUBLE_EQ(a.avg_jct_s, b.avg_jct_s) << policy;
    EXPECT_DOUBLE_EQ(a.p99_jct_s, b.p99_jct_s) << policy;
  }
}

// Event-driven too: a job that runs alike on every type gets a per-job
// pseudo-random one among the ties, whatever order the fleet lists them in.
TEST(Rounds, EventDrivenFifoPicksTiedTypesIndependentlyOfFleetOrder) {
  Trace trace;
  for (int i = 0; i < 9; ++i) trace.jobs.push_back(Typed("j" + std::to_string(i), 0, 100, 1, 1));
  auto types = [&](const Fleet& fleet) {
    std::map<int32_t, std::string> out;
    SimOptions o;
    o.on_decision = [&](double, const Decision& d) {
      if (d.kind == DecisionKind::kPlaced || d.kind == DecisionKind::kBackfilled)
        out[d.job.value()] = fleet.gpu_type_name(d.plan.shares.at(0).gpu_type);
    };
    auto r = RunSimulation(fleet, trace, Policy("fifo"), o);
    EXPECT_TRUE(r.ok()) << r.status();
    return out;
  };
  Fleet a = Hetero({"k80", "p100", "v100"}), b = Hetero({"v100", "p100", "k80"});
  auto ta = types(a), tb = types(b);
  EXPECT_EQ(ta.size(), 9u);
  EXPECT_EQ(ta, tb);
  std::set<std::string> used;
  for (const auto& [j, t] : ta) used.insert(t);
  EXPECT_GT(used.size(), 1u);
}

// Event-driven policies run in rounds through their own Scheduler: one pass
// per round, freed GPUs reused at the next round.
TEST(Rounds, EventDrivenPoliciesRunOnePassPerRound) {
  Trace trace;
  trace.jobs = {Job("long", 0, 1000), Job("short1", 10, 100), Job("short2", 20, 50)};
  SimOptions o;
  o.round_s = 60;
  PolicyResult r = Simulate(Gpus(1, 1), trace, "sjf", o);
  // long runs 0..1000; at the round at 1020 sjf takes short2 (done 1070),
  // at 1080 short1 (done 1180).
  EXPECT_EQ(r.jobs_completed, 3);
  EXPECT_THAT(r.jct_cdf, ::testing::ElementsAre(1000, 1050, 1170));
  // Elastic policies have no event-driven mode.
  o.round_s = 0;
  auto e = RunSimulation(Gpus(1, 1), trace, Policy("adaptive"), o);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("--round-s > 0"));
}

// ------------------------------------------------------------ adaptive

std::vector<RoundNode> Nodes(int32_t count, int32_t gpus, int32_t regions = 1) {
  std::vector<RoundNode> out;
  for (int32_t i = 0; i < count; ++i)
    out.push_back({NodeId(i), RegionId(i * regions / count), GpuTypeId(0), gpus, true});
  return out;
}

int32_t Count(const NodeGpus& a) {
  int32_t t = 0;
  for (const auto& [n, g] : a) t += g;
  return t;
}

RoundJob Elastic(int32_t id, double submit, int32_t max_gpus, double exponent) {
  RoundJob j;
  j.id = JobId(id);
  j.submit_s = submit;
  j.min_gpus = 1;
  j.max_gpus = max_gpus;
  j.age_s = 1000;
  // Concave goodput: gpus^exponent.
  j.goodput = [exponent](int32_t g, int32_t, int32_t) { return std::pow(double(g), exponent); };
  return j;
}

TEST(Adaptive, GrowsALoneJobAndSharesFairlyWhenAnotherArrives) {
  auto alloc = MakeRoundAllocator("adaptive", {}, 1);
  ASSERT_TRUE(alloc.ok()) << alloc.status();
  std::vector<RoundNode> nodes = Nodes(4, 4);
  std::vector<RoundJob> jobs = {Elastic(0, 0, 16, 0.9)};
  RoundInput in;
  in.nodes = &nodes;
  in.jobs = &jobs;
  in.restart_penalty_s = 30;
  auto a = (*alloc)->Allocate(in);
  EXPECT_EQ(Count(a[0]), 16);
  // A second identical job: the fair p = -1 objective splits evenly.
  jobs[0].current = a[0];
  jobs.push_back(Elastic(1, 10, 16, 0.9));
  a = (*alloc)->Allocate(in);
  EXPECT_EQ(Count(a[0]), 8);
  EXPECT_EQ(Count(a[1]), 8);
  // A job that scales badly gets less than one that scales well.
  jobs = {Elastic(0, 0, 16, 0.2), Elastic(1, 0, 16, 1.0)};
  a = (*alloc)->Allocate(in);
  EXPECT_LT(Count(a[0]), Count(a[1]));
  EXPECT_EQ(Count(a[0]) + Count(a[1]), 16);
}

TEST(Adaptive, KeepsAYoungJobsSizeForASmallGain) {
  auto alloc = MakeRoundAllocator("adaptive", {}, 1);
  ASSERT_TRUE(alloc.ok());
  std::vector<RoundNode> nodes = Nodes(2, 4);
  std::vector<RoundJob> jobs = {Elastic(0, 0, 8, 0.05)};
  jobs[0].current = {{NodeId(0), 4}};
  jobs[0].age_s = 60;
  jobs[0].restarts = 1;
  RoundInput in;
  in.nodes = &nodes;
  in.jobs = &jobs;
  in.restart_penalty_s = 30;
  auto a = (*alloc)->Allocate(in);
  EXPECT_EQ(a[0], jobs[0].current);  // 8^0.05 / 4^0.05 = 1.035: not worth a restart
}

TEST(Adaptive, WanAwareKeepsAJobInOneRegionWhenSpreadingIsSlower) {
  std::vector<RoundNode> nodes = Nodes(4, 4, 2);  // regions 0 and 1, 8 GPUs each
  RoundJob j = Elastic(0, 0, 12, 1.0);
  j.goodput = [](int32_t g, int32_t, int32_t regions) { return regions > 1 ? g * 0.3 : double(g); };
  std::vector<RoundJob> jobs = {j};
  RoundInput in;
  in.nodes = &nodes;
  in.jobs = &jobs;
  auto aware = MakeRoundAllocator("adaptive", {{"wan_aware", "true"}}, 1);
  auto blind = MakeRoundAllocator("adaptive", {{"wan_aware", "false"}}, 1);
  ASSERT_TRUE(aware.ok() && blind.ok());
  auto a = (*aware)->Allocate(in);
  auto b = (*blind)->Allocate(in);
  EXPECT_EQ(Count(a[0]), 8);  // 8 in one region (8) beats 12 across (3.6)
  ASSERT_FALSE(a[0].empty());
  for (const auto& [n, g] : a[0])
    EXPECT_EQ(nodes[size_t(n.value())].region, nodes[size_t(a[0][0].first.value())].region);
  EXPECT_EQ(Count(b[0]), 12);  // blind: spans both regions
  EXPECT_FALSE(MakeRoundAllocator("adaptive", {{"wan_aware", "maybe"}}, 1).ok());
  EXPECT_FALSE(MakeRoundAllocator("adaptive", {{"bogus", "1"}}, 1).ok());
  EXPECT_FALSE(MakeRoundAllocator("nope", {}, 1).ok());
}

// ------------------------------------------------------------ goodput model

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A toy application: 2 epochs; one-node placements 1 and 2 GPUs, and "12"
// (two nodes); batches 64 (init) and 256.
fs::path ToyProfiles() {
  fs::path root =
      fs::path(testing::TempDir()) /
      ("goodput-" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
  fs::remove_all(root);
  Write(root / "toy/validation-64.csv",
        "progress,iteration,metric,grad_sqr,grad_var\n100,99,0.1,1,3\n200,199,0.5,1,3\n");
  Write(root / "toy/validation-256.csv",
        "progress,iteration,metric,grad_sqr,grad_var\n100,30,0.1,1,3\n220,60,0.5,1,3\n");
  Write(root / "toy/placements.csv",
        "placement,local_bsz,step_time,sync_time\n"
        "1,32,0.5,0\n1,128,1.5,0\n2,32,0.6,0.1\n2,128,1.6,0.1\n12,32,0.9,0.4\n12,128,1.9,0.4\n");
  Write(root / "toy/scalability.csv", "num_nodes,num_replicas,local_bsz,step_time,sync_time\n");
  return root;
}

TEST(GoodputModel, ThroughputEfficiencyAndCompletion) {
  auto m = GoodputModel::Load(ToyProfiles().string());
  ASSERT_TRUE(m.ok()) << m.status();
  const GoodputApp* app = (*m)->Find("toy");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->init_batch, 64);
  EXPECT_EQ(app->max_batch, 256);
  EXPECT_EQ(app->min_local, 32);
  EXPECT_EQ(app->max_local, 128);
  EXPECT_EQ(app->max_epochs, 2);
  EXPECT_THAT(app->epoch_end, ::testing::ElementsAre(100, 200));  // min over batches
  GoodputPlacement one{{1}}, two_nodes{{2, 1}}, rotated{{1, 2}};
  // Linear in the local batch: 80 is halfway between 32 and 128.
  EXPECT_DOUBLE_EQ((*m)->Throughput(*app, one, 80)[0], 1.0);
  // "21" is measured as its rotation "12".
  EXPECT_DOUBLE_EQ((*m)->Throughput(*app, two_nodes, 32)[0], 0.9);
  EXPECT_DOUBLE_EQ((*m)->Throughput(*app, rotated, 32)[1], 0.4);
  // Across regions: sync x 10 + 0.05 s.
  GoodputPlacement wan{{2, 1}, 10, 0.05};
  EXPECT_NEAR((*m)->Throughput(*app, wan, 32)[0], 0.9 - 0.4 + 4.05, 1e-12);
  // Fixed batch 64 on one GPU: no accumulation (64 <= the largest measured
  // per-GPU batch); 128 is above the init batch, so on one GPU the artifact's
  // rule forces one accumulation step: 2 x 64.
  BatchConfig b = (*m)->ChooseBatch(*app, one, BatchRange{64, 64}, 0);
  EXPECT_EQ(b.atomic, 64);
  EXPECT_EQ(b.accum, 0);
  BatchConfig acc = (*m)->ChooseBatch(*app, one, BatchRange{128, 128}, 0);
  EXPECT_EQ(acc.atomic, 64);
  EXPECT_EQ(acc.accum, 1);
  // Goodput = gain / (step + accum x compute); scale 1 -> gain 1; step at 64
  // is 0.5 + 1/3.
  EXPECT_DOUBLE_EQ((*m)->Goodput(*app, one, b, 0), 1.0 / (0.5 + 1.0 / 3));
  // Batch 128 on 2 GPUs of one node: scale 2, gain (3+1)/(1.5+1) = 1.6.
  GoodputPlacement pair{{2}};
  BatchConfig b2 = (*m)->ChooseBatch(*app, pair, BatchRange{128, 128}, 0);
  EXPECT_EQ(b2.atomic, 64);
  EXPECT_EQ(b2.accum, 0);
  const double g2 = 1.6 / (0.6 + (1.6 - 0.6) * (64.0 - 32) / 96);
  EXPECT_NEAR((*m)->Goodput(*app, pair, b2, 0), g2, 1e-12);
  // Advance at 1.2/s: epoch 0 ends after round(100 / 1.2) = 83 s, then 67 s
  // of epoch 1 -> progress 180.4 of 200; the rest takes round(19.6 / 1.2).
  GoodputJobState s;
  EXPECT_DOUBLE_EQ((*m)->Advance(*app, one, BatchRange{64, 64}, 150, s), -1);
  EXPECT_EQ(s.epoch, 1);
  EXPECT_NEAR((*m)->FractionDone(*app, s), 0.902, 1e-9);
  EXPECT_DOUBLE_EQ((*m)->Advance(*app, one, BatchRange{64, 64}, 150, s), 16);
  // Adaptive batch picks something in range with at least the fixed goodput.
  BatchConfig best = (*m)->ChooseBatch(*app, pair, BatchRange{}, 0);
  EXPECT_GE((*m)->Goodput(*app, pair, best, 0), (*m)->Goodput(*app, pair, b2, 0) - 1e-12);
  EXPECT_LE(best.Global(2), 256);
}

TEST(GoodputModel, MalformedProfilesNameFileAndLine) {
  fs::path root = ToyProfiles();
  Write(root / "toy/placements.csv",
        "placement,local_bsz,step_time,sync_time\n1,32,0.5,0\n1,x,1,0\n");
  auto m = GoodputModel::Load(root.string());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("placements.csv:3:"));
  Write(root / "toy/placements.csv", "placement,local_bsz,step_time\n1,32,0.5\n");
  m = GoodputModel::Load(root.string());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("missing column 'sync_time'"));
  EXPECT_FALSE(GoodputModel::Load((root / "nothing-here").string()).ok());
}

TEST(GoodputModel, RoundModeRunsJobsByGoodput) {
  auto m = GoodputModel::Load(ToyProfiles().string());
  ASSERT_TRUE(m.ok());
  Trace trace;
  TraceJob j = Job("t", 0, 1);
  j.model = "toy";
  j.batch_size = 64;
  trace.jobs = {j};
  SimOptions o;
  o.round_s = 60;
  o.restart_penalty_s = 30;
  o.goodput = m->get();
  PolicyResult r = Simulate(Gpus(1, 4), trace, "tiresias", o);
  // 30 s restart, then two epochs of 100 progress at 1.2/s (83 s each).
  EXPECT_DOUBLE_EQ(r.avg_jct_s, 30 + 83 + 83);
  j.model = "unknown";
  trace.jobs = {j};
  auto bad = RunSimulation(Gpus(1, 4), trace, Policy("tiresias"), o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("no application 'unknown'"));
}

}  // namespace
}  // namespace meridian::sim
