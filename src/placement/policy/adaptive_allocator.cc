#include "placement/policy/adaptive_allocator.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "placement/policy/round_common.h"

namespace meridian {

namespace {

using round_internal::Allows;
using round_internal::FreeMap;
using round_internal::TakePacked;
using round_internal::Total;

// Loss of a job that gets no GPU: larger than any -1/speedup a running job
// can have, so running one more job always beats growing one.
constexpr double kUnallocatedLoss = 1e9;

class AdaptiveAllocator final : public RoundAllocator {
 public:
  AdaptiveAllocator(bool wan_aware, double p) : wan_aware_(wan_aware), p_(p) {}
  std::string_view name() const override { return "adaptive"; }

  std::vector<NodeGpus> Allocate(const RoundInput& in) override {
    const auto& jobs = *in.jobs;
    const auto& nodes = *in.nodes;
    const size_t n = jobs.size();
    std::vector<NodeGpus> out(n);
    if (n == 0) return out;
    int64_t total = 0;
    int32_t node_gpus = 1;
    std::map<int32_t, int64_t> region_cap;
    for (const RoundNode& nd : nodes)
      if (nd.healthy) {
        total += nd.gpus;
        node_gpus = std::max(node_gpus, nd.gpus);
        region_cap[nd.region.value()] += nd.gpus;
      }
    int64_t max_region = 0;
    for (const auto& [r, c] : region_cap) max_region = std::max(max_region, c);
    const bool multi_region = region_cap.size() > 1;

    // Predicted goodput of job j on r GPUs, packed; memoised for the round.
    std::vector<std::vector<double>> memo(n);
    auto goodput = [&](size_t j, int32_t r, bool spread) -> double {
      if (r <= 0) return 0;
      const RoundJob& job = jobs[j];
      const int32_t nodes_used = (r + node_gpus - 1) / node_gpus;
      const int32_t regions = wan_aware_ && multi_region && spread ? 2 : 1;
      return job.goodput ? job.goodput(r, nodes_used, regions) : double(r);
    };
    auto G = [&](size_t j, int32_t r) -> double {
      auto& m = memo[j];
      if (m.empty()) m.assign(size_t(jobs[j].max_gpus) + 1, -1);
      if (m[size_t(r)] < 0) m[size_t(r)] = goodput(j, r, r > max_region);
      return m[size_t(r)];
    };
    std::vector<double> base(n), factor(n);
    std::vector<int32_t> now(n), lo(n);
    const int64_t fair = (total + int64_t(n) - 1) / int64_t(n);
    for (size_t j = 0; j < n; ++j) {
      const RoundJob& job = jobs[j];
      lo[j] = std::max(1, job.min_gpus);
      now[j] = Total(job.current);
      const int32_t f = int32_t(std::clamp<int64_t>(fair, lo[j], std::max(lo[j], job.max_gpus)));
      base[j] = f <= job.max_gpus ? G(j, f) : 0;
      for (int32_t r = lo[j]; r <= job.max_gpus && !(base[j] > 0); ++r) base[j] = G(j, r);
      const double age = std::max(1.0, job.age_s);
      factor[j] =
          std::max(age - job.restarts * in.restart_penalty_s, 0.0) / (age + in.restart_penalty_s);
    }
    // Loss of job j on r GPUs: -1 / speedup, discounted for a change.
    auto U = [&](size_t j, int32_t r) -> double {
      if (r <= 0) return -kUnallocatedLoss;
      const double s = base[j] > 0 ? G(j, r) / base[j] : 0;
      const double eff = s * (r == now[j] ? 1.0 : factor[j]);
      if (!(eff > 0)) return -kUnallocatedLoss;
      const double u = p_ < 0 ? -std::pow(eff, p_) : p_ == 0 ? std::log(eff) : std::pow(eff, p_);
      return std::max(u, -kUnallocatedLoss / 2);
    };
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (jobs[a].attained_gpu_s != jobs[b].attained_gpu_s)
        return jobs[a].attained_gpu_s < jobs[b].attained_gpu_s;
      return jobs[a].submit_s < jobs[b].submit_s;
    });
    std::vector<int32_t> r(n, 0);
    int64_t free = total;
    while (free > 0) {
      double best_gain = 0;
      size_t best_j = SIZE_MAX;
      int32_t best_to = 0;
      for (size_t j : order) {
        const RoundJob& job = jobs[j];
        // One more GPU, the next whole node (goodput often dips when a job
        // first spans a second node and recovers with whole nodes), twice
        // the GPUs, or back to what it holds.
        const int32_t next_node = (r[j] / node_gpus + 1) * node_gpus;
        int32_t tos[4] = {r[j] == 0 ? lo[j] : r[j] + 1, r[j] == 0 ? 0 : next_node,
                          r[j] == 0 ? 0 : 2 * r[j], now[j] > r[j] ? now[j] : 0};
        for (int32_t to : tos) {
          if (to <= r[j] || to > job.max_gpus || to - r[j] > free) continue;
          const double gain = (U(j, to) - U(j, r[j])) / double(to - r[j]);
          if (gain > best_gain * (1 + 1e-12) + 1e-15) best_gain = gain, best_j = j, best_to = to;
        }
      }
      if (best_j == SIZE_MAX) break;
      free -= best_to - r[best_j];
      r[best_j] = best_to;
    }

    // Nodes: unchanged jobs keep theirs; the others, largest first.
    FreeMap fm(nodes);
    std::vector<size_t> moved;
    for (size_t j : order) {
      if (r[j] == 0) continue;
      if (r[j] == now[j] && fm.Take(jobs[j].current))
        out[j] = jobs[j].current;
      else
        moved.push_back(j);
    }
    std::stable_sort(moved.begin(), moved.end(), [&](size_t a, size_t b) { return r[a] > r[b]; });
    for (size_t j : moved) {
      auto any = [&](const RoundNode& nd) { return Allows(jobs[j], nd.gpu_type); };
      if (!wan_aware_ || !multi_region) {
        out[j] = TakePacked(nodes, fm, r[j], any);
        continue;
      }
      std::map<int32_t, int64_t> region_free;
      for (size_t i = 0; i < nodes.size(); ++i) region_free[nodes[i].region.value()] += fm.free[i];
      int32_t fit = -1, roomiest = -1;
      for (const auto& [reg, f] : region_free) {
        if (f >= r[j] && (fit < 0 || f < region_free[fit])) fit = reg;
        if (roomiest < 0 || f > region_free[roomiest]) roomiest = reg;
      }
      int32_t want = r[j];
      int32_t region = fit;
      if (fit < 0) {
        const int32_t m = int32_t(region_free[roomiest]);
        if (m >= lo[j] && goodput(j, m, false) >= goodput(j, r[j], true))
          want = m, region = roomiest;
      }
      if (region < 0)
        out[j] = TakePacked(nodes, fm, want, any);
      else
        out[j] = TakePacked(nodes, fm, want, [&](const RoundNode& nd) {
          return any(nd) && nd.region.value() == region;
        });
    }
    return out;
  }

 private:
  bool wan_aware_;
  double p_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RoundAllocator>> MakeAdaptiveAllocator(const PolicyOptions& o) {
  if (auto s = CheckKnownOptions(o, {"wan_aware", "p"}, "round allocator adaptive"); !s.ok())
    return s;
  double p = -1;
  if (auto it = o.find("p"); it != o.end())
    if (!absl::SimpleAtod(it->second, &p) || !(p <= 1) || !(p >= -10))
      return absl::InvalidArgumentError(absl::StrCat(
          "round allocator adaptive: p must be a number in [-10, 1], got '", it->second, "'"));
  bool aware = true;
  if (auto it = o.find("wan_aware"); it != o.end()) {
    if (it->second != "true" && it->second != "false")
      return absl::InvalidArgumentError(absl::StrCat(
          "round allocator adaptive: wan_aware must be true or false, got '", it->second, "'"));
    aware = it->second == "true";
  }
  return std::make_unique<AdaptiveAllocator>(aware, p);
}

}  // namespace meridian
