#include "placement/policy/topology_scorer.h"

#include <algorithm>

namespace meridian {

namespace {
// How many replicas of `shape` fit in `free` (GPU, CPU and memory).
int64_t ReplicasThatFit(const NodeState& s, const TaskShape& shape) {
  int64_t n = INT64_MAX;
  if (shape.cpu_milli > 0) n = std::min(n, s.free.cpu_milli / shape.cpu_milli);
  if (shape.memory_mib > 0) n = std::min(n, s.free.memory_mib / shape.memory_mib);
  if (shape.fractional()) {
    int64_t k = 0;
    for (int16_t g : s.gpu_free) k += g / shape.gpu_milli;
    n = std::min(n, k);
  } else if (shape.gpus > 0) {
    n = std::min<int64_t>(n, s.whole_free_gpus / shape.gpus);
  }
  return n;
}

class TopologyScorer final : public Scorer {
 public:
  std::string_view name() const override { return "topology"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    if (ctx.gang_so_far.empty()) {
      if (ctx.job.replicas <= 1) return 100.0;
      double fit = double(ReplicasThatFit(ctx.state.node(id), ctx.job.shape));
      return 100.0 * std::min(1.0, fit / double(ctx.job.replicas));
    }
    ZoneId zone = ctx.fleet.node(id).zone;
    bool same_zone = false;
    for (const Allocation& a : ctx.gang_so_far) {
      if (a.node == id) return 100.0;
      same_zone |= ctx.fleet.node(a.node).zone == zone;
    }
    return same_zone ? 60.0 : 20.0;
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeTopologyScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer topology"); !s.ok()) return s;
  return std::make_unique<TopologyScorer>();
}

}  // namespace meridian
