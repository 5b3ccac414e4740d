#include "placement/policy/cost_scorer.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
class CostScorer final : public Scorer {
 public:
  explicit CostScorer(double reference) : reference_(reference) {}
  std::string_view name() const override { return "cost"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Node& n = ctx.fleet.node(id);
    double price = ctx.job.shape.gpus > 0 && n.gpus > 0 ? n.price_hour / n.gpus : n.price_hour;
    return 100.0 / (1.0 + price / reference_);
  }

 private:
  double reference_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeCostScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {"reference_usd"}, "scorer cost"); !s.ok()) return s;
  double reference = 2.0;
  if (auto it = options.find("reference_usd"); it != options.end()) {
    if (!absl::SimpleAtod(it->second, &reference) || !(reference > 0) || reference > 1e9)
      return absl::InvalidArgumentError(
          absl::StrCat("scorer cost: reference_usd must be a positive number, got '", it->second,
                       "'"));
  }
  return std::make_unique<CostScorer>(reference);
}

}  // namespace meridian
