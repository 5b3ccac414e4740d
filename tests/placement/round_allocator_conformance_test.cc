// Conformance suite for RoundAllocator (placement/round_allocator.h): every
// built-in allocator, on seeded random rounds, keeps the contract — one entry
// per job, positive GPU counts on known healthy nodes, no node over its GPUs,
// a job gets 0 or between its min and max GPUs of types it allows — and is
// deterministic for a seed.
#include <cmath>
#include <map>

#include "core/clock.h"
#include "gtest/gtest.h"
#include "placement/round_allocator.h"

namespace meridian {
namespace {

struct Round {
  std::vector<RoundNode> nodes;
  std::vector<RoundJob> jobs;
  std::vector<std::string> type_names = {"k80", "p100", "v100"};
};

Round RandomRound(uint64_t seed) {
  Rng rng(seed);
  Round r;
  const int32_t nodes = int32_t(rng.Uniform(1, 12));
  for (int32_t i = 0; i < nodes; ++i)
    r.nodes.push_back({NodeId(i), RegionId(int32_t(rng.Uniform(0, 1))),
                       GpuTypeId(int32_t(rng.Uniform(0, 2))), int32_t(rng.Uniform(1, 8)),
                       rng.UniformReal() > 0.1});
  const int32_t jobs = int32_t(rng.Uniform(0, 20));
  for (int32_t j = 0; j < jobs; ++j) {
    RoundJob x;
    x.id = JobId(j);
    x.submit_s = double(j);
    x.min_gpus = int32_t(rng.Uniform(1, 4));
    x.max_gpus = rng.UniformReal() < 0.5 ? x.min_gpus : x.min_gpus + int32_t(rng.Uniform(0, 12));
    if (rng.UniformReal() < 0.5)
      for (int32_t t = 0; t < 3; ++t)
        if (rng.UniformReal() < 0.7) x.speeds.push_back({GpuTypeId(t), 1 + rng.UniformReal() * 3});
    x.attained_gpu_s = rng.UniformReal() * 1e5;
    x.age_s = 1 + rng.UniformReal() * 1e4;
    x.restarts = int32_t(rng.Uniform(0, 5));
    const double e = 0.3 + rng.UniformReal() * 0.7;
    x.goodput = [e](int32_t g, int32_t nodes, int32_t regions) {
      return std::pow(double(g), e) / (regions > 1 ? 3.0 : 1.0) / (1 + 0.05 * nodes);
    };
    r.jobs.push_back(std::move(x));
  }
  return r;
}

bool Allows(const RoundJob& j, GpuTypeId t) {
  if (j.speeds.empty()) return true;
  for (const auto& [type, s] : j.speeds)
    if (type == t) return s > 0;
  return false;
}

class RoundAllocatorConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundAllocatorConformance, KeepsTheContractOverSeveralRounds) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    auto alloc = MakeRoundAllocator(GetParam(), {}, seed);
    auto again = MakeRoundAllocator(GetParam(), {}, seed);
    ASSERT_TRUE(alloc.ok() && again.ok()) << alloc.status();
    Round r = RandomRound(seed);
    for (int round = 0; round < 4; ++round) {
      RoundInput in;
      in.now_s = 600.0 * round;
      in.nodes = &r.nodes;
      in.jobs = &r.jobs;
      in.restart_penalty_s = 30;
      in.gpu_type_names = &r.type_names;
      const std::vector<NodeGpus> out = (*alloc)->Allocate(in);
      EXPECT_EQ(out, (*again)->Allocate(in)) << "not deterministic, seed " << seed;
      ASSERT_EQ(out.size(), r.jobs.size()) << "seed " << seed;
      std::map<int32_t, int32_t> used;
      for (size_t j = 0; j < out.size(); ++j) {
        int32_t total = 0;
        for (const auto& [node, g] : out[j]) {
          ASSERT_GE(node.value(), 0);
          ASSERT_LT(size_t(node.value()), r.nodes.size());
          const RoundNode& n = r.nodes[size_t(node.value())];
          EXPECT_GT(g, 0);
          EXPECT_TRUE(n.healthy) << GetParam() << " seed " << seed;
          EXPECT_TRUE(Allows(r.jobs[j], n.gpu_type)) << GetParam() << " seed " << seed;
          used[node.value()] += g;
          total += g;
        }
        if (total > 0) {
          EXPECT_GE(total, r.jobs[j].min_gpus) << GetParam() << " seed " << seed;
          EXPECT_LE(total, r.jobs[j].max_gpus) << GetParam() << " seed " << seed;
        }
        r.jobs[j].current = out[j];
      }
      for (const auto& [node, g] : used)
        EXPECT_LE(g, r.nodes[size_t(node)].gpus) << GetParam() << " seed " << seed;
      // Next round: one job leaves, one arrives.
      if (!r.jobs.empty()) r.jobs.erase(r.jobs.begin());
      RoundJob fresh;
      fresh.id = JobId(1000 + round);
      fresh.submit_s = in.now_s;
      fresh.age_s = 1;
      r.jobs.push_back(fresh);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Builtin, RoundAllocatorConformance,
                         ::testing::ValuesIn(RoundAllocatorNames()));

}  // namespace
}  // namespace meridian
