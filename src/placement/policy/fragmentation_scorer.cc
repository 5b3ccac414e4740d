#include "placement/policy/fragmentation_scorer.h"

#include <algorithm>
#include <array>

namespace meridian {

namespace {

// Free GPU milli of a node that task class `t` cannot use.
int64_t Fragment(const std::vector<int16_t>& gpu_free, const Resources& free, const TaskShape& t) {
  int64_t total = 0, unusable = 0, whole = 0;
  for (int16_t g : gpu_free) {
    total += g;
    whole += (g == 1000);
  }
  if (t.gpus == 0) return 0;  // CPU-only classes use no GPU: nothing is fragmented for them
  if (free.cpu_milli < t.cpu_milli || free.memory_mib < t.memory_mib) return total;
  if (t.fractional()) {
    for (int16_t g : gpu_free)
      if (g < t.gpu_milli) unusable += g;
    return unusable;
  }
  if (whole < t.gpus) return total;
  for (int16_t g : gpu_free)
    if (g < 1000) unusable += g;
  return unusable;
}

// A default mix shaped like the openb trace: mostly one or fractional GPUs.
const std::array<TaskClass, 6>& DefaultMix() {
  static const std::array<TaskClass, 6> mix = {{
      {{0, 0, 1, 250}, 0.15},
      {{0, 0, 1, 500}, 0.15},
      {{0, 0, 1, 1000}, 0.40},
      {{0, 0, 2, 1000}, 0.12},
      {{0, 0, 4, 1000}, 0.10},
      {{0, 0, 8, 1000}, 0.08},
  }};
  return mix;
}

class FragmentationScorer final : public Scorer {
 public:
  std::string_view name() const override { return "fragmentation"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Node& node = ctx.fleet.node(id);
    if (node.gpus == 0) return 50.0;
    const NodeState& s = ctx.state.node(id);
    const TaskShape& shape = ctx.job.shape;
    // Simulate the allocation the ClusterState would make.
    std::vector<int16_t> after = s.gpu_free;
    if (shape.fractional()) {
      int best = -1;
      for (size_t g = 0; g < after.size(); ++g)
        if (after[g] >= shape.gpu_milli && (best < 0 || after[g] < after[size_t(best)]))
          best = static_cast<int>(g);
      if (best >= 0) after[size_t(best)] = static_cast<int16_t>(after[size_t(best)] - shape.gpu_milli);
    } else {
      int need = shape.gpus;
      for (size_t g = 0; g < after.size() && need > 0; ++g)
        if (after[g] == 1000) after[g] = 0, --need;
    }
    Resources free_after = s.free - shape.AsResources();
    double before = 0, later = 0;
    auto accumulate = [&](const TaskClass& c) {
      before += c.weight * double(Fragment(s.gpu_free, s.free, c.shape));
      later += c.weight * double(Fragment(after, free_after, c.shape));
    };
    if (ctx.task_mix.empty()) {
      for (const TaskClass& c : DefaultMix()) accumulate(c);
    } else {
      for (const TaskClass& c : ctx.task_mix) accumulate(c);
    }
    // Growth of fragmentation, normalized by the node's GPU capacity, mapped to [0, 100].
    double delta = (later - before) / double(node.capacity.gpu_milli);
    return std::clamp(50.0 - 50.0 * delta, 0.0, 100.0);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeFragmentationScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer fragmentation"); !s.ok()) return s;
  return std::make_unique<FragmentationScorer>();
}

}  // namespace meridian
