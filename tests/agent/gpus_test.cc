// GPU assignment on a node (GpuAllocator) and NVML discovery. Discovery is
// checked against nvidia-smi where a GPU and its driver are present, and
// skipped with a message where they are not (CI has none).
#include "agent/gpus.h"

#include <dlfcn.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(GpuAllocatorTest, WholeGpuRunsGetDisjointDevicesLowestFirst) {
  GpuAllocator g({"0", "1", "2", "3"});
  EXPECT_THAT(*g.Allocate("a", 2, 1000), ElementsAre("0", "1"));
  EXPECT_THAT(*g.Allocate("b", 1, 1000), ElementsAre("2"));
  absl::StatusOr<std::vector<std::string>> c = g.Allocate("c", 2, 1000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(), HasSubstr("needs 2 GPUs free and this node has 1"));
  EXPECT_THAT(c.status().message(), HasSubstr("0: 1000 milli (a)"));
  EXPECT_THAT(c.status().message(), HasSubstr("3: free"));
  g.Release("a");
  EXPECT_THAT(*g.Allocate("c", 2, 1000), ElementsAre("0", "1"));
  EXPECT_THAT(g.Holders(), ElementsAre("b", "c"));
}

TEST(GpuAllocatorTest, SharesFillOneDeviceBeforeStartingAnother) {
  GpuAllocator g({"GPU-a", "GPU-b"});
  EXPECT_THAT(*g.Allocate("s1", 1, 250), ElementsAre("GPU-a"));
  EXPECT_THAT(*g.Allocate("s2", 1, 500), ElementsAre("GPU-a"));  // best fit: not GPU-b
  EXPECT_THAT(*g.Allocate("w", 1, 1000), ElementsAre("GPU-b"));  // the whole one stayed free
  EXPECT_THAT(*g.Allocate("s3", 1, 250), ElementsAre("GPU-a"));
  EXPECT_EQ(g.UsedMilli(0), 1000);
  absl::StatusOr<std::vector<std::string>> s4 = g.Allocate("s4", 1, 100);
  ASSERT_FALSE(s4.ok());
  EXPECT_THAT(s4.status().message(), HasSubstr("with 100 milli free"));
  g.Release("s2");
  EXPECT_THAT(*g.Allocate("s4", 1, 400), ElementsAre("GPU-a"));
  EXPECT_EQ(g.UsedMilli(0), 900);
}

TEST(GpuAllocatorTest, ReleaseOfAnUnknownRunAndDoubleAllocationAreHandled) {
  GpuAllocator g({"0"});
  g.Release("nobody");
  ASSERT_TRUE(g.Allocate("a", 1, 1000).ok());
  EXPECT_EQ(g.Allocate("a", 1, 1000).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(g.Allocate("b", 0, 1000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.Allocate("b", 1, 1001).status().code(), absl::StatusCode::kInvalidArgument);
  GpuAllocator none({});
  absl::StatusOr<std::vector<std::string>> n = none.Allocate("a", 1, 1000);
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(n.status().message(), HasSubstr("(no GPUs)"));
}

TEST(GpuAllocatorTest, RestoreTakesBackWhatARunHeldAndRefusesWhatCannotBe) {
  GpuAllocator g({"0", "1"});
  ASSERT_TRUE(g.Restore("old", {"1"}, 1000).ok());
  EXPECT_THAT(*g.Allocate("new", 1, 1000), ElementsAre("0"));  // not the restored one
  absl::Status unknown = g.Restore("x", {"7"}, 1000);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("GPU 7, which this node does not have"));
  absl::Status full = g.Restore("y", {"0"}, 500);
  EXPECT_THAT(full.message(), HasSubstr("which has 0 left"));
  EXPECT_THAT(g.Holders(), ElementsAre("new", "old"));
}

TEST(GpuRecordTest, RoundTripsAndRejectsGarbage) {
  int milli = 0;
  std::vector<std::string> d;
  ASSERT_TRUE(ParseGpuRecord(FormatGpuRecord(250, {"GPU-x", "GPU-y"}), &milli, &d));
  EXPECT_EQ(milli, 250);
  EXPECT_THAT(d, ElementsAre("GPU-x", "GPU-y"));
  EXPECT_FALSE(ParseGpuRecord("", &milli, &d));
  EXPECT_FALSE(ParseGpuRecord("1000", &milli, &d));
  EXPECT_FALSE(ParseGpuRecord("0 GPU-x", &milli, &d));
  EXPECT_FALSE(ParseGpuRecord("abc GPU-x", &milli, &d));
}

TEST(GpuTypeTest, NamesBecomeTypes) {
  EXPECT_EQ(GpuTypeFromName("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(GpuTypeFromName("Tesla V100-SXM2-16GB"), "v100-sxm2-16gb");
  EXPECT_EQ(GpuTypeFromName("NVIDIA"), "gpu");
}

// What nvidia-smi lists, one UUID per GPU ("GPU 0: NAME (UUID: GPU-…)").
std::vector<std::string> NvidiaSmiUuids() {
  std::vector<std::string> out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen("nvidia-smi -L 2>/dev/null", "r"), ::pclose);
  if (!p) return out;
  char line[512];
  while (std::fgets(line, sizeof line, p.get())) {
    std::string s(line);
    size_t at = s.find("(UUID: ");
    if (at == std::string::npos) continue;
    size_t end = s.find(')', at);
    out.push_back(s.substr(at + 7, end - at - 7));
  }
  return out;
}

TEST(GpuDiscoveryTest, NvmlFindsWhatNvidiaSmiLists) {
  void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    EXPECT_EQ(DiscoverGpus().count, 0);
    EXPECT_THAT(DiscoverGpus().note, HasSubstr("NVML not present"));
    GTEST_SKIP() << "no NVIDIA driver here (libnvidia-ml.so.1 not found): discovery of real GPUs "
                    "not checked";
  }
  ::dlclose(lib);
  GpuInventory inv = DiscoverGpus();
  std::vector<std::string> smi = NvidiaSmiUuids();
  std::printf("discovered: %s\n", inv.note.c_str());
  EXPECT_EQ(inv.count, static_cast<int>(smi.size())) << inv.note;
  EXPECT_EQ(inv.devices, smi);
  if (inv.count > 0) {
    EXPECT_FALSE(inv.type.empty());
    EXPECT_NE(inv.type, "gpu") << inv.note;
  }
}

}  // namespace
}  // namespace meridian::agent
