// The arrival study (FGD's method): inflation, seeded shuffles, checkpoints,
// averaging over seeds; and, on the openb data when it is present, FGD ahead
// of best_fit and dot_product on the default pod list and on variants of it
// that are harder in one way each (CPU-heavy, more sharing, more multi-GPU
// pods, GPU-type constraints).
#include "sim/arrival_study.h"

#include <filesystem>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/importers.h"
#include "testing/fleets.h"

namespace meridian::sim {
namespace {

SimPolicy Policy(const std::string& name) {
  auto p = MakeBuiltinSimPolicy(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TraceJob Pod(std::string name, int64_t cpu_cores, int32_t gpus, int32_t milli = 1000) {
  TraceJob j;
  j.name = std::move(name);
  j.duration_s = 100;
  j.shape = TaskShape{cpu_cores * 1000, 1024, gpus, gpus == 0 ? 1000 : milli};
  return j;
}

Trace SmallTrace() {
  Trace t;
  for (int i = 0; i < 10; ++i) {
    t.jobs.push_back(Pod("g" + std::to_string(i), 4, 1, i % 2 ? 500 : 1000));
    t.jobs.back().submit_s = i;
  }
  t.jobs.push_back(Pod("c", 8, 0));
  t.jobs.back().submit_s = 10;
  return t;
}

TEST(ArrivalStudy, InflationReachesTheTargetAndShufflesAreSeeded) {
  Trace t = SmallTrace();  // 7.5 GPUs asked for
  ASSERT_TRUE(InflateTrace(20000, nullptr, &t).ok());
  double demand = 0;
  for (const TraceJob& j : t.jobs) demand += double(j.shape.total_gpu_milli());
  EXPECT_GE(demand, 20000);
  EXPECT_LT(demand, 21000);
  EXPECT_EQ(t.jobs[11].name, "g0-r1");  // cycling, in order

  Trace a = t, b = t, c = t;
  ShuffleArrivals(5, &a);
  ShuffleArrivals(5, &b);
  ShuffleArrivals(6, &c);
  std::vector<std::string> na, nb, nc;
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].submit_s, double(i));
    na.push_back(a.jobs[i].name);
    nb.push_back(b.jobs[i].name);
    nc.push_back(c.jobs[i].name);
  }
  EXPECT_EQ(na, nb);
  EXPECT_NE(na, nc);
  EXPECT_EQ(std::set<std::string>(na.begin(), na.end()),
            std::set<std::string>(nc.begin(), nc.end()));

  Trace cpu_only;
  cpu_only.jobs.push_back(Pod("c", 8, 0));
  EXPECT_EQ(InflateTrace(1000, nullptr, &cpu_only).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArrivalStudy, ReportsEveryCheckpointPerSeedWithMeanAndSpread) {
  test::TestFleet tf;
  RegionId r = tf.Region("r");
  tf.Group({.name = "n", .region = r, .gpus = 4, .count = 2, .cpu_cores = 16});
  Fleet fleet = std::move(tf).Build();
  ArrivalStudyOptions o;
  o.seeds = 3;
  o.first_seed = 11;
  auto res = RunArrivalStudy(fleet, SmallTrace(), {Policy("fgd"), Policy("random")}, o);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->size(), 2u);
  for (const ArrivalStudyResult& p : *res) {
    ASSERT_EQ(p.unallocated.size(), 3u);
    ASSERT_EQ(p.unallocated_mean.size(), 5u);
    for (size_t c = 0; c < 5; ++c) {
      double sum = 0;
      for (const auto& seed : p.unallocated) sum += seed[c];
      EXPECT_NEAR(p.unallocated_mean[c], sum / 3, 1e-12);
      EXPECT_GE(p.unallocated_mean[c], 0);
      EXPECT_LE(p.unallocated_mean[c], 1);
    }
    // Allocation never shrinks without departures.
    for (size_t c = 1; c < 5; ++c) EXPECT_LE(p.unallocated_mean[c], p.unallocated_mean[c - 1]);
  }
  // Same options, same numbers.
  auto again = RunArrivalStudy(fleet, SmallTrace(), {Policy("fgd"), Policy("random")}, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[1].unallocated, (*res)[1].unallocated);

  o.seeds = 0;
  EXPECT_EQ(RunArrivalStudy(fleet, SmallTrace(), {Policy("fgd")}, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.seeds = 1;
  o.checkpoints = {1.0, 0.9};
  EXPECT_EQ(RunArrivalStudy(fleet, SmallTrace(), {Policy("fgd")}, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- On the openb data (skipped without it) ----

std::string OpenbDir() {
  return std::string(MERIDIAN_SOURCE_DIR) + "/../shared/data/alibaba-gpu-v2023-openb";
}

class OpenbVariants : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(OpenbDir() + "/openb_pod_list_default.csv"))
      GTEST_SKIP() << "openb data not found at " << OpenbDir()
                   << " (alibaba-gpu-v2023-openb in ../shared/data)";
    auto fleet = spec::ImportOpenbFleet(OpenbDir() + "/openb_node_list_gpu_node.csv", {});
    ASSERT_TRUE(fleet.ok()) << fleet.status();
    fleet_ = *std::move(fleet);
    TraceOptions to;
    to.lenient = true;
    auto trace = ReadOpenbTrace(OpenbDir() + "/openb_pod_list_default.csv", to);
    ASSERT_TRUE(trace.ok()) << trace.status();
    trace_ = *std::move(trace);
  }

  // Unallocated share at 100% arrived, seed 42, per policy.
  std::map<std::string, double> At100(const Trace& t) {
    ArrivalStudyOptions o;
    o.checkpoints = {1.0};
    auto res =
        RunArrivalStudy(fleet_, t, {Policy("fgd"), Policy("best_fit"), Policy("dot_product")}, o);
    EXPECT_TRUE(res.ok()) << res.status();
    std::map<std::string, double> out;
    if (res.ok())
      for (const auto& r : *res) out[r.policy] = r.unallocated_mean[0];
    return out;
  }

  void ExpectFgdAhead(const Trace& t) {
    auto u = At100(t);
    for (const auto& [policy, share] : u) RecordProperty(policy, std::to_string(share));
    EXPECT_LT(u["fgd"], u["best_fit"]) << "fgd " << u["fgd"] << " best_fit " << u["best_fit"];
    EXPECT_LT(u["fgd"], u["dot_product"]) << "fgd " << u["fgd"] << " dot " << u["dot_product"];
  }

  Fleet fleet_;
  Trace trace_;
};

TEST_F(OpenbVariants, DefaultList) { ExpectFgdAhead(trace_); }

TEST_F(OpenbVariants, CpuHeavy) {
  // CPU-only pods ask for 3x the CPU: the default list's CPU-only pods ask for
  // 29% of the CPU its GPU pods ask for, these for 87%.
  Trace t = trace_;
  for (TraceJob& j : t.jobs)
    if (j.shape.gpus == 0) j.shape.cpu_milli *= 3;
  ExpectFgdAhead(t);
}

TEST_F(OpenbVariants, MoreGpuSharing) {
  // Half the whole 1-GPU pods share a GPU instead, with milli drawn from the
  // shared pods of the list.
  std::vector<int32_t> shares;
  for (const TraceJob& j : trace_.jobs)
    if (j.shape.fractional()) shares.push_back(j.shape.gpu_milli);
  ASSERT_FALSE(shares.empty());
  Trace t = trace_;
  Rng rng(26);
  for (TraceJob& j : t.jobs)
    if (j.shape.gpus == 1 && !j.shape.fractional() && rng.UniformReal() < 0.5)
      j.shape.gpu_milli = shares[size_t(rng.Uniform(0, int64_t(shares.size()) - 1))];
  ExpectFgdAhead(t);
}

TEST_F(OpenbVariants, MoreMultiGpuPods) {
  // A fifth of the whole 1-GPU pods ask for 2, 4 or 8 GPUs (CPU scaled alike).
  Trace t = trace_;
  Rng rng(27);
  for (TraceJob& j : t.jobs)
    if (j.shape.gpus == 1 && !j.shape.fractional() && rng.UniformReal() < 0.2) {
      const int32_t g = int32_t(2) << rng.Uniform(0, 2);
      j.shape.gpus = g;
      j.shape.cpu_milli *= g;
    }
  ExpectFgdAhead(t);
}

TEST_F(OpenbVariants, GpuTypeConstraints) {
  // A quarter of the GPU pods may only use one GPU type, drawn by the fleet's
  // share of GPUs of each type.
  std::vector<std::string> by_gpu;
  for (const Node& n : fleet_.nodes())
    for (int32_t g = 0; g < n.gpus; ++g) by_gpu.push_back(fleet_.gpu_type_name(n.gpu_type));
  Trace t = trace_;
  Rng rng(28);
  for (TraceJob& j : t.jobs)
    if (j.shape.gpus > 0 && rng.UniformReal() < 0.25)
      j.gpu_types = {by_gpu[size_t(rng.Uniform(0, int64_t(by_gpu.size()) - 1))]};
  ExpectFgdAhead(t);
}

}  // namespace
}  // namespace meridian::sim
