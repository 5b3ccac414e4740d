#include "testing/invariants.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace meridian::test {

namespace {

bool HasRoom(const NodeState& n, const TaskShape& shape) {
  if (shape.gpus == 0) return true;
  if (shape.fractional()) {
    for (int16_t g : n.gpu_free)
      if (g >= shape.gpu_milli) return true;
    return false;
  }
  int whole = 0;
  for (int16_t g : n.gpu_free) whole += (g == 1000);
  return whole >= shape.gpus;
}

bool HasPartialRoom(const NodeState& n, const TaskShape& shape) {
  for (int16_t g : n.gpu_free)
    if (g >= shape.gpu_milli && g < 1000) return true;
  return false;
}

std::string ShapeName(const TaskShape& s) {
  return s.fractional() ? absl::StrCat(s.gpu_milli, "m") : absl::StrCat(s.gpus, "gpu");
}

std::vector<int> AllPools(const ClusterState& state) {
  std::vector<int> pools;
  for (size_t r = 0; r < state.fleet().regions().size(); ++r)
    for (int p : state.region_pools(RegionId(static_cast<int32_t>(r)))) pools.push_back(p);
  return pools;
}

}  // namespace

std::vector<NodeId> BruteForceCandidates(const ClusterState& state, int pool,
                                         const TaskShape& shape) {
  std::vector<NodeId> out;
  for (size_t i = 0; i < state.fleet().nodes().size(); ++i) {
    NodeId id(static_cast<int32_t>(i));
    if (state.node_pool(id) == pool && state.healthy(id) && HasRoom(state.node(id), shape))
      out.push_back(id);
  }
  return out;
}

std::vector<std::string> CheckCapacityIndex(const ClusterState& state) {
  std::vector<std::string> bad;
  const TaskShape shapes[] = {{0, 0, 0, 1000},   {0, 0, 1, 1000}, {0, 0, 2, 1000},
                              {0, 0, 4, 1000},   {0, 0, 8, 1000}, {0, 0, 1, 250},
                              {0, 0, 1, 500},    {0, 0, 1, 900}};
  for (int pool : AllPools(state)) {
    int64_t free = 0;
    for (size_t i = 0; i < state.fleet().nodes().size(); ++i) {
      NodeId id(static_cast<int32_t>(i));
      if (state.node_pool(id) == pool && state.healthy(id)) free += state.node(id).free.gpu_milli;
    }
    if (free != state.pool_free_gpu_milli(pool))
      bad.push_back(absl::StrCat("pool ", pool, ": free GPU milli ", state.pool_free_gpu_milli(pool),
                                 ", recomputed ", free));
    for (const TaskShape& shape : shapes) {
      const std::vector<NodeId> want = BruteForceCandidates(state, pool, shape);
      for (bool tightest : {true, false}) {
        std::vector<NodeId> got;
        state.ForEachCandidate(pool, shape, tightest, [&](NodeId id) {
          got.push_back(id);
          return true;
        });
        const std::string where = absl::StrCat("pool ", pool, " shape ", ShapeName(shape),
                                               tightest ? " tightest" : " loosest", ": ");
        std::set<NodeId> unique(got.begin(), got.end());
        if (unique.size() != got.size())
          bad.push_back(absl::StrCat(where, got.size() - unique.size(), " node(s) visited twice"));
        if (!std::equal(unique.begin(), unique.end(), want.begin(), want.end()))
          bad.push_back(absl::StrCat(where, "visited ", unique.size(), " distinct nodes, ",
                                     want.size(), " have room"));
        // Order: by wholly free GPUs; for a fractional shape, tightest first
        // starts with the nodes whose partly used GPU has room.
        auto key = [&](NodeId id) {
          const NodeState& n = state.node(id);
          if (tightest && shape.fractional() && HasPartialRoom(n, shape)) return -1;
          return n.whole_free_gpus;
        };
        for (size_t i = 1; i < got.size(); ++i) {
          int a = key(got[i - 1]), b = key(got[i]);
          if (tightest ? a > b : a < b) {
            bad.push_back(absl::StrCat(where, "out of order at position ", i));
            break;
          }
        }
      }
    }
  }
  return bad;
}

std::vector<std::string> CheckStateMatches(const ClusterState& state,
                                           std::span<const Allocation> allocations) {
  std::vector<std::string> bad;
  const Fleet& fleet = state.fleet();
  const size_t n = fleet.nodes().size();
  std::vector<Resources> used(n);
  std::vector<std::vector<int64_t>> gpu_used(n);
  std::vector<int32_t> tasks(n, 0);
  std::vector<Resources> region_used(fleet.regions().size());
  Resources total;
  for (size_t i = 0; i < n; ++i) gpu_used[i].assign(size_t(fleet.nodes()[i].gpus), 0);
  for (const Allocation& a : allocations) {
    const size_t i = a.node.index();
    used[i] += a.resources;
    ++tasks[i];
    region_used[fleet.node(a.node).region.index()] += a.resources;
    total += a.resources;
    int64_t milli = 0;
    for (auto [g, m] : a.gpus) {
      if (g < 0 || size_t(g) >= gpu_used[i].size()) {
        bad.push_back(absl::StrCat("node ", fleet.node(a.node).name, ": GPU index ", g,
                                   " out of range"));
        continue;
      }
      gpu_used[i][size_t(g)] += m;
      milli += m;
    }
    if (milli != a.resources.gpu_milli)
      bad.push_back(absl::StrCat("allocation on ", fleet.node(a.node).name, ": GPUs sum to ",
                                 milli, " milli, resources say ", a.resources.gpu_milli));
  }
  for (size_t i = 0; i < n; ++i) {
    const Node& node = fleet.nodes()[i];
    const NodeState& s = state.node(NodeId(static_cast<int32_t>(i)));
    if (!node.capacity.Contains(used[i]))
      bad.push_back(absl::StrCat("node ", node.name, " over-committed: uses ", used[i].ToString(),
                                 " of ", node.capacity.ToString()));
    if (!(s.free == node.capacity - used[i]))
      bad.push_back(absl::StrCat("node ", node.name, ": free ", s.free.ToString(),
                                 ", recomputed ", (node.capacity - used[i]).ToString()));
    if (s.tasks != tasks[i])
      bad.push_back(absl::StrCat("node ", node.name, ": ", s.tasks, " tasks, recomputed ", tasks[i]));
    int whole = 0;
    for (size_t g = 0; g < gpu_used[i].size(); ++g) {
      if (gpu_used[i][g] > 1000)
        bad.push_back(absl::StrCat("node ", node.name, " GPU ", g, " over-committed: ",
                                   gpu_used[i][g], " milli"));
      if (g >= s.gpu_free.size() || s.gpu_free[g] != 1000 - gpu_used[i][g])
        bad.push_back(absl::StrCat("node ", node.name, " GPU ", g, ": free milli disagrees"));
      whole += gpu_used[i][g] == 0;
    }
    if (s.whole_free_gpus != whole)
      bad.push_back(absl::StrCat("node ", node.name, ": ", s.whole_free_gpus,
                                 " whole free GPUs, recomputed ", whole));
  }
  for (size_t r = 0; r < region_used.size(); ++r)
    if (!(state.region_used(RegionId(static_cast<int32_t>(r))) == region_used[r]))
      bad.push_back(absl::StrCat("region ", fleet.regions()[r].name, ": used disagrees"));
  if (!(state.total_used() == total)) bad.push_back("total used disagrees");
  return bad;
}

std::vector<std::string> CheckSchedulerInvariants(const Scheduler& s) {
  std::vector<std::string> bad;
  const ClusterState& state = s.state();
  const Fleet& fleet = state.fleet();
  std::vector<Allocation> all;
  std::vector<Resources> usage(s.num_tenants());
  for (JobId id : s.pending())
    if (!s.allocations(id).empty())
      bad.push_back(absl::StrCat("pending job ", id.value(), " holds allocations"));
  for (JobId id : s.running()) {
    const Job& job = *s.job(id);
    const auto& allocs = s.allocations(id);
    const std::string who = absl::StrCat("running job '", job.name, "': ");
    if (allocs.size() != size_t(job.replicas))
      bad.push_back(absl::StrCat(who, allocs.size(), " allocations for ", job.replicas,
                                 " replicas"));
    usage[job.tenant.index()] += job.Demand();
    for (const Allocation& a : allocs) {
      all.push_back(a);
      const Node& node = fleet.node(a.node);
      const std::string on = absl::StrCat(who, "replica on ", node.name, ": ");
      if (!(a.resources == job.shape.AsResources()))
        bad.push_back(absl::StrCat(on, "allocation ", a.resources.ToString(), " is not its shape"));
      if (!state.healthy(a.node)) bad.push_back(absl::StrCat(on, "node is unhealthy"));
      if (!job.AllowsRegion(node.region)) bad.push_back(absl::StrCat(on, "residency violated"));
      if (node.spot && !job.spot_allowed) bad.push_back(absl::StrCat(on, "spot not allowed"));
      for (const std::string& t : node.taints)
        if (std::find(job.tolerations.begin(), job.tolerations.end(), t) ==
            job.tolerations.end())
          bad.push_back(absl::StrCat(on, "taint '", t, "' not tolerated"));
      if (job.shape.gpus > 0 && (!node.gpu_type.Valid() || job.SpeedOn(node.gpu_type) <= 0))
        bad.push_back(absl::StrCat(on, "GPU type not allowed"));
      if (job.shape.fractional()) {
        if (a.gpus.size() != 1 || a.gpus[0].second != job.shape.gpu_milli)
          bad.push_back(absl::StrCat(on, "fractional share not on exactly one GPU"));
      } else if (a.gpus.size() != size_t(job.shape.gpus)) {
        bad.push_back(absl::StrCat(on, a.gpus.size(), " GPUs for ", job.shape.gpus));
      }
    }
  }
  for (size_t t = 0; t < s.num_tenants(); ++t) {
    const TenantId tid(static_cast<int32_t>(t));
    if (!(s.tenant_usage(tid) == usage[t]))
      bad.push_back(absl::StrCat("tenant ", s.tenant(tid).name, ": usage ",
                                 s.tenant_usage(tid).ToString(), ", running jobs sum to ",
                                 usage[t].ToString()));
    const Tenant& spec = s.tenant(tid);
    if (!(spec.guarantee + spec.borrow_limit).Contains(usage[t]))
      bad.push_back(absl::StrCat("tenant ", spec.name, " over quota"));
  }
  for (std::string& line : CheckStateMatches(state, all)) bad.push_back(std::move(line));
  return bad;
}

}  // namespace meridian::test
