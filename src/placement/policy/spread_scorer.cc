#include "placement/policy/spread_scorer.h"

#include <algorithm>

namespace meridian {

namespace {
double FreeFrac(int64_t free, int64_t cap) { return cap <= 0 ? 1.0 : double(free) / double(cap); }

class SpreadScorer final : public Scorer {
 public:
  std::string_view name() const override { return "spread"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Resources& cap = ctx.fleet.node(id).capacity;
    Resources after = ctx.state.node(id).free - ctx.job.shape.AsResources();
    double f = ctx.job.shape.gpus > 0 ? FreeFrac(after.gpu_milli, cap.gpu_milli)
                                      : FreeFrac(after.cpu_milli, cap.cpu_milli);
    int same = 0;
    for (const Allocation& a : ctx.gang_so_far) same += (a.node == id);
    return 100.0 * std::clamp(f, 0.0, 1.0) / (1.0 + same);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeSpreadScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer spread"); !s.ok()) return s;
  return std::make_unique<SpreadScorer>();
}

}  // namespace meridian
