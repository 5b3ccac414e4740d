// Test fakes for the placement interfaces: a Scorer with scripted scores, a
// Filter that rejects a scripted set of nodes, a Selector that records what it
// was offered, and a scripted WaitEstimator.
//
// Policies are made by a registry factory, so each fake keeps its script and
// its records in a shared State that the test holds on to; RegisterFakes()
// adds them to a registry as "fake_filter", "fake_scorer" and
// "recording_selector". Not thread-safe: single-threaded tests only.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "placement/planner.h"
#include "placement/policy.h"
#include "placement/registry.h"

namespace meridian::test {

struct FakePolicyState {
  std::set<NodeId> rejected;             // fake_filter says no to these
  std::map<NodeId, double> scores;       // fake_scorer; absent nodes score 0
  std::vector<std::vector<ScoredCandidate>> offered;  // recording_selector, one per call
  int filter_calls = 0;
};

// Registers the fakes (errors if their names are taken). The selector picks
// the highest score, lowest node id on ties, like max_score.
absl::Status RegisterFakes(PolicyRegistry& registry, std::shared_ptr<FakePolicyState> state);

class FakeWaitEstimator final : public WaitEstimator {
 public:
  // Wait for (region, GPU type); unset pairs wait `default_s`.
  void Set(RegionId region, GpuTypeId type, double seconds) { waits_[{region, type}] = seconds; }
  void SetDefault(double seconds) { default_s_ = seconds; }
  double EstimateWaitSeconds(const ClusterState&, const Job&, RegionId region,
                             GpuTypeId type) const override {
    auto it = waits_.find({region, type});
    return it == waits_.end() ? default_s_ : it->second;
  }

 private:
  std::map<std::pair<RegionId, GpuTypeId>, double> waits_;
  double default_s_ = 0;
};

}  // namespace meridian::test
