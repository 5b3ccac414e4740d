#include "placement/policy/random_top_selector.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
class RandomTopSelector final : public Selector {
 public:
  explicit RandomTopSelector(int k) : k_(k) {}
  std::string_view name() const override { return "random_top"; }
  size_t Select(std::span<const ScoredCandidate> c, Rng& rng) const override {
    std::vector<size_t> order(c.size());
    for (size_t i = 0; i < c.size(); ++i) order[i] = i;
    size_t k = std::min(order.size(), size_t(k_));
    std::partial_sort(order.begin(), order.begin() + long(k), order.end(), [&](size_t a, size_t b) {
      return c[a].score > c[b].score || (c[a].score == c[b].score && c[a].node < c[b].node);
    });
    return order[size_t(rng.Uniform(0, int64_t(k) - 1))];
  }

 private:
  int k_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<Selector>> MakeRandomTopSelector(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {"k"}, "selector random_top"); !s.ok()) return s;
  int k = 3;
  if (auto it = options.find("k"); it != options.end()) {
    if (!absl::SimpleAtoi(it->second, &k) || k < 1 || k > 100000)
      return absl::InvalidArgumentError(absl::StrCat(
          "selector random_top: k must be an integer in 1..100000, got '", it->second, "'"));
  }
  return std::make_unique<RandomTopSelector>(k);
}

}  // namespace meridian
