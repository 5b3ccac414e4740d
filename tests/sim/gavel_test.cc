// Gavel throughput tables: parsing, seeded job-type assignment with speeds
// relative to a K80, clear errors, and a heterogeneity-aware policy beating
// the unaware FIFO baseline when true speeds differ by GPU type.
#include "sim/gavel.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/simulator.h"
#include "testing/fleets.h"

namespace meridian::sim {
namespace {

using ::testing::HasSubstr;

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// Two job types; "B" does not fit a K80 at scale 2 (Gavel stores 0 there) and
// has no 4-GPU measurement; co-location pairs and *_unconsolidated are ignored.
constexpr char kFixture[] = R"json({
  "k80": {
    "('A (batch size 8)', 1)": {"null": 1.0, "('B', 1)": [0.5, 0.4]},
    "('A (batch size 8)', 2)": {"null": 2.0},
    "('B', 1)": {"null": 4.0},
    "('B', 2)": {"null": 0.0}
  },
  "p100": {
    "('A (batch size 8)', 1)": {"null": 3.0},
    "('A (batch size 8)', 2)": {"null": 5.0},
    "('B', 1)": {"null": 6.0},
    "('B', 2)": {"null": 9.0}
  },
  "v100": {
    "('A (batch size 8)', 1)": {"null": 6.0},
    "('A (batch size 8)', 2)": {"null": 10.0},
    "('B', 1)": {"null": 10.0},
    "('B', 2)": {"null": 16.0}
  },
  "v100_unconsolidated": {"('A (batch size 8)', 1)": {"null": 99.0}}
})json";

GavelTable FixtureTable() {
  auto t = ReadGavelThroughputs(WriteTemp("gavel_fixture.json", kFixture));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : GavelTable{};
}

TraceJob Job(std::string name, double submit, int32_t replicas, int32_t gpus,
             double duration = 1000) {
  TraceJob j;
  j.name = std::move(name);
  j.submit_s = submit;
  j.duration_s = duration;
  j.replicas = replicas;
  j.shape = TaskShape{1000, 4096, gpus, 1000};
  return j;
}

TEST(Gavel, ReadsIsolatedThroughputPerWorkerType) {
  GavelTable t = FixtureTable();
  ASSERT_EQ(t.throughput.size(), 2u);
  const auto& a = t.throughput.at("A (batch size 8)");
  EXPECT_DOUBLE_EQ(a.at(1).at("k80"), 1.0);
  EXPECT_DOUBLE_EQ(a.at(1).at("p100"), 3.0);
  EXPECT_DOUBLE_EQ(a.at(1).at("v100"), 6.0);  // not the unconsolidated 99
  EXPECT_DOUBLE_EQ(a.at(2).at("v100"), 10.0);
  // A zero throughput (does not fit) is left out, not stored.
  const auto& b2 = t.throughput.at("B").at(2);
  EXPECT_FALSE(b2.contains("k80"));
  EXPECT_EQ(b2.size(), 2u);
}

TEST(Gavel, ScaleFactorRoundsTotalGpusUpToPowersOfTwoUpToEight) {
  EXPECT_EQ(GavelScaleFactor(Job("cpu", 0, 1, 0)), 0);
  EXPECT_EQ(GavelScaleFactor(Job("a", 0, 1, 1)), 1);
  EXPECT_EQ(GavelScaleFactor(Job("b", 0, 1, 2)), 2);
  EXPECT_EQ(GavelScaleFactor(Job("c", 0, 1, 3)), 4);
  EXPECT_EQ(GavelScaleFactor(Job("d", 0, 2, 2)), 4);
  EXPECT_EQ(GavelScaleFactor(Job("e", 0, 1, 5)), 8);
  EXPECT_EQ(GavelScaleFactor(Job("f", 0, 4, 8)), 8);
}

TEST(Gavel, AssignsTypesDeterministicallyWithSpeedsRelativeToK80) {
  GavelTable table = FixtureTable();
  Trace trace;
  for (int i = 0; i < 200; ++i) trace.jobs.push_back(Job("j" + std::to_string(i), i, 1, 1));
  trace.jobs.push_back(Job("two", 300, 1, 2));
  trace.jobs.push_back(Job("cpu-only", 301, 1, 0));
  Trace again = trace;
  ASSERT_TRUE(AssignGavelJobTypes(trace, table, 7).ok());
  ASSERT_TRUE(AssignGavelJobTypes(again, table, 7).ok());

  std::set<std::string> models;
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    EXPECT_EQ(trace.jobs[i].model, again.jobs[i].model);
    EXPECT_EQ(trace.jobs[i].speeds, again.jobs[i].speeds);
    models.insert(trace.jobs[i].model);
  }
  // Uniform over both types at scale 1: 200 draws see both.
  EXPECT_TRUE(models.contains("A (batch size 8)"));
  EXPECT_TRUE(models.contains("B"));
  for (int i = 0; i < 200; ++i) {
    const TraceJob& j = trace.jobs[i];
    const std::map<std::string, double> want =
        j.model == "B" ? std::map<std::string, double>{{"k80", 1}, {"p100", 1.5}, {"v100", 2.5}}
                       : std::map<std::string, double>{{"k80", 1}, {"p100", 3}, {"v100", 6}};
    EXPECT_EQ(j.speeds, want) << j.model;
    EXPECT_TRUE(j.gpu_types.empty());
  }
  // Scale 2: "B" has no K80 measurement there, so only "A" is drawn.
  EXPECT_EQ(trace.jobs[200].model, "A (batch size 8)");
  EXPECT_DOUBLE_EQ(trace.jobs[200].speeds.at("v100"), 5.0);
  // A job without GPUs is untouched.
  EXPECT_EQ(trace.jobs[201].model, "");
  EXPECT_TRUE(trace.jobs[201].speeds.empty());

  // Another seed draws another sequence.
  Trace other = again;
  ASSERT_TRUE(AssignGavelJobTypes(other, table, 8).ok());
  int differ = 0;
  for (size_t i = 0; i < 200; ++i) differ += other.jobs[i].model != again.jobs[i].model;
  EXPECT_GT(differ, 0);
}

TEST(Gavel, JobTypeNotMeasuredOnAWorkerTypeIsRestrictedToTheMeasuredOnes) {
  GavelTable table;
  table.throughput["C"][1] = {{"k80", 2.0}, {"v100", 6.0}};  // does not fit a p100
  Trace trace;
  trace.jobs = {Job("any", 0, 1, 1), Job("pinned", 1, 1, 1)};
  trace.jobs[1].gpu_types = {"v100"};
  ASSERT_TRUE(AssignGavelJobTypes(trace, table, 1).ok());
  EXPECT_EQ(trace.jobs[0].speeds, (std::map<std::string, double>{{"k80", 1}, {"v100", 3}}));
  EXPECT_EQ(trace.jobs[0].gpu_types, (std::vector<std::string>{"k80", "v100"}));
  EXPECT_EQ(trace.jobs[1].gpu_types, (std::vector<std::string>{"v100"}));  // the job's own choice
}

TEST(Gavel, ErrorsAreClear) {
  auto missing = ReadGavelThroughputs(testing::TempDir() + "/no-such-gavel.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-gavel.json"));

  auto bad = ReadGavelThroughputs(WriteTemp("gavel_bad.json", "{\"k80\": {"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not valid JSON"));

  auto key =
      ReadGavelThroughputs(WriteTemp("gavel_key.json", R"({"k80": {"ResNet": {"null": 1}}})"));
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(std::string(key.status().message()), HasSubstr("malformed job key 'ResNet'"));

  auto nan = ReadGavelThroughputs(
      WriteTemp("gavel_type.json", R"json({"k80": {"('A', 1)": {"null": "fast"}}})json"));
  ASSERT_FALSE(nan.ok());
  EXPECT_THAT(std::string(nan.status().message()), HasSubstr("is not a number"));

  // Only zero throughputs, or only other worker types: nothing usable.
  for (const char* text : {R"json({"k80": {"('A', 1)": {"null": 0}}})json",
                           R"json({"a100": {"('A', 1)": {"null": 3}}})json", "[1, 2]"}) {
    auto none = ReadGavelThroughputs(WriteTemp("gavel_none.json", text));
    EXPECT_FALSE(none.ok()) << text;
    EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }

  // The fixture has no 4-GPU measurement: the trace is refused and left as is.
  Trace trace;
  trace.jobs = {Job("small", 0, 1, 1), Job("four", 1, 1, 4)};
  absl::Status s = AssignGavelJobTypes(trace, FixtureTable(), 1);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("job 'four' needs scale factor 4"));
  EXPECT_TRUE(trace.jobs[0].speeds.empty());
}

// One 1-GPU node of each of two types, listed "slow-first" so an unaware tie
// break is free to pick either.
Fleet TwoTypeFleet() {
  test::TestFleet f;
  RegionId r = f.Region("r");
  for (const char* type : {"k80", "v100"})
    f.Group({.name = type, .region = r, .gpu_type = type, .gpus = 1, .price_hour = 10});
  return std::move(f).Build();
}

TEST(Gavel, HeterogeneityAwarePolicyBeatsUnawareFifoOnAverageJct) {
  Fleet fleet = TwoTypeFleet();
  // Jobs arrive one at a time (no queueing); half run 8x faster on k80, half
  // 8x faster on v100. The unaware policy picks a type without looking at
  // speeds (ties go in a per-job pseudo-random order), so some jobs run at
  // 1/8 of their best speed; the aware one runs every job at its best.
  Trace trace;
  for (int i = 0; i < 10; ++i) {
    TraceJob j = Job("j" + std::to_string(i), 10000.0 * i, 1, 1, 800);
    j.speeds = i % 2 == 0 ? std::map<std::string, double>{{"k80", 8}, {"v100", 1}}
                          : std::map<std::string, double>{{"k80", 1}, {"v100", 8}};
    trace.jobs.push_back(j);
  }
  SimPolicyRegistry registry;
  RegisterBuiltinSimPolicies(registry);
  auto fifo = registry.Make("fifo");
  auto gavel = registry.Make("gavel");
  ASSERT_TRUE(fifo.ok() && gavel.ok());
  EXPECT_FALSE(fifo->heterogeneity_aware);
  EXPECT_TRUE(gavel->heterogeneity_aware);
  EXPECT_EQ(gavel->objective, Objective::kTime);
  EXPECT_EQ(gavel->scheduler.queue_policy, fifo->scheduler.queue_policy);

  auto unaware = RunSimulation(fleet, trace, *fifo, SimOptions{});
  auto aware = RunSimulation(fleet, trace, *gavel, SimOptions{});
  ASSERT_TRUE(unaware.ok()) << unaware.status();
  ASSERT_TRUE(aware.ok()) << aware.status();
  EXPECT_EQ(unaware->jobs_completed, 10);
  EXPECT_EQ(aware->jobs_completed, 10);
  EXPECT_DOUBLE_EQ(aware->avg_jct_s, 100);  // 800 s of work at speed 8
  EXPECT_GT(unaware->avg_jct_s, 100 + 1e-9);
  EXPECT_LT(aware->avg_jct_s, unaware->avg_jct_s);
}

TEST(Gavel, RealThroughputTable) {
  const std::string path = std::string(MERIDIAN_SOURCE_DIR) +
                           "/../shared/data/gavel-throughputs/simulation_throughputs.json.gz";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no data at " << path;
  auto table = ReadGavelThroughputs(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->throughput.size(), 26u);
  // PROVENANCE.md: ResNet-50 (batch size 64), 1 GPU: k80 0.619, p100 2.619, v100 4.395.
  const auto& r50 = table->throughput.at("ResNet-50 (batch size 64)").at(1);
  EXPECT_NEAR(r50.at("k80"), 0.619, 1e-3);
  EXPECT_NEAR(r50.at("p100"), 2.619, 1e-3);
  EXPECT_NEAR(r50.at("v100"), 4.395, 1e-3);

  Trace trace;
  for (int gpus : {1, 2, 3, 4, 8, 16, 64}) trace.jobs.push_back(Job("g", 0, 1, gpus));
  ASSERT_TRUE(AssignGavelJobTypes(trace, *table, 1).ok());
  for (const TraceJob& j : trace.jobs) {
    EXPECT_FALSE(j.model.empty());
    ASSERT_EQ(j.speeds.size(), 3u) << j.model;
    EXPECT_DOUBLE_EQ(j.speeds.at("k80"), 1.0);
    EXPECT_GT(j.speeds.at("p100"), 0);
    EXPECT_GT(j.speeds.at("v100"), 0);
  }
}

}  // namespace
}  // namespace meridian::sim

namespace meridian::sim {
namespace {

// gavel: traces read with the fixture table: speeds relative to the first
// measured of k80, p100, v100; errors name FILE:LINE.
TEST(GavelTrace, ReadsJobsWithSpeedsAndNamesBadLines) {
  const std::string table = WriteTemp("gavel_trace_table.json", kFixture);
  TraceOptions o;
  o.gavel_throughputs = table;
  const std::string good =
      WriteTemp("good.trace",
                "A (batch size 8)\tpython3 a.py\tdir\t--steps\t1\t600\t1\t1\t-1.000000\t0\n"
                "B\tpython3 b.py\tdir\t--steps\t0\t100\t2\t1\t-1.000000\t50.5\n");
  auto t = ReadTrace("gavel:" + good, o);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->jobs.size(), 2u);
  EXPECT_EQ(t->jobs[0].model, "A (batch size 8)");
  EXPECT_DOUBLE_EQ(t->jobs[0].duration_s, 600.0);  // 600 steps at 1 step/s on a K80
  EXPECT_DOUBLE_EQ(t->jobs[0].speeds.at("v100"), 6.0);
  EXPECT_EQ(t->jobs[0].replicas, 1);
  // B at scale 2 is not measured on a K80: P100 is the reference.
  EXPECT_EQ(t->jobs[1].replicas, 2);
  EXPECT_DOUBLE_EQ(t->jobs[1].submit_s, 50.5);
  EXPECT_DOUBLE_EQ(t->jobs[1].duration_s, 100.0 / 9.0);
  EXPECT_FALSE(t->jobs[1].speeds.contains("k80"));
  EXPECT_THAT(t->jobs[1].gpu_types, ::testing::ElementsAre("p100", "v100"));
  EXPECT_DOUBLE_EQ(t->modelling.round_s, 360);

  const std::string bad = WriteTemp(
      "bad.trace",
      "A (batch size 8)\tcmd\tdir\t--steps\t1\t600\t1\t1\t-1\t0\nA\tonly three\tfields\n");
  auto b = ReadTrace("gavel:" + bad, o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              HasSubstr("bad.trace:2: expected 10 tab-separated"));
  const std::string unknown =
      WriteTemp("unknown.trace", "Z\tcmd\tdir\t--steps\t1\t600\t1\t1\t-1\t0\n");
  b = ReadTrace("gavel:" + unknown, o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("unknown.trace:1: job type 'Z'"));
  const std::string steps =
      WriteTemp("steps.trace", "A (batch size 8)\tc\td\t-s\t1\t-5\t1\t1\t-1\t0\n");
  b = ReadTrace("gavel:" + steps, o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("steps.trace:1: total_steps '-5'"));
  o.gavel_throughputs = testing::TempDir() + "/no-table.json";
  b = ReadTrace("gavel:" + good, o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("--gavel PATH"));
}

}  // namespace
}  // namespace meridian::sim
