// Pollux workload reader: durations estimated from per-application profiles.
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/trace.h"

namespace meridian::sim {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A workload dir laid out like ../shared/data: workloads/ beside profiles.
// One directory per test: ctest runs tests as parallel processes.
fs::path MakeFixture() {
  fs::path root = fs::path(testing::TempDir()) /
                  (std::string("pollux-fixture-") +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                   std::to_string(::getpid()));
  fs::remove_all(root);
  Write(root / "pollux-goodput-profiles/toy/validation-64.csv",
        "progress,iteration,metric,grad_sqr,grad_var\n10,9,0.1,1,1\n100,99,0.5,1,1\n");
  Write(root / "pollux-goodput-profiles/toy/validation-256.csv",
        "progress,iteration,metric,grad_sqr,grad_var\n40,39,0.5,1,1\n");
  Write(root / "pollux-goodput-profiles/toy/scalability.csv",
        "num_nodes,num_replicas,local_bsz,step_time,sync_time\n"
        "1,1,64,0.5,0.0\n1,2,32,0.3,0.1\n1,2,128,0.9,0.1\n1,4,64,0.6,0.2\n");
  Write(root / "philly-pollux/workloads/w.csv",
        "name,time,application,num_replicas,batch_size\n"
        "b,30,toy,2,256\n"
        "a,10,toy,1,64\n");
  return root;
}

TEST(PolluxTrace, EstimatesDurationsFromProfiles) {
  fs::path root = MakeFixture();
  auto t = ReadTrace("pollux:" + (root / "philly-pollux/workloads/w.csv").string(), TraceOptions{});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->jobs.size(), 2u);
  // Sorted by time: a (t=10) first.
  EXPECT_EQ(t->jobs[0].name, "a");
  EXPECT_DOUBLE_EQ(t->jobs[0].duration_s, 99 * 0.5);  // 99 iterations x step at (1, 64)
  EXPECT_EQ(t->jobs[0].replicas, 1);
  EXPECT_EQ(t->jobs[1].name, "b");
  EXPECT_DOUBLE_EQ(t->jobs[1].duration_s, 39 * 0.9);  // batch 256 on 2 replicas: local 128
  EXPECT_EQ(t->jobs[1].replicas, 2);
  EXPECT_EQ(t->jobs[1].shape.gpus, 1);
  EXPECT_EQ(t->jobs[1].model, "toy");
}

TEST(PolluxTrace, ErrorsNameTheProblem) {
  fs::path root = MakeFixture();
  Write(root / "philly-pollux/workloads/bad.csv",
        "name,time,application,num_replicas,batch_size\nx,5,nosuchapp,1,64\n");
  auto t = ReadTrace("pollux:" + (root / "philly-pollux/workloads/bad.csv").string(), TraceOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("bad.csv:2: no profile"));
  Write(root / "philly-pollux/workloads/neg.csv",
        "name,time,application,num_replicas,batch_size\nx,-5,toy,1,64\ny,6,toy,1,64\n");
  t = ReadTrace("pollux:" + (root / "philly-pollux/workloads/neg.csv").string(), TraceOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("neg.csv:2: time '-5'"));
  TraceOptions lenient;
  lenient.lenient = true;
  t = ReadTrace("pollux:" + (root / "philly-pollux/workloads/neg.csv").string(), lenient);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->jobs.size(), 1u);
  EXPECT_EQ(t->skipped, 1);
  Write(root / "philly-pollux/workloads/cols.csv", "name,time,application\nx,1,toy\n");
  t = ReadTrace("pollux:" + (root / "philly-pollux/workloads/cols.csv").string(), TraceOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("missing column 'num_replicas'"));
}

TEST(PolluxTrace, RealWorkloadSix) {
  fs::path w = fs::path(MERIDIAN_SOURCE_DIR) / "../shared/data/philly-pollux/workloads/workload-6.csv";
  if (!fs::exists(w)) GTEST_SKIP() << "real data absent: " << w.string();
  auto t = ReadTrace("pollux:" + w.string(), TraceOptions{});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->jobs.size(), 160u);
  for (const TraceJob& j : t->jobs) {
    EXPECT_GT(j.duration_s, 0) << j.name;
    EXPECT_GE(j.replicas, 1) << j.name;
  }
}

}  // namespace
}  // namespace meridian::sim
