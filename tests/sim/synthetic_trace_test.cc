// Synthetic traces: determinism, the arrival/duration/size distributions,
// fractional jobs, tenants, and generation speed at scale.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "sim/trace.h"

namespace meridian::sim {
namespace {

bool SameJobs(const Trace& a, const Trace& b) {
  if (a.jobs.size() != b.jobs.size()) return false;
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    const TraceJob& x = a.jobs[i];
    const TraceJob& y = b.jobs[i];
    if (x.name != y.name || x.submit_s != y.submit_s || x.duration_s != y.duration_s ||
        x.replicas != y.replicas || x.shape.gpus != y.shape.gpus ||
        x.shape.gpu_milli != y.shape.gpu_milli || x.tenant != y.tenant) {
      return false;
    }
  }
  return true;
}

TEST(SyntheticTraceTest, DeterministicForASeed) {
  SyntheticTraceOptions options;
  options.jobs = 500;
  options.fractional_share = 0.3;
  options.seed = 7;
  const Trace a = SyntheticTrace(options, TraceOptions());
  const Trace b = SyntheticTrace(options, TraceOptions());
  EXPECT_TRUE(SameJobs(a, b));
  options.seed = 8;
  const Trace c = SyntheticTrace(options, TraceOptions());
  EXPECT_FALSE(SameJobs(a, c));
}

TEST(SyntheticTraceTest, ReadTraceUsesTheSeed) {
  TraceOptions options;
  options.seed = 3;
  absl::StatusOr<Trace> a = ReadTrace("synthetic:50", options);
  absl::StatusOr<Trace> b = ReadTrace("synthetic:50", options);
  options.seed = 4;
  absl::StatusOr<Trace> c = ReadTrace("synthetic:50", options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(SameJobs(*a, *b));
  EXPECT_FALSE(SameJobs(*a, *c));
}

TEST(SyntheticTraceTest, DistributionsMatchTheOptions) {
  SyntheticTraceOptions options;
  options.jobs = 50000;
  options.arrivals_per_hour = 600;
  options.median_duration_s = 1200;
  options.duration_sigma = 1.5;
  options.max_gpus = 64;
  const Trace trace = SyntheticTrace(options, TraceOptions());
  ASSERT_EQ(trace.jobs.size(), 50000u);
  EXPECT_EQ(trace.jobs.front().submit_s, 0);
  std::vector<double> durations;
  std::map<int64_t, int64_t> sizes;
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    const TraceJob& j = trace.jobs[i];
    if (i > 0) {
      ASSERT_LE(trace.jobs[i - 1].submit_s, j.submit_s);
    }
    ASSERT_GT(j.duration_s, 0);
    ASSERT_FALSE(j.shape.fractional());
    const int64_t gpus = int64_t{j.replicas} * j.shape.gpus;
    ASSERT_LE(j.shape.gpus, 8);
    ASSERT_EQ(gpus & (gpus - 1), 0) << "not a power of two: " << gpus;
    ASSERT_LE(gpus, 64);
    if (gpus > 8) {
      ASSERT_EQ(j.shape.gpus, 8);
    }
    ++sizes[gpus];
    durations.push_back(j.duration_s);
  }
  // Mean inter-arrival 6 s at 600 jobs/hour.
  const double mean_gap = trace.jobs.back().submit_s / (trace.jobs.size() - 1);
  EXPECT_NEAR(mean_gap, 6.0, 0.2);
  std::nth_element(durations.begin(), durations.begin() + durations.size() / 2, durations.end());
  EXPECT_NEAR(durations[durations.size() / 2], 1200, 60);
  // P(1 GPU) = 1 / sum_k 0.3^k (k = 0..6) ~ 0.700; P(2) ~ 0.210.
  EXPECT_NEAR(sizes[1] / 50000.0, 0.700, 0.01);
  EXPECT_NEAR(sizes[2] / 50000.0, 0.210, 0.01);
  EXPECT_GT(sizes[16] + sizes[32] + sizes[64], 0);
}

TEST(SyntheticTraceTest, FractionalJobsAndTenants) {
  SyntheticTraceOptions options;
  options.jobs = 4000;
  options.fractional_share = 0.5;
  options.tenants = 3;
  const Trace trace = SyntheticTrace(options, TraceOptions());
  int64_t fractional = 0;
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    const TraceJob& j = trace.jobs[i];
    EXPECT_EQ(j.tenant, "tenant-" + std::to_string(i % 3));
    if (j.shape.fractional()) {
      ++fractional;
      EXPECT_EQ(j.replicas, 1);
      EXPECT_TRUE(j.shape.gpu_milli == 250 || j.shape.gpu_milli == 500 || j.shape.gpu_milli == 750)
          << j.shape.gpu_milli;
    }
  }
  EXPECT_NEAR(fractional / 4000.0, 0.5, 0.03);
}

TEST(SyntheticTraceTest, LimitAndNoTenants) {
  SyntheticTraceOptions options;
  options.jobs = 100;
  options.tenants = 0;
  TraceOptions trace_options;
  trace_options.limit = 10;
  const Trace trace = SyntheticTrace(options, trace_options);
  ASSERT_EQ(trace.jobs.size(), 10u);
  EXPECT_EQ(trace.jobs[0].tenant, "");
}

TEST(SyntheticTraceTest, MillionJobsQuickly) {
  SyntheticTraceOptions options;
  options.jobs = 1'000'000;
  options.fractional_share = 0.1;
  const auto start = std::chrono::steady_clock::now();
  const Trace trace = SyntheticTrace(options, TraceOptions());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(trace.jobs.size(), 1'000'000u);
  RecordProperty("generate_seconds", std::to_string(seconds));
  std::printf("generated 1M synthetic jobs in %.3f s\n", seconds);
  EXPECT_EQ(trace.jobs.back().name, "syn-999999");
}

}  // namespace
}  // namespace meridian::sim
