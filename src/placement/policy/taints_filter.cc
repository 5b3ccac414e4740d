#include "placement/policy/taints_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class TaintsFilter final : public Filter {
 public:
  std::string_view name() const override { return "taints"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    const auto& tol = ctx.job.tolerations;
    for (const std::string& t : ctx.fleet.node(id).taints)
      if (std::find(tol.begin(), tol.end(), t) == tol.end()) return false;
    return true;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeTaintsFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter taints"); !s.ok()) return s;
  return std::make_unique<TaintsFilter>();
}

}  // namespace meridian
