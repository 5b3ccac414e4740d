// Helpers shared by the round allocators (round_allocators.cc,
// adaptive_allocator.cc): free GPUs per node and packing onto the nodes with
// the most free GPUs. Internal to meridian_placement.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "placement/round_allocator.h"

namespace meridian::round_internal {

// True when the job may run on GPU type `t` (no speeds: any type).
inline bool Allows(const RoundJob& j, GpuTypeId t) {
  if (j.speeds.empty()) return true;
  for (const auto& [type, speed] : j.speeds)
    if (type == t) return speed > 0;
  return false;
}

// Free GPUs per node (by position in the node list) as allocations are taken.
struct FreeMap {
  std::vector<int32_t> free;                 // by position in nodes
  absl::flat_hash_map<int32_t, size_t> pos;  // NodeId value -> position
  explicit FreeMap(const std::vector<RoundNode>& nodes) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      free.push_back(nodes[i].healthy ? nodes[i].gpus : 0);
      pos[nodes[i].id.value()] = i;
    }
  }
  // Takes `a` if every node is known and has room; false (nothing taken) otherwise.
  bool Take(const NodeGpus& a) {
    for (const auto& [n, g] : a) {
      auto it = pos.find(n.value());
      if (it == pos.end() || free[it->second] < g) return false;
    }
    for (const auto& [n, g] : a) free[pos[n.value()]] -= g;
    return true;
  }
};

// True when 0 < need <= the free GPUs of the nodes accepted by `ok`.
template <typename Ok>
inline bool Fits(const std::vector<RoundNode>& nodes, const FreeMap& fm, int32_t need, Ok ok) {
  int64_t avail = 0;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (ok(nodes[i])) avail += fm.free[i];
  return need > 0 && avail >= need;
}

// `need` GPUs from the nodes accepted by `ok`, most free first (ties: lower
// position), as Tiresias in the Pollux artifact does. Empty if they do not fit.
template <typename Ok>
inline NodeGpus TakeMostFree(const std::vector<RoundNode>& nodes, FreeMap& fm, int32_t need,
                             Ok ok) {
  if (!Fits(nodes, fm, need, ok)) return {};
  NodeGpus out;
  while (need > 0) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (fm.free[i] > 0 && ok(nodes[i]) && (best == SIZE_MAX || fm.free[i] > fm.free[best]))
        best = i;
    const int32_t g = std::min(need, fm.free[best]);
    out.push_back({nodes[best].id, g});
    fm.free[best] -= g;
    need -= g;
  }
  return out;
}

// `need` GPUs from the nodes accepted by `ok` on as few nodes as possible,
// leaving whole free nodes for larger jobs: whole free nodes while the rest
// needs at least a node, then the node with the fewest free GPUs that holds
// the rest (best fit), else the most free first. Empty if they do not fit.
template <typename Ok>
inline NodeGpus TakePacked(const std::vector<RoundNode>& nodes, FreeMap& fm, int32_t need, Ok ok) {
  if (!Fits(nodes, fm, need, ok)) return {};
  NodeGpus out;
  for (size_t i = 0; i < nodes.size() && need > 0; ++i)
    if (ok(nodes[i]) && nodes[i].healthy && fm.free[i] == nodes[i].gpus && need >= nodes[i].gpus &&
        nodes[i].gpus > 0) {
      out.push_back({nodes[i].id, nodes[i].gpus});
      need -= nodes[i].gpus;
      fm.free[i] = 0;
    }
  if (need == 0) return out;
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (ok(nodes[i]) && fm.free[i] >= need && (best == SIZE_MAX || fm.free[i] < fm.free[best]))
      best = i;
  if (best != SIZE_MAX) {
    out.push_back({nodes[best].id, need});
    fm.free[best] -= need;
    return out;
  }
  NodeGpus rest = TakeMostFree(nodes, fm, need, ok);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

inline int32_t Total(const NodeGpus& a) {
  int32_t t = 0;
  for (const auto& [n, g] : a) t += g;
  return t;
}

}  // namespace meridian::round_internal
