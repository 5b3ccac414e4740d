#include "placement/policy/health_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class HealthFilter final : public Filter {
 public:
  std::string_view name() const override { return "health"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    return ctx.state.healthy(id);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeHealthFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter health"); !s.ok()) return s;
  return std::make_unique<HealthFilter>();
}

}  // namespace meridian
