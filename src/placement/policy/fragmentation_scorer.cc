#include "placement/policy/fragmentation_scorer.h"

namespace meridian {

namespace {

class FragmentationScorer final : public Scorer {
 public:
  explicit FragmentationScorer(double cpu_share) : cpu_share_(cpu_share) {}
  std::string_view name() const override { return "fragmentation"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    if (ctx.job.shape.gpus > 0 && ctx.fleet.node(id).gpus == 0) return 50.0;  // no GPUs: neutral
    const NodeState& n = ctx.state.node(id);
    double delta =
        BestFragmentMove(n, ctx.fleet.node(id).gpu_type, ctx.job.shape, MixOrDefault(ctx.task_mix))
            .delta;
    if (cpu_share_ > 0) delta += cpu_share_ * CpuShareCost(n, ctx.job.shape);
    return FragmentMoveScore(delta);
  }
  int ChooseGpu(const PlacementContext& ctx, NodeId id) const override {
    if (!ctx.job.shape.fractional()) return -1;
    return BestFragmentMove(ctx.state.node(id), ctx.fleet.node(id).gpu_type, ctx.job.shape,
                            MixOrDefault(ctx.task_mix))
        .gpu;
  }

 private:
  double cpu_share_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeFragmentationScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {"cpu_share"}, "scorer fragmentation"); !s.ok()) return s;
  auto cpu_share = NumberOption(options, "cpu_share", 2.0, 0, 1000, "scorer fragmentation");
  if (!cpu_share.ok()) return cpu_share.status();
  return std::make_unique<FragmentationScorer>(*cpu_share);
}

}  // namespace meridian
