#include "placement/policy/residency_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class ResidencyFilter final : public Filter {
 public:
  std::string_view name() const override { return "residency"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    const Node& n = ctx.fleet.node(id);
    return ctx.job.AllowsRegion(n.region) && ctx.job.AllowsZone(n.zone);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeResidencyFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter residency"); !s.ok()) return s;
  return std::make_unique<ResidencyFilter>();
}

}  // namespace meridian
