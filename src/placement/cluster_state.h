// ClusterState: the mutable allocation state of a Fleet, with a capacity index.
//
// Tracks, per node, free CPU/memory and the free milli-GPUs of every GPU, and
// keeps an index of nodes per (region, GPU type) "pool", bucketed by the
// number of wholly free GPUs, plus a set of nodes that have a partially used
// GPU (for fractional requests). Candidate enumeration is therefore
// proportional to the number of candidates wanted, not to the fleet size.
//
// Invariant (checked, crash on violation): no node's free amounts ever go
// negative — Allocate() on a node that cannot hold the task is a bug in the
// caller. Release() must be given exactly an Allocation returned earlier.
// Not thread-safe: owned by the scheduling loop thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "core/fleet.h"
#include "core/workload.h"

namespace meridian {

struct Allocation {
  NodeId node;
  Resources resources;
  // (GPU index on the node, milli-GPUs taken); one entry per GPU touched.
  absl::InlinedVector<std::pair<int16_t, int16_t>, 8> gpus;
};

struct NodeState {
  Resources free;
  int32_t whole_free_gpus = 0;  // GPUs with all 1000 milli free
  int32_t tasks = 0;            // allocations currently on the node
  std::vector<int16_t> gpu_free;  // milli free per GPU
};

class ClusterState {
 public:
  // `fleet` must outlive this object. All nodes start empty. Unhealthy nodes
  // are tracked but never returned as candidates.
  explicit ClusterState(const Fleet* fleet);

  const Fleet& fleet() const { return *fleet_; }
  const NodeState& node(NodeId id) const { return nodes_[id.index()]; }

  // True when `shape` fits on the node's free resources now.
  bool Fits(NodeId id, const TaskShape& shape) const;
  // Takes `shape` from the node. Precondition: Fits(id, shape). For a
  // shared-GPU shape, `gpu` names the GPU to take (it must have room), or is
  // -1 for the partly used GPU with the least room that fits (best fit).
  Allocation Allocate(NodeId id, const TaskShape& shape, int gpu = -1);
  // Returns an allocation. Precondition: it came from Allocate and was not released.
  void Release(const Allocation& a);
  // Takes back exactly the GPUs and amounts of a released allocation (used to
  // undo a trial eviction). Precondition: those GPUs have that much free.
  void Restore(const Allocation& a);

  // Marks a node healthy/unhealthy at run time (failures); its allocations stay.
  void SetHealthy(NodeId id, bool healthy);
  bool healthy(NodeId id) const { return healthy_[id.index()]; }

  // Pools: one per (region, GPU type) present in the fleet; CPU-only nodes form
  // a pool with an invalid GPU type. Returns -1 when absent.
  int FindPool(RegionId region, GpuTypeId type) const;
  const std::vector<int>& region_pools(RegionId region) const {
    return region_pools_[region.index()];
  }
  size_t num_pools() const { return pools_.size(); }
  int node_pool(NodeId id) const { return node_pool_[id.index()]; }
  GpuTypeId pool_gpu_type(int pool) const { return pools_[size_t(pool)].type; }
  RegionId pool_region(int pool) const { return pools_[size_t(pool)].region; }

  // Calls f(NodeId) for healthy nodes of `pool` that have at least the GPU room
  // `shape` needs (CPU and memory are not checked here), tightest first when
  // `tightest_first`, else loosest first, until f returns false.
  template <typename F>
  void ForEachCandidate(int pool, const TaskShape& shape, bool tightest_first, F&& f) const;

  // Resources in use per region and in total.
  const Resources& region_used(RegionId r) const { return region_used_[r.index()]; }
  const Resources& total_used() const { return total_used_; }
  // Free capacity of `pool` (healthy nodes only).
  int64_t pool_free_gpu_milli(int pool) const { return pools_[size_t(pool)].free_gpu_milli; }
  int64_t pool_capacity_gpu_milli(int pool) const { return pools_[size_t(pool)].capacity_gpu_milli; }

 private:
  struct Bucket {
    std::vector<NodeId> nodes;
  };
  struct Pool {
    RegionId region;
    GpuTypeId type;
    std::vector<Bucket> by_whole_free;  // index: wholly free GPUs
    Bucket partial;                     // nodes with a GPU 0 < free < 1000
    int64_t free_gpu_milli = 0;
    int64_t capacity_gpu_milli = 0;
  };
  static constexpr int32_t kNotIndexed = -1;

  void Unindex(NodeId id);
  void Index(NodeId id);
  static bool HasPartial(const NodeState& n);

  const Fleet* fleet_;
  std::vector<NodeState> nodes_;
  std::vector<bool> healthy_;
  std::vector<int32_t> node_pool_;
  std::vector<int32_t> pos_whole_;    // position in its whole-free bucket
  std::vector<int32_t> pos_partial_;  // position in the partial bucket, or kNotIndexed
  std::vector<Pool> pools_;
  std::vector<std::vector<int>> region_pools_;
  std::vector<Resources> region_used_;
  Resources total_used_;
};

template <typename F>
void ClusterState::ForEachCandidate(int pool, const TaskShape& shape, bool tightest_first,
                                    F&& f) const {
  const Pool& p = pools_[size_t(pool)];
  const int nb = static_cast<int>(p.by_whole_free.size());
  int min_whole = shape.gpus == 0 ? 0 : (shape.fractional() ? 1 : shape.gpus);
  // Fractional, tightest first: nodes whose partly used GPU has room are
  // visited from the partial bucket first and must not be visited again.
  const bool skip_partial_room = shape.fractional() && tightest_first;
  auto partial_room = [&](NodeId id) {
    for (int16_t g : nodes_[id.index()].gpu_free)
      if (g >= shape.gpu_milli && g < 1000) return true;
    return false;
  };
  auto visit_bucket = [&](const Bucket& b) {
    for (NodeId id : b.nodes) {
      if (skip_partial_room && partial_room(id)) continue;
      if (!f(id)) return false;
    }
    return true;
  };
  if (shape.fractional() && tightest_first) {
    for (NodeId id : p.partial.nodes) {
      const NodeState& n = nodes_[id.index()];
      bool room = false;
      for (int16_t g : n.gpu_free) room |= (g >= shape.gpu_milli && g < 1000);
      if (room && !f(id)) return;
    }
  }
  if (tightest_first) {
    for (int w = min_whole; w < nb; ++w)
      if (!visit_bucket(p.by_whole_free[size_t(w)])) return;
  } else {
    for (int w = nb - 1; w >= min_whole; --w)
      if (!visit_bucket(p.by_whole_free[size_t(w)])) return;
    if (shape.fractional()) {
      for (NodeId id : p.partial.nodes) {
        const NodeState& n = nodes_[id.index()];
        if (n.whole_free_gpus > 0) continue;  // already visited
        bool room = false;
        for (int16_t g : n.gpu_free) room |= (g >= shape.gpu_milli);
        if (room && !f(id)) return;
      }
    }
  }
}

}  // namespace meridian
