// The simulator against the artifacts it cites, on their own inputs in
// ../shared/data (read at run time; skipped when absent):
//  - Pollux workload-6, tiresias with the artifact's modelling (60 s
//    rounds, 30 s restarts, goodput model): the artifact's Tiresias averages
//    3,469.7 s JCT, p99 46,335 s (philly-pollux/PROVENANCE.md and the
//    artifact's results-jobload/tiresias-1.0/summary.json);
//  - adaptive on the same run: at most Pollux's published 2,446 s and below
//    tiresias;
//  - Gavel's traces at 20 and 40 jobs/h on 36:36:36 single-GPU servers,
//    360 s rounds: gavel within 10% of Gavel's fifo_perf average JCT and 20%
//    of its p99 (gavel-traces/PROVENANCE.md); fifo the same for either order
//    of GPU types in the fleet file.
// Each simulation takes well under a second.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "sim/goodput.h"
#include "sim/simulator.h"
#include "spec/spec.h"

namespace meridian::sim {
namespace {

namespace fs = std::filesystem;

std::string DataDir() {
  const char* env = std::getenv("MERIDIAN_DATA");
  return env != nullptr ? env : std::string(MERIDIAN_SOURCE_DIR) + "/../shared/data";
}

SimPolicy Policy(const std::string& name) {
  auto p = MakeBuiltinSimPolicy(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

Fleet LoadFleet(const std::string& path) {
  auto f = spec::LoadFleet(path, nullptr);
  EXPECT_TRUE(f.ok()) << f.status();
  return *std::move(f);
}

TEST(Artifacts, PolluxWorkload6TiresiasAndAdaptive) {
  const std::string w6 = DataDir() + "/philly-pollux/workloads/workload-6.csv";
  if (!fs::exists(w6))
    GTEST_SKIP() << "Pollux workload not found at " << w6 << " (set MERIDIAN_DATA)";
  auto trace = ReadTrace("pollux:" + w6, TraceOptions{});
  ASSERT_TRUE(trace.ok()) << trace.status();
  auto model = GoodputModel::Load(trace->modelling.profiles_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  Fleet fleet = LoadFleet(std::string(MERIDIAN_SOURCE_DIR) + "/examples/fleets/pollux-t4.yaml");
  SimOptions o;
  o.round_s = trace->modelling.round_s;
  o.restart_penalty_s = trace->modelling.restart_penalty_s;
  o.goodput = model->get();
  auto tiresias = RunSimulation(fleet, *trace, Policy("tiresias"), o);
  ASSERT_TRUE(tiresias.ok()) << tiresias.status();
  EXPECT_EQ(tiresias->jobs_completed, 160);
  EXPECT_NEAR(tiresias->avg_jct_s, 3469.7, 0.05 * 3469.7);
  EXPECT_NEAR(tiresias->p99_jct_s, 46335, 0.10 * 46335);
  auto adaptive = RunSimulation(fleet, *trace, Policy("adaptive"), o);
  ASSERT_TRUE(adaptive.ok()) << adaptive.status();
  EXPECT_EQ(adaptive->jobs_completed, 160);
  EXPECT_LE(adaptive->avg_jct_s, 2446);
  EXPECT_LT(adaptive->avg_jct_s, tiresias->avg_jct_s);
}

TEST(Artifacts, GavelTracesHeterogeneityAwareAndFleetOrder) {
  const std::string dir = DataDir() + "/gavel-traces";
  if (!fs::exists(dir + "/gavel-400-lam180-s0.trace"))
    GTEST_SKIP() << "Gavel traces not found in " << dir << " (set MERIDIAN_DATA)";
  Fleet fleet = LoadFleet(std::string(MERIDIAN_SOURCE_DIR) + "/examples/fleets/gavel-36x3.yaml");
  // The same cluster with its GPU types listed in the opposite order.
  const std::string reversed = testing::TempDir() + "/gavel-36x3-reversed.yaml";
  {
    auto text =
        spec::ReadFile(std::string(MERIDIAN_SOURCE_DIR) + "/examples/fleets/gavel-36x3.yaml");
    ASSERT_TRUE(text.ok());
    std::string s = *text;
    const size_t k = s.find("  - {name: k80"), v = s.find("  - {name: v100");
    ASSERT_NE(k, std::string::npos);
    ASSERT_NE(v, std::string::npos);
    const std::string groups = s.substr(k);
    const std::string k80 = s.substr(k, s.find('\n', k) - k + 1);
    const std::string v100 = s.substr(v, s.find('\n', v) - v + 1);
    const size_t p = s.find("  - {name: p100");
    const std::string p100 = s.substr(p, s.find('\n', p) - p + 1);
    std::ofstream(reversed) << s.substr(0, k) << v100 << p100 << k80;
  }
  Fleet other = LoadFleet(reversed);
  ASSERT_NE(fleet.gpu_types(), other.gpu_types());
  struct Published {
    const char* file;
    double avg, p99;
  };
  for (const Published& pub : {Published{"gavel-400-lam180-s0.trace", 8996.5, 16506.5},
                               Published{"gavel-400-lam90-s0.trace", 12989.5, 23627.9}}) {
    auto trace = ReadTrace(std::string("gavel:") + dir + "/" + pub.file, TraceOptions{});
    ASSERT_TRUE(trace.ok()) << trace.status();
    SimOptions o;
    o.round_s = trace->modelling.round_s;
    o.allocation_reset_s = trace->modelling.allocation_reset_s;
    EXPECT_EQ(o.allocation_reset_s, 1920);
    auto gavel = RunSimulation(fleet, *trace, Policy("gavel"), o);
    ASSERT_TRUE(gavel.ok()) << gavel.status();
    EXPECT_EQ(gavel->jobs_completed, 400);
    EXPECT_NEAR(gavel->avg_jct_s, pub.avg, 0.10 * pub.avg) << pub.file;
    EXPECT_NEAR(gavel->p99_jct_s, pub.p99, 0.20 * pub.p99) << pub.file;
    auto fifo = RunSimulation(fleet, *trace, Policy("fifo"), o);
    auto fifo_other = RunSimulation(other, *trace, Policy("fifo"), o);
    ASSERT_TRUE(fifo.ok() && fifo_other.ok());
    EXPECT_EQ(fifo->jobs_completed, 400);
    EXPECT_DOUBLE_EQ(fifo->avg_jct_s, fifo_other->avg_jct_s) << pub.file;
    EXPECT_DOUBLE_EQ(fifo->p99_jct_s, fifo_other->p99_jct_s) << pub.file;
    EXPECT_GT(fifo->avg_jct_s, gavel->avg_jct_s) << pub.file;
  }
}

}  // namespace
}  // namespace meridian::sim
