#include "placement/policy/max_score_selector.h"

namespace meridian {

namespace {
class MaxScoreSelector final : public Selector {
 public:
  std::string_view name() const override { return "max_score"; }
  size_t Select(std::span<const ScoredCandidate> c, Rng&) const override {
    size_t best = 0;
    for (size_t i = 1; i < c.size(); ++i)
      if (c[i].score > c[best].score || (c[i].score == c[best].score && c[i].node < c[best].node))
        best = i;
    return best;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Selector>> MakeMaxScoreSelector(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "selector max_score"); !s.ok()) return s;
  return std::make_unique<MaxScoreSelector>();
}

}  // namespace meridian
