#include "placement/policy/dot_product_scorer.h"

#include <algorithm>

namespace meridian {

namespace {
double Norm(int64_t v, int64_t cap) { return cap <= 0 ? 0.0 : double(v) / double(cap); }

class DotProductScorer final : public Scorer {
 public:
  std::string_view name() const override { return "dot_product"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Resources& cap = ctx.fleet.node(id).capacity;
    if (ctx.job.shape.gpus == 0 && cap.gpu_milli > 0)
      return CpuTaskStrandingScore(ctx.state.node(id), ctx.fleet.node(id).gpu_type, ctx.job.shape,
                                   ctx.task_mix);
    const Resources& free = ctx.state.node(id).free;
    const Resources d = ctx.job.shape.AsResources();
    double dot = Norm(d.gpu_milli, cap.gpu_milli) * Norm(free.gpu_milli, cap.gpu_milli) +
                 Norm(d.cpu_milli, cap.cpu_milli) * Norm(free.cpu_milli, cap.cpu_milli) +
                 Norm(d.memory_mib, cap.memory_mib) * Norm(free.memory_mib, cap.memory_mib);
    return std::clamp(100.0 * dot / 3.0, 0.0, 100.0);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeDotProductScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer dot_product"); !s.ok()) return s;
  return std::make_unique<DotProductScorer>();
}

}  // namespace meridian
