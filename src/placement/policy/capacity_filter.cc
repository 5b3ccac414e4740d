#include "placement/policy/capacity_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class CapacityFilter final : public Filter {
 public:
  std::string_view name() const override { return "capacity"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    return ctx.state.Fits(id, ctx.job.shape);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeCapacityFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter capacity"); !s.ok()) return s;
  return std::make_unique<CapacityFilter>();
}

}  // namespace meridian
