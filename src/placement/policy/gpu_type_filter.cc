#include "placement/policy/gpu_type_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class GpuTypeFilter final : public Filter {
 public:
  std::string_view name() const override { return "gpu_type"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    if (ctx.job.shape.gpus == 0) return true;
    const Node& n = ctx.fleet.node(id);
    return n.gpu_type.Valid() && n.gpus > 0 && ctx.job.SpeedOn(n.gpu_type) > 0;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeGpuTypeFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter gpu_type"); !s.ok()) return s;
  return std::make_unique<GpuTypeFilter>();
}

}  // namespace meridian
