#include "testing/fakes.h"

#include <string_view>

namespace meridian::test {

namespace {
class FakeFilter final : public Filter {
 public:
  explicit FakeFilter(std::shared_ptr<FakePolicyState> s) : s_(std::move(s)) {}
  std::string_view name() const override { return "fake_filter"; }
  bool Feasible(const PlacementContext&, NodeId node) const override {
    ++s_->filter_calls;
    return !s_->rejected.contains(node);
  }

 private:
  std::shared_ptr<FakePolicyState> s_;
};

class FakeScorer final : public Scorer {
 public:
  explicit FakeScorer(std::shared_ptr<FakePolicyState> s) : s_(std::move(s)) {}
  std::string_view name() const override { return "fake_scorer"; }
  double Score(const PlacementContext&, NodeId node) const override {
    auto it = s_->scores.find(node);
    return it == s_->scores.end() ? 0.0 : it->second;
  }

 private:
  std::shared_ptr<FakePolicyState> s_;
};

class RecordingSelector final : public Selector {
 public:
  explicit RecordingSelector(std::shared_ptr<FakePolicyState> s) : s_(std::move(s)) {}
  std::string_view name() const override { return "recording_selector"; }
  size_t Select(std::span<const ScoredCandidate> c, Rng&) const override {
    s_->offered.emplace_back(c.begin(), c.end());
    size_t best = 0;
    for (size_t i = 1; i < c.size(); ++i)
      if (c[i].score > c[best].score || (c[i].score == c[best].score && c[i].node < c[best].node))
        best = i;
    return best;
  }

 private:
  std::shared_ptr<FakePolicyState> s_;
};
}  // namespace

absl::Status RegisterFakes(PolicyRegistry& registry, std::shared_ptr<FakePolicyState> state) {
  absl::Status s = registry.RegisterFilter(
      "fake_filter", [state](const PolicyOptions& o) -> absl::StatusOr<std::unique_ptr<Filter>> {
        if (auto st = CheckKnownOptions(o, {}, "filter fake_filter"); !st.ok()) return st;
        return std::make_unique<FakeFilter>(state);
      });
  if (!s.ok()) return s;
  s = registry.RegisterScorer(
      "fake_scorer", [state](const PolicyOptions& o) -> absl::StatusOr<std::unique_ptr<Scorer>> {
        if (auto st = CheckKnownOptions(o, {}, "scorer fake_scorer"); !st.ok()) return st;
        return std::make_unique<FakeScorer>(state);
      });
  if (!s.ok()) return s;
  return registry.RegisterSelector(
      "recording_selector",
      [state](const PolicyOptions& o) -> absl::StatusOr<std::unique_ptr<Selector>> {
        if (auto st = CheckKnownOptions(o, {}, "selector recording_selector"); !st.ok()) return st;
        return std::make_unique<RecordingSelector>(state);
      });
}

}  // namespace meridian::test
