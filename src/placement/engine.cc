#include "placement/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<PlacementEngine>> PlacementEngine::Create(
    const PolicyRegistry& registry, EngineOptions options) {
  if (options.max_candidates < 1 || options.max_candidates > 100000)
    return absl::InvalidArgumentError("max_candidates must be in 1..100000");
  std::unique_ptr<PlacementEngine> e(new PlacementEngine());
  for (const std::string& name : options.filters) {
    auto f = registry.MakeFilter(name);
    if (!f.ok()) return f.status();
    e->filters_.push_back(*std::move(f));
  }
  for (const ScorerSpec& spec : options.scorers) {
    if (!(spec.weight >= 0) || spec.weight > 1e6)
      return absl::InvalidArgumentError(
          absl::StrCat("scorer ", spec.name, ": weight must be in [0, 1e6]"));
    auto s = registry.MakeScorer(spec.name, spec.options);
    if (!s.ok()) return s.status();
    e->scorers_.push_back(*std::move(s));
    e->weights_.push_back(spec.weight);
  }
  auto sel = registry.MakeSelector(options.selector, options.selector_options);
  if (!sel.ok()) return sel.status();
  e->selector_ = *std::move(sel);
  e->options_ = std::move(options);
  return e;
}

bool PlacementEngine::PlaceOne(ClusterState& state, const Job& job, const RegionShare& share,
                               std::span<const TaskClass> task_mix, Rng& rng, bool record_parts,
                               std::vector<Allocation>& gang, ReplicaPlacement* out) const {
  const Fleet& fleet = state.fleet();
  PlacementContext ctx{fleet, state, job, gang, task_mix};
  candidates_.clear();
  if (seen_.size() != fleet.nodes().size()) seen_.assign(fleet.nodes().size(), 0);
  if (++epoch_ == 0) {  // wrapped: forget every old mark
    std::fill(seen_.begin(), seen_.end(), 0);
    epoch_ = 1;
  }
  auto feasible = [&](NodeId id) {
    for (const auto& f : filters_)
      if (!f->Feasible(ctx, id)) return false;
    return true;
  };
  auto consider = [&](NodeId id) {
    uint32_t& mark = seen_[id.index()];
    if (mark == epoch_) return;
    mark = epoch_;
    if (feasible(id)) candidates_.push_back(id);
  };
  // Nodes already holding the gang come first: packing a gang is usually best.
  for (const Allocation& a : gang)
    if (fleet.node(a.node).region == share.region) consider(a.node);

  const size_t half = size_t(std::max(1, options_.max_candidates / 2));
  // Pools the tightest-first walk saw whole need no loosest-first walk.
  exhausted_.clear();
  auto gather = [&](int pool, bool tightest) {
    if (!tightest && std::find(exhausted_.begin(), exhausted_.end(), pool) != exhausted_.end())
      return;
    size_t limit = candidates_.size() + half;
    bool stopped = false;
    state.ForEachCandidate(pool, job.shape, tightest, [&](NodeId id) {
      consider(id);
      stopped = candidates_.size() >= limit;
      return !stopped;
    });
    if (tightest && !stopped) exhausted_.push_back(pool);
  };
  auto pools_of_share = [&](auto&& fn) {
    if (share.gpu_type.Valid() || job.shape.gpus > 0) {
      if (share.gpu_type.Valid()) {
        int p = state.FindPool(share.region, share.gpu_type);
        if (p >= 0) fn(p);
      } else {
        for (int p : state.region_pools(share.region))
          if (state.pool_gpu_type(p).Valid()) fn(p);
      }
    } else {
      for (int p : state.region_pools(share.region)) fn(p);
    }
  };
  pools_of_share([&](int p) { gather(p, true); });
  pools_of_share([&](int p) { gather(p, false); });
  if (candidates_.empty()) return false;
  if (options_.cpu_jobs_on_cpu_nodes_first && job.shape.gpus == 0) {
    // CPU-only work takes GPU nodes only when no CPU-only node can hold it, so
    // it never strands GPUs behind the CPU it uses.
    auto on_gpu_node = [&](NodeId id) { return fleet.node(id).gpus > 0; };
    if (!std::all_of(candidates_.begin(), candidates_.end(), on_gpu_node))
      candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(), on_gpu_node),
                        candidates_.end());
  }

  scored_.clear();
  for (NodeId id : candidates_) {
    double total = 0;
    for (size_t i = 0; i < scorers_.size(); ++i)
      if (weights_[i] > 0) total += weights_[i] * scorers_[i]->Score(ctx, id);
    scored_.push_back({id, total});
  }
  const ScoredCandidate chosen = scored_[selector_->Select(scored_, rng)];
  if (out) {
    out->score = chosen.score;
    out->parts.clear();
    if (record_parts)
      for (size_t i = 0; i < scorers_.size(); ++i)
        out->parts.push_back({scorers_[i]->name(), weights_[i], scorers_[i]->Score(ctx, chosen.node)});
  }
  int gpu = -1;
  if (job.shape.fractional())
    for (size_t i = 0; i < scorers_.size() && gpu < 0; ++i)
      if (weights_[i] > 0) gpu = scorers_[i]->ChooseGpu(ctx, chosen.node);
  gang.push_back(state.Allocate(chosen.node, job.shape, gpu));
  if (out) out->allocation = gang.back();
  return true;
}

bool PlacementEngine::PlaceGang(ClusterState& state, const Job& job,
                                std::span<const RegionShare> shares,
                                std::span<const TaskClass> task_mix, Rng& rng, bool record_parts,
                                std::vector<ReplicaPlacement>* out) const {
  gang_.clear();
  const size_t out_start = out ? out->size() : 0;
  for (const RegionShare& share : shares) {
    for (int32_t i = 0; i < share.replicas; ++i) {
      ReplicaPlacement rp;
      if (!PlaceOne(state, job, share, task_mix, rng, record_parts, gang_, out ? &rp : nullptr)) {
        for (const Allocation& a : gang_) state.Release(a);  // rollback
        gang_.clear();
        if (out) out->resize(out_start);
        return false;
      }
      if (out) out->push_back(std::move(rp));
    }
  }
  gang_.clear();
  return true;
}

int32_t PlacementEngine::CountFit(ClusterState& state, const Job& job, RegionId region,
                                  GpuTypeId gpu_type, int32_t limit,
                                  std::span<const TaskClass> task_mix, Rng& rng) const {
  std::vector<Allocation> gang;
  RegionShare share{region, gpu_type, 1};
  int32_t n = 0;
  while (n < limit && PlaceOne(state, job, share, task_mix, rng, false, gang, nullptr)) ++n;
  for (const Allocation& a : gang) state.Release(a);
  return n;
}

RegionExplanation PlacementEngine::Explain(const ClusterState& state, const Job& job,
                                           RegionId region) const {
  RegionExplanation ex;
  ex.region = region;
  PlacementContext ctx{state.fleet(), state, job, {}, {}};
  std::vector<int32_t> removed(filters_.size(), 0);
  for (NodeId id : state.fleet().region_nodes(region)) {
    ++ex.nodes_total;
    bool ok = true;
    for (size_t i = 0; i < filters_.size() && ok; ++i)
      if (!filters_[i]->Feasible(ctx, id)) {
        ++removed[i];
        ok = false;
      }
    ex.nodes_fitting += ok;
  }
  for (size_t i = 0; i < filters_.size(); ++i)
    if (removed[i] > 0) ex.removed.push_back({filters_[i]->name(), removed[i]});
  return ex;
}

}  // namespace meridian
