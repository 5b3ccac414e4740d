#include "placement/policy/best_fit_scorer.h"

#include <algorithm>

namespace meridian {

namespace {
double Frac(int64_t used, int64_t cap) { return cap <= 0 ? 1.0 : double(used) / double(cap); }

class BestFitScorer final : public Scorer {
 public:
  std::string_view name() const override { return "best_fit"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Resources& cap = ctx.fleet.node(id).capacity;
    if (ctx.job.shape.gpus == 0 && cap.gpu_milli > 0)
      return CpuTaskStrandingScore(ctx.state.node(id), ctx.job.shape, ctx.task_mix);
    Resources after = ctx.state.node(id).free - ctx.job.shape.AsResources();
    double gpu = Frac(cap.gpu_milli - after.gpu_milli, cap.gpu_milli);
    double other = std::max(Frac(cap.cpu_milli - after.cpu_milli, cap.cpu_milli),
                            Frac(cap.memory_mib - after.memory_mib, cap.memory_mib));
    double s = ctx.job.shape.gpus > 0 ? 0.75 * gpu + 0.25 * other : other;
    return 100.0 * std::clamp(s, 0.0, 1.0);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeBestFitScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer best_fit"); !s.ok()) return s;
  return std::make_unique<BestFitScorer>();
}

}  // namespace meridian
