#include "placement/policy/best_fit_scorer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
double Frac(int64_t used, int64_t cap) { return cap <= 0 ? 1.0 : double(used) / double(cap); }

class BestFitScorer final : public Scorer {
 public:
  BestFitScorer(bool by_fleet, double cpu_share) : by_fleet_(by_fleet), cpu_share_(cpu_share) {}
  std::string_view name() const override { return "best_fit"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    const Resources& cap = ctx.fleet.node(id).capacity;
    const NodeState& n = ctx.state.node(id);
    if (by_fleet_) return ScoreByFleet(ctx, n, cap);
    if (ctx.job.shape.gpus == 0 && cap.gpu_milli > 0)
      return CpuTaskStrandingScore(n, ctx.fleet.node(id).gpu_type, ctx.job.shape, ctx.task_mix);
    Resources after = n.free - ctx.job.shape.AsResources();
    double gpu = Frac(cap.gpu_milli - after.gpu_milli, cap.gpu_milli);
    double other = std::max(Frac(cap.cpu_milli - after.cpu_milli, cap.cpu_milli),
                            Frac(cap.memory_mib - after.memory_mib, cap.memory_mib));
    double s = ctx.job.shape.gpus > 0 ? 0.75 * gpu + 0.25 * other : other;
    if (cpu_share_ > 0 && cap.gpu_milli > 0)
      s -= cpu_share_ * CpuShareCost(n, ctx.job.shape) / double(cap.gpu_milli);
    return 100.0 * std::clamp(s, 0.0, 1.0);
  }

 private:
  // What is left after placement, CPU and GPU each divided by the largest
  // node's, half each: less left is better, on any node (CPU-only work goes
  // where the GPUs are used up).
  double ScoreByFleet(const PlacementContext& ctx, const NodeState& n, const Resources& cap) const {
    int64_t max_cpu = 1, max_gpu = 1000;
    for (const NodeGroup& g : ctx.fleet.groups()) {
      max_cpu = std::max(max_cpu, g.cpu_milli);
      max_gpu = std::max<int64_t>(max_gpu, int64_t{g.gpus_per_node} * 1000);
    }
    const Resources d = ctx.job.shape.AsResources();
    double left = 0.5 * double(n.free.cpu_milli - d.cpu_milli) / double(max_cpu) +
                  0.5 * double(n.free.gpu_milli - d.gpu_milli) / double(max_gpu);
    if (cpu_share_ > 0 && cap.gpu_milli > 0)
      left += cpu_share_ * CpuShareCost(n, ctx.job.shape) / double(max_gpu);
    return 100.0 * std::clamp(1.0 - left, 0.0, 1.0);
  }

  bool by_fleet_;
  double cpu_share_;
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeBestFitScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {"normalize", "cpu_share"}, "scorer best_fit"); !s.ok())
    return s;
  bool by_fleet = false;
  if (auto it = options.find("normalize"); it != options.end()) {
    if (it->second != "node" && it->second != "fleet")
      return absl::InvalidArgumentError(absl::StrCat(
          "scorer best_fit: normalize must be 'node' or 'fleet', got '", it->second, "'"));
    by_fleet = it->second == "fleet";
  }
  auto cpu_share = NumberOption(options, "cpu_share", 0.0, 0, 1000, "scorer best_fit");
  if (!cpu_share.ok()) return cpu_share.status();
  return std::make_unique<BestFitScorer>(by_fleet, *cpu_share);
}

}  // namespace meridian
