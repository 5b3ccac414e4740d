#include "placement/fragmentation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <tuple>

#include "core/check.h"

namespace meridian {

namespace {

// What the measure needs of a node's GPUs: whole-free GPUs count as a
// number, partly used ones (usually few) are listed.
struct GpuSummary {
  int64_t total = 0;  // free milli over all GPUs
  int32_t whole = 0;  // GPUs with all 1000 milli free
  int32_t partial = 0;
  std::array<int16_t, 64> partial_free;  // [0, partial): 0 < free < 1000
};

GpuSummary Summarize(std::span<const int16_t> gpu_free) {
  MERIDIAN_CHECK(gpu_free.size() <= 64, "more than 64 GPUs on a node");
  GpuSummary s;
  for (int16_t g : gpu_free) {
    s.total += g;
    if (g == 1000) {
      ++s.whole;
    } else if (g > 0) {
      s.partial_free[size_t(s.partial++)] = g;
    }
  }
  return s;
}

int64_t ClassFragment(const NodeFree& n, const GpuSummary& s, const TaskShape& t, GpuTypeId type) {
  if (s.total == 0) return 0;
  if (t.gpus == 0 || n.cpu_milli < t.cpu_milli || n.memory_mib < t.memory_mib) return s.total;
  if (type.Valid() && type != n.gpu_type) return s.total;  // the class may not use these GPUs
  if (t.fractional()) {
    int64_t usable = int64_t{1000} * s.whole;
    for (int32_t i = 0; i < s.partial; ++i)
      if (s.partial_free[size_t(i)] >= t.gpu_milli) usable += s.partial_free[size_t(i)];
    return s.total - usable;  // no GPU with room: usable is 0, all is fragment
  }
  if (s.whole < t.gpus) return s.total;
  return s.total - int64_t{1000} * s.whole;
}

double NodeFragment(const NodeFree& n, const GpuSummary& s, std::span<const TaskClass> mix) {
  if (s.total == 0) return 0;
  double f = 0;
  for (const TaskClass& c : mix) f += c.weight * double(ClassFragment(n, s, c.shape, c.gpu_type));
  return f;
}

}  // namespace

int64_t ClassFragment(const NodeFree& node, const TaskShape& t, GpuTypeId type) {
  return ClassFragment(node, Summarize(node.gpu_free), t, type);
}

double NodeFragment(const NodeFree& node, std::span<const TaskClass> mix) {
  return NodeFragment(node, Summarize(node.gpu_free), mix);
}

FragmentMove BestFragmentMove(const NodeState& node, GpuTypeId node_type, const TaskShape& shape,
                              std::span<const TaskClass> mix) {
  const NodeFree before{node.gpu_free, node.free.cpu_milli, node.free.memory_mib, node_type};
  const GpuSummary sb = Summarize(node.gpu_free);
  const double f0 = NodeFragment(before, sb, mix);
  std::array<int16_t, 64> buf;
  std::span<int16_t> after(buf.data(), node.gpu_free.size());
  std::copy(node.gpu_free.begin(), node.gpu_free.end(), after.begin());
  NodeFree next{after, node.free.cpu_milli - shape.cpu_milli,
                node.free.memory_mib - shape.memory_mib, node_type};
  FragmentMove best;
  if (shape.fractional()) {
    // Try each GPU with room; GPUs with the same free amount lead to the same
    // state, so each distinct amount is evaluated once (the lowest index).
    bool found = false;
    for (size_t g = 0; g < after.size(); ++g) {
      const int16_t free = node.gpu_free[g];
      if (free < shape.gpu_milli) continue;
      bool seen = false;
      for (size_t h = 0; h < g && !seen; ++h) seen = node.gpu_free[h] == free;
      if (seen) continue;
      after[g] = static_cast<int16_t>(free - shape.gpu_milli);
      const double d = NodeFragment(next, Summarize(after), mix) - f0;
      after[g] = free;
      if (!found || d < best.delta) {
        best = {d, static_cast<int>(g)};
        found = true;
      }
    }
    MERIDIAN_CHECK(found, "BestFragmentMove: the shared-GPU task fits no GPU");
    return best;
  }
  if (shape.gpus > 0) {
    int need = shape.gpus;
    for (size_t g = 0; g < after.size() && need > 0; ++g)
      if (after[g] == 1000) {
        after[g] = 0;
        --need;
      }
    MERIDIAN_CHECK(need == 0, "BestFragmentMove: the task fits no set of whole GPUs");
  }
  best.delta = NodeFragment(next, Summarize(after), mix) - f0;
  return best;
}

double CpuShareCost(const NodeState& node, const TaskShape& shape) {
  const int64_t idle = node.free.gpu_milli;
  if (idle <= 0) return 0;
  double share = 0;
  if (node.free.cpu_milli > 0)
    share = std::max(share, double(shape.cpu_milli) / double(node.free.cpu_milli));
  if (node.free.memory_mib > 0)
    share = std::max(share, double(shape.memory_mib) / double(node.free.memory_mib));
  return std::max(0.0, double(idle) * std::min(share, 1.0) - double(shape.total_gpu_milli()));
}

double FragmentMoveScore(double delta) { return 100.0 / (1.0 + std::exp(delta / 1000.0)); }

std::span<const TaskClass> DefaultTaskMix() {
  // CPU per class as typical of openb pods (milli-cores); memory not limiting.
  static const std::array<TaskClass, 7> mix = {{
      {{8000, 0, 0, 1000}, 0.12},
      {{4000, 0, 1, 250}, 0.14},
      {{8000, 0, 1, 500}, 0.14},
      {{12000, 0, 1, 1000}, 0.34},
      {{16000, 0, 2, 1000}, 0.10},
      {{32000, 0, 4, 1000}, 0.09},
      {{64000, 0, 8, 1000}, 0.07},
  }};
  return mix;
}

std::span<const TaskClass> MixOrDefault(std::span<const TaskClass> mix) {
  return mix.empty() ? DefaultTaskMix() : mix;
}

double CpuTaskStrandingScore(const NodeState& node, GpuTypeId node_type, const TaskShape& shape,
                             std::span<const TaskClass> mix) {
  return FragmentMoveScore(BestFragmentMove(node, node_type, shape, MixOrDefault(mix)).delta);
}

std::vector<TaskClass> BuildTaskMix(std::span<const ShapeCount> counts, double coverage,
                                    size_t max_classes) {
  struct Acc {
    double count = 0;
    double memory = 0;  // count-weighted sum
  };
  using Key = std::tuple<int64_t, int32_t, int32_t, int32_t>;  // cpu, gpus, milli, GPU type
  std::map<Key, Acc> by_key;
  double total = 0;
  for (const ShapeCount& c : counts) {
    if (!(c.count > 0)) continue;
    const TaskShape& s = c.shape;
    Acc& a = by_key[{s.cpu_milli, s.gpus, s.gpus == 0 ? 1000 : s.gpu_milli,
                     s.gpus == 0 ? -1 : c.gpu_type.value()}];
    a.count += c.count;
    a.memory += c.count * double(s.memory_mib);
    total += c.count;
  }
  std::vector<std::pair<const Key*, const Acc*>> v;
  for (const auto& [k, a] : by_key) v.push_back({&k, &a});
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& x, const auto& y) { return x.second->count > y.second->count; });
  std::vector<TaskClass> mix;
  double kept = 0;
  for (const auto& [k, a] : v) {
    if (mix.size() >= max_classes || (total > 0 && kept >= coverage * total)) break;
    TaskShape s{std::get<0>(*k), static_cast<int64_t>(std::llround(a->memory / a->count)),
                std::get<1>(*k), std::get<2>(*k)};
    mix.push_back({s, a->count, GpuTypeId(std::get<3>(*k))});
    kept += a->count;
  }
  for (TaskClass& c : mix) c.weight /= kept;
  return mix;
}

std::vector<TaskClass> WorkloadTaskMix(std::span<const Job> jobs) {
  std::vector<ShapeCount> counts;
  counts.reserve(jobs.size());
  for (const Job& j : jobs)
    counts.push_back(
        {j.shape, double(j.replicas), j.gpu_types.size() == 1 ? j.gpu_types[0].type : GpuTypeId()});
  return BuildTaskMix(counts);
}

double FragmentationRate(const ClusterState& state, std::span<const TaskClass> mix) {
  double frag = 0;
  int64_t free = 0;
  for (size_t i = 0; i < state.fleet().nodes().size(); ++i) {
    const NodeId id(static_cast<int32_t>(i));
    if (!state.healthy(id)) continue;
    const NodeState& n = state.node(id);
    frag += NodeFragment(
        {n.gpu_free, n.free.cpu_milli, n.free.memory_mib, state.fleet().node(id).gpu_type}, mix);
    free += n.free.gpu_milli;
  }
  return free > 0 ? frag / double(free) : 0.0;
}

}  // namespace meridian
