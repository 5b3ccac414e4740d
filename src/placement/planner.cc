#include "placement/planner.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace meridian {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
// Assumed for region pairs without a measured link: pessimistic, documented.
constexpr double kUnknownLinkGbps = 1.0;
constexpr double kUnknownLinkEgressUsdPerGb = 0.12;
constexpr double kUnknownLinkRttMs = 1000.0;

// Resource the ceiling applies to: GPUs for GPU jobs, CPU otherwise.
int64_t CeilingAmount(const Resources& r, bool gpu) { return gpu ? r.gpu_milli : r.cpu_milli; }

// Tie-break between GPU types that rank equal for a job (a job that runs at
// the same speed on every type, e.g. a heterogeneity-unaware policy's): a
// per-job pseudo-random order from the job id and the type's name (FNV-1a),
// so neither the order of types in the fleet file nor their names favour one.
uint64_t TypeTieKey(JobId job, const std::string& type_name) {
  uint64_t h = 1469598103934665603ULL ^ uint64_t(uint32_t(job.value()));
  for (unsigned char c : type_name) h = (h ^ c) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}
}  // namespace

RegionPlanner::RegionPlanner(const Fleet* fleet, const PlacementEngine* engine,
                             PlannerOptions options)
    : fleet_(fleet), engine_(engine), options_(options) {
  const size_t ntypes = fleet->gpu_types().size();
  prices_.assign(fleet->regions().size(), std::vector<std::pair<double, double>>(ntypes + 1, {0, 0}));
  auto take_min = [](double& slot, double v) {
    if (v > 0 && (slot == 0 || v < slot)) slot = v;
  };
  for (const NodeGroup& g : fleet->groups()) {
    size_t slot = g.gpu_type.Valid() ? g.gpu_type.index() + 1 : 0;
    double per = g.gpus_per_node > 0 ? double(g.gpus_per_node) : double(g.cpu_milli) / 1000.0;
    auto& p = prices_[g.region.index()][slot];
    if (g.count > 0) take_min(p.first, g.price_hour / per);
    if (g.spot_count > 0) take_min(p.second, g.spot_price_hour / per);
  }
}

double RegionPlanner::PricePerGpuHour(RegionId region, GpuTypeId gpu_type, bool spot) const {
  const auto& p = prices_[region.index()][gpu_type.Valid() ? gpu_type.index() + 1 : 0];
  if (spot && p.second > 0 && (p.first == 0 || p.second < p.first)) return p.second;
  return p.first > 0 ? p.first : p.second;
}

std::vector<RegionEstimate> RegionPlanner::Rank(const ClusterState& state, const Job& job,
                                                const WaitEstimator* waits) const {
  std::vector<RegionEstimate> out;
  const bool gpu_job = job.shape.gpus > 0;
  const Resources demand = job.Demand();
  for (size_t ri = 0; ri < fleet_->regions().size(); ++ri) {
    RegionId r(static_cast<int32_t>(ri));
    if (!job.AllowsRegion(r) || fleet_->region_nodes(r).empty()) continue;
    auto add = [&](GpuTypeId type, double speed, int64_t free_amount) {
      RegionEstimate e;
      e.region = r;
      e.gpu_type = type;
      e.speed = speed;
      e.runtime_s = job.duration_s / speed;
      int64_t need = gpu_job ? demand.gpu_milli : demand.cpu_milli;
      if (free_amount >= need)
        e.wait_s = 0;
      else if (waits != nullptr)
        e.wait_s = waits->EstimateWaitSeconds(state, job, r, type);
      else
        e.wait_s = e.runtime_s;  // no information: assume one job length
      if (job.dataset.Valid()) {
        const Dataset& d = fleet_->dataset(job.dataset);
        if (d.home != r) {
          const Link& l = fleet_->link(d.home, r);
          double gbps = l.known ? l.gbps : kUnknownLinkGbps;
          double egress = l.known ? l.egress_usd_per_gb : kUnknownLinkEgressUsdPerGb;
          e.transfer_s = d.size_gb * 8.0 / gbps + (l.known ? l.rtt_ms : kUnknownLinkRttMs) / 1000.0;
          e.egress_usd = d.size_gb * egress;
        }
      }
      e.completion_s = e.wait_s + e.transfer_s + e.runtime_s;
      double price = PricePerGpuHour(r, type, job.spot_allowed);
      double units = gpu_job ? double(demand.gpu_milli) / 1000.0 : double(demand.cpu_milli) / 1000.0;
      e.compute_usd = units * (e.runtime_s / 3600.0) * price;
      e.cost_usd = e.compute_usd + e.egress_usd;
      out.push_back(e);
    };
    if (!gpu_job) {
      int64_t free_cpu = fleet_->region_capacity(r).cpu_milli - state.region_used(r).cpu_milli;
      add(GpuTypeId(), 1.0, free_cpu);
      continue;
    }
    for (int p : state.region_pools(r)) {
      GpuTypeId type = state.pool_gpu_type(p);
      if (!type.Valid()) continue;
      double speed = job.SpeedOn(type);
      if (speed <= 0) continue;
      add(type, speed, state.pool_free_gpu_milli(p));
    }
  }
  if (out.empty()) return out;
  double best_cost = kInf, best_time = kInf;
  for (const RegionEstimate& e : out) {
    best_cost = std::min(best_cost, e.cost_usd);
    best_time = std::min(best_time, e.completion_s);
  }
  for (RegionEstimate& e : out) {
    switch (job.objective) {
      case Objective::kCost:
        e.rank_key = e.cost_usd + 1e-9 * e.completion_s;
        break;
      case Objective::kTime:
        e.rank_key = e.completion_s + 1e-9 * e.cost_usd;
        break;
      case Objective::kWeighted: {
        double c = best_cost > 0 ? e.cost_usd / best_cost : 1.0;
        double t = best_time > 0 ? e.completion_s / best_time : 1.0;
        e.rank_key = job.cost_weight * c + (1.0 - job.cost_weight) * t;
        break;
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [&](const RegionEstimate& a, const RegionEstimate& b) {
    if (a.rank_key != b.rank_key) return a.rank_key < b.rank_key;
    if (a.region != b.region) return a.region < b.region;
    if (a.gpu_type == b.gpu_type) return false;
    if (options_.type_ties == PlannerOptions::TypeTies::kFleetOrder)
      return a.gpu_type.value() < b.gpu_type.value();
    if (options_.type_ties == PlannerOptions::TypeTies::kByName)
      return fleet_->gpu_type_name(a.gpu_type) < fleet_->gpu_type_name(b.gpu_type);
    return TypeTieKey(job.id, fleet_->gpu_type_name(a.gpu_type)) <
           TypeTieKey(job.id, fleet_->gpu_type_name(b.gpu_type));
  });
  return out;
}

bool RegionPlanner::UnderCeiling(const ClusterState& state, const Job& job, RegionId r,
                                 int32_t replicas) const {
  double ceiling = fleet_->region(r).utilization_ceiling;
  if (ceiling >= 1.0) return true;
  bool gpu = job.shape.gpus > 0;
  double cap = double(CeilingAmount(fleet_->region_capacity(r), gpu));
  double after = double(CeilingAmount(state.region_used(r), gpu)) +
                 double(CeilingAmount(job.shape.AsResources(), gpu)) * replicas;
  return after <= ceiling * cap + 1e-9;
}

Plan RegionPlanner::PlaceOnly(ClusterState& state, const Job& job,
                              std::span<const RegionEstimate> options,
                              std::span<const TaskClass> task_mix, Rng& rng) const {
  Plan plan;
  for (const RegionEstimate& e : options) {
    if (!UnderCeiling(state, job, e.region, job.replicas)) continue;
    RegionShare share{e.region, e.gpu_type, job.replicas};
    if (engine_->PlaceGang(state, job, {&share, 1}, task_mix, rng, options_.record_score_parts,
                           &plan.replicas)) {
      plan.placed = true;
      plan.shares = {share};
      plan.est_cost_usd = e.cost_usd;
      plan.est_completion_s = e.completion_s;
      return plan;
    }
  }
  if (!job.cross_region_allowed || job.replicas < 2 || options.size() < 2) return plan;

  // Split: how many replicas each region (its best-ranked GPU type) can take now.
  struct Slot {
    const RegionEstimate* e;
    int32_t fit;
  };
  std::vector<Slot> slots;
  for (const RegionEstimate& e : options) {
    bool seen = false;
    for (const Slot& s : slots) seen |= s.e->region == e.region;
    if (seen) continue;
    int32_t fit = engine_->CountFit(state, job, e.region, e.gpu_type, job.replicas, task_mix, rng);
    while (fit > 0 && !UnderCeiling(state, job, e.region, fit)) --fit;
    if (fit > 0) slots.push_back({&e, fit});
  }
  auto rtt = [&](RegionId a, RegionId b) {
    const Link& l = fleet_->link(a, b);
    return l.known ? l.rtt_ms : kUnknownLinkRttMs;
  };
  std::vector<size_t> chosen;
  // Two regions: the best-connected pair that holds the gang.
  double best_rtt = kInf;
  for (size_t i = 0; i < slots.size(); ++i)
    for (size_t j = i + 1; j < slots.size(); ++j)
      if (slots[i].fit + slots[j].fit >= job.replicas) {
        double d = rtt(slots[i].e->region, slots[j].e->region);
        if (d < best_rtt) best_rtt = d, chosen = {i, j};
      }
  // More regions: greedy from the largest, adding the best-connected next.
  if (chosen.empty() && options_.max_split_regions > 2 && !slots.empty()) {
    size_t seed = 0;
    for (size_t i = 1; i < slots.size(); ++i)
      if (slots[i].fit > slots[seed].fit) seed = i;
    chosen = {seed};
    int32_t total = slots[seed].fit;
    while (total < job.replicas && int32_t(chosen.size()) < options_.max_split_regions) {
      size_t next = slots.size();
      double next_rtt = kInf;
      for (size_t i = 0; i < slots.size(); ++i) {
        if (std::find(chosen.begin(), chosen.end(), i) != chosen.end()) continue;
        double worst = 0;
        for (size_t c : chosen) worst = std::max(worst, rtt(slots[c].e->region, slots[i].e->region));
        if (worst < next_rtt || (worst == next_rtt && next < slots.size() && slots[i].fit > slots[next].fit))
          next = i, next_rtt = worst;
      }
      if (next == slots.size()) break;
      chosen.push_back(next);
      total += slots[next].fit;
    }
    if (total < job.replicas) chosen.clear();
  }
  if (chosen.empty()) return plan;
  std::sort(chosen.begin(), chosen.end());  // keep rank order
  int32_t left = job.replicas;
  std::vector<RegionShare> shares;
  double cost = 0, completion = 0;
  for (size_t c : chosen) {
    int32_t take = std::min(left, slots[c].fit);
    if (take == 0) continue;
    shares.push_back({slots[c].e->region, slots[c].e->gpu_type, take});
    cost += slots[c].e->cost_usd * take / job.replicas;
    // The split places now: no queue wait, only transfer and runtime.
    completion = std::max(completion, slots[c].e->transfer_s + slots[c].e->runtime_s);
    left -= take;
  }
  if (engine_->PlaceGang(state, job, shares, task_mix, rng, options_.record_score_parts,
                         &plan.replicas)) {
    plan.placed = true;
    plan.cross_region = shares.size() > 1;
    plan.shares = std::move(shares);
    plan.est_cost_usd = cost;
    plan.est_completion_s = completion;
  }
  return plan;
}

Plan RegionPlanner::PlaceJob(ClusterState& state, const Job& job, const WaitEstimator* waits,
                             std::span<const TaskClass> task_mix, Rng& rng, bool explain) const {
  std::vector<RegionEstimate> ranked = Rank(state, job, waits);
  Plan plan = PlaceOnly(state, job, ranked, task_mix, rng);
  plan.ranked = std::move(ranked);
  if (!plan.placed && explain)
    for (size_t ri = 0; ri < fleet_->regions().size(); ++ri)
      plan.why_not.push_back(ExplainRegion(state, job, RegionId(static_cast<int32_t>(ri))));
  return plan;
}

RegionExplanation RegionPlanner::ExplainRegion(const ClusterState& state, const Job& job,
                                               RegionId r) const {
  if (!job.AllowsRegion(r)) {
    RegionExplanation ex;
    ex.region = r;
    ex.nodes_total = static_cast<int32_t>(fleet_->region_nodes(r).size());
    std::vector<std::string> names;
    for (RegionId a : job.allowed_regions) names.push_back(fleet_->region(a).name);
    ex.notes.push_back(absl::StrCat("residency: job may only run in ", absl::StrJoin(names, ", ")));
    return ex;
  }
  RegionExplanation ex = engine_->Explain(state, job, r);
  if (!UnderCeiling(state, job, r, job.replicas)) {
    bool gpu = job.shape.gpus > 0;
    double cap = double(CeilingAmount(fleet_->region_capacity(r), gpu));
    ex.notes.push_back(absl::StrFormat(
        "utilization ceiling %.0f%% would be exceeded (in use %.0f%%, job adds %.1f%%)",
        100 * fleet_->region(r).utilization_ceiling,
        cap > 0 ? 100.0 * double(CeilingAmount(state.region_used(r), gpu)) / cap : 0.0,
        cap > 0 ? 100.0 * double(CeilingAmount(job.Demand(), gpu)) / cap : 0.0));
  }
  if (ex.nodes_fitting > 0 && ex.notes.empty())
    ex.notes.push_back(absl::StrCat(ex.nodes_fitting, " node(s) could take a replica, but not all ",
                                    job.replicas, " replicas of the gang at once"));
  return ex;
}

}  // namespace meridian
