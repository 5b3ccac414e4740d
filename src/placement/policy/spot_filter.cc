#include "placement/policy/spot_filter.h"

#include <algorithm>

namespace meridian {

namespace {
class SpotFilter final : public Filter {
 public:
  std::string_view name() const override { return "spot"; }
  bool Feasible(const PlacementContext& ctx, NodeId id) const override {
    return !ctx.fleet.node(id).spot || ctx.job.spot_allowed;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Filter>> MakeSpotFilter(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "filter spot"); !s.ok()) return s;
  return std::make_unique<SpotFilter>();
}

}  // namespace meridian
