#include "placement/policy/fragmentation_scorer.h"

namespace meridian {

namespace {

std::span<const TaskClass> MixOf(const PlacementContext& ctx) {
  return MixOrDefault(ctx.task_mix);
}

class FragmentationScorer final : public Scorer {
 public:
  std::string_view name() const override { return "fragmentation"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    return FragmentMoveScore(
        BestFragmentMove(ctx.state.node(id), ctx.job.shape, MixOf(ctx)).delta);
  }
  int ChooseGpu(const PlacementContext& ctx, NodeId id) const override {
    if (!ctx.job.shape.fractional()) return -1;
    return BestFragmentMove(ctx.state.node(id), ctx.job.shape, MixOf(ctx)).gpu;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeFragmentationScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer fragmentation"); !s.ok()) return s;
  return std::make_unique<FragmentationScorer>();
}

}  // namespace meridian
