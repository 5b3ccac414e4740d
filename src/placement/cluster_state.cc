#include "placement/cluster_state.h"

#include <algorithm>

#include "core/check.h"

namespace meridian {

ClusterState::ClusterState(const Fleet* fleet) : fleet_(fleet) {
  const size_t n = fleet->nodes().size();
  nodes_.resize(n);
  healthy_.assign(n, true);
  node_pool_.assign(n, -1);
  pos_whole_.assign(n, kNotIndexed);
  pos_partial_.assign(n, kNotIndexed);
  region_pools_.assign(fleet->regions().size(), {});
  region_used_.assign(fleet->regions().size(), Resources{});
  for (size_t i = 0; i < n; ++i) {
    const Node& node = fleet->nodes()[i];
    NodeState& s = nodes_[i];
    s.free = node.capacity;
    s.whole_free_gpus = node.gpus;
    s.gpu_free.assign(size_t(node.gpus), 1000);
    int pool = FindPool(node.region, node.gpu_type);
    if (pool < 0) {
      pool = static_cast<int>(pools_.size());
      pools_.push_back(Pool{node.region, node.gpu_type, {}, {}, 0, 0});
      region_pools_[node.region.index()].push_back(pool);
    }
    Pool& p = pools_[size_t(pool)];
    if (p.by_whole_free.size() < size_t(node.gpus) + 1) p.by_whole_free.resize(size_t(node.gpus) + 1);
    node_pool_[i] = pool;
    healthy_[i] = node.healthy;
    p.capacity_gpu_milli += node.capacity.gpu_milli;
    if (node.healthy) Index(NodeId(static_cast<int32_t>(i)));
  }
  // CPU-only pools first in each region, so CPU tasks prefer CPU nodes.
  for (auto& rp : region_pools_)
    std::stable_sort(rp.begin(), rp.end(), [&](int a, int b) {
      return !pools_[size_t(a)].type.Valid() && pools_[size_t(b)].type.Valid();
    });
}

int ClusterState::FindPool(RegionId region, GpuTypeId type) const {
  for (int p : region_pools_[region.index()])
    if (pools_[size_t(p)].type == type) return p;
  return -1;
}

bool ClusterState::HasPartial(const NodeState& n) {
  for (int16_t g : n.gpu_free)
    if (g > 0 && g < 1000) return true;
  return false;
}

void ClusterState::Index(NodeId id) {
  const size_t i = id.index();
  Pool& p = pools_[size_t(node_pool_[i])];
  const NodeState& s = nodes_[i];
  Bucket& b = p.by_whole_free[size_t(s.whole_free_gpus)];
  pos_whole_[i] = static_cast<int32_t>(b.nodes.size());
  b.nodes.push_back(id);
  if (HasPartial(s)) {
    pos_partial_[i] = static_cast<int32_t>(p.partial.nodes.size());
    p.partial.nodes.push_back(id);
  }
  p.free_gpu_milli += s.free.gpu_milli;
}

void ClusterState::Unindex(NodeId id) {
  const size_t i = id.index();
  Pool& p = pools_[size_t(node_pool_[i])];
  const NodeState& s = nodes_[i];
  auto remove = [&](Bucket& b, std::vector<int32_t>& pos) {
    int32_t at = pos[i];
    MERIDIAN_CHECK(at >= 0 && size_t(at) < b.nodes.size() && b.nodes[size_t(at)] == id,
                   "capacity index out of sync");
    NodeId last = b.nodes.back();
    b.nodes[size_t(at)] = last;
    pos[last.index()] = at;
    b.nodes.pop_back();
    pos[i] = kNotIndexed;
  };
  remove(p.by_whole_free[size_t(s.whole_free_gpus)], pos_whole_);
  if (pos_partial_[i] != kNotIndexed) remove(p.partial, pos_partial_);
  p.free_gpu_milli -= s.free.gpu_milli;
}

bool ClusterState::Fits(NodeId id, const TaskShape& shape) const {
  const NodeState& s = nodes_[id.index()];
  if (s.free.cpu_milli < shape.cpu_milli || s.free.memory_mib < shape.memory_mib) return false;
  if (shape.gpus == 0) return true;
  if (shape.fractional()) {
    for (int16_t g : s.gpu_free)
      if (g >= shape.gpu_milli) return true;
    return false;
  }
  return s.whole_free_gpus >= shape.gpus;
}

Allocation ClusterState::Allocate(NodeId id, const TaskShape& shape, int gpu) {
  MERIDIAN_CHECK(Fits(id, shape), "Allocate on a node that cannot hold the task");
  const size_t i = id.index();
  const bool indexed = pos_whole_[i] != kNotIndexed;
  if (indexed) Unindex(id);
  NodeState& s = nodes_[i];
  Allocation a;
  a.node = id;
  a.resources = shape.AsResources();
  if (shape.fractional()) {
    // The caller's GPU, else best fit: the partly used GPU with the least room that fits.
    int best = gpu;
    if (best >= 0) {
      MERIDIAN_CHECK(
          size_t(best) < s.gpu_free.size() && s.gpu_free[size_t(best)] >= shape.gpu_milli,
          "Allocate: the chosen GPU has no room for the task");
    } else {
      for (size_t g = 0; g < s.gpu_free.size(); ++g)
        if (s.gpu_free[g] >= shape.gpu_milli &&
            (best < 0 || s.gpu_free[g] < s.gpu_free[size_t(best)]))
          best = static_cast<int>(g);
    }
    if (s.gpu_free[size_t(best)] == 1000) --s.whole_free_gpus;
    s.gpu_free[size_t(best)] = static_cast<int16_t>(s.gpu_free[size_t(best)] - shape.gpu_milli);
    a.gpus.push_back({static_cast<int16_t>(best), static_cast<int16_t>(shape.gpu_milli)});
  } else if (shape.gpus > 0) {
    int need = shape.gpus;
    for (size_t g = 0; g < s.gpu_free.size() && need > 0; ++g)
      if (s.gpu_free[g] == 1000) {
        s.gpu_free[g] = 0;
        a.gpus.push_back({static_cast<int16_t>(g), 1000});
        --need;
      }
    s.whole_free_gpus -= shape.gpus;
  }
  s.free -= a.resources;
  MERIDIAN_CHECK(s.free.NonNegative() && s.whole_free_gpus >= 0, "node over-committed");
  ++s.tasks;
  region_used_[fleet_->node(id).region.index()] += a.resources;
  total_used_ += a.resources;
  if (indexed) Index(id);
  return a;
}

void ClusterState::Release(const Allocation& a) {
  const size_t i = a.node.index();
  const bool indexed = pos_whole_[i] != kNotIndexed;
  if (indexed) Unindex(a.node);
  NodeState& s = nodes_[i];
  for (auto [g, milli] : a.gpus) {
    int16_t& f = s.gpu_free[size_t(g)];
    f = static_cast<int16_t>(f + milli);
    MERIDIAN_CHECK(f <= 1000, "GPU released twice");
    if (f == 1000) ++s.whole_free_gpus;
  }
  s.free += a.resources;
  MERIDIAN_CHECK(fleet_->node(a.node).capacity.Contains(s.free) && s.tasks > 0,
                 "allocation released twice");
  --s.tasks;
  region_used_[fleet_->node(a.node).region.index()] -= a.resources;
  total_used_ -= a.resources;
  if (indexed) Index(a.node);
}

void ClusterState::Restore(const Allocation& a) {
  const size_t i = a.node.index();
  const bool indexed = pos_whole_[i] != kNotIndexed;
  if (indexed) Unindex(a.node);
  NodeState& s = nodes_[i];
  for (auto [g, milli] : a.gpus) {
    int16_t& f = s.gpu_free[size_t(g)];
    MERIDIAN_CHECK(f >= milli, "Restore: GPU no longer free");
    if (f == 1000) --s.whole_free_gpus;
    f = static_cast<int16_t>(f - milli);
  }
  s.free -= a.resources;
  MERIDIAN_CHECK(s.free.NonNegative(), "Restore: node over-committed");
  ++s.tasks;
  region_used_[fleet_->node(a.node).region.index()] += a.resources;
  total_used_ += a.resources;
  if (indexed) Index(a.node);
}

void ClusterState::SetHealthy(NodeId id, bool healthy) {
  if (healthy_[id.index()] == healthy) return;
  healthy_[id.index()] = healthy;
  if (healthy)
    Index(id);
  else
    Unindex(id);
}

}  // namespace meridian
