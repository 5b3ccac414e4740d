#include "placement/policy/max_score_selector.h"

#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
class MaxScoreSelector final : public Selector {
 public:
  explicit MaxScoreSelector(bool random_ties) : random_ties_(random_ties) {}
  std::string_view name() const override { return "max_score"; }
  size_t Select(std::span<const ScoredCandidate> c, Rng& rng) const override {
    size_t best = 0;
    int64_t tied = 1;
    for (size_t i = 1; i < c.size(); ++i) {
      if (c[i].score > c[best].score) {
        best = i;
        tied = 1;
      } else if (c[i].score == c[best].score) {
        if (random_ties_) {
          // Reservoir sampling: each tied candidate is kept with probability 1/tied.
          if (rng.Uniform(0, tied++) == 0) best = i;
        } else if (c[i].node < c[best].node) {
          best = i;
        }
      }
    }
    return best;
  }

 private:
  bool random_ties_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<Selector>> MakeMaxScoreSelector(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {"ties"}, "selector max_score"); !s.ok()) return s;
  bool random_ties = false;
  if (auto it = options.find("ties"); it != options.end()) {
    if (it->second != "node" && it->second != "random")
      return absl::InvalidArgumentError(absl::StrCat(
          "selector max_score: ties must be 'node' or 'random', got '", it->second, "'"));
    random_ties = it->second == "random";
  }
  return std::make_unique<MaxScoreSelector>(random_ties);
}

}  // namespace meridian
