#include "sim/sim_policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meridian::sim {

absl::Status SimPolicyRegistry::Register(std::string name, Factory factory) {
  if (factories_.contains(name))
    return absl::AlreadyExistsError(absl::StrCat("simulation policy '", name, "' already registered"));
  factories_.emplace(std::move(name), std::move(factory));
  return absl::OkStatus();
}

absl::StatusOr<SimPolicy> SimPolicyRegistry::Make(const std::string& name) const {
  auto it = factories_.find(name);
  if (it == factories_.end())
    return absl::NotFoundError(absl::StrCat("unknown policy '", name,
                                            "'; known: ", absl::StrJoin(Names(), ", ")));
  SimPolicy p = it->second();
  p.name = name;
  return p;
}

void SimPolicyRegistry::SetRoundAllocator(const std::string& name, std::string allocator) {
  auto it = factories_.find(name);
  if (it == factories_.end()) std::abort();  // a programming error
  it->second = [f = it->second, allocator = std::move(allocator)] {
    SimPolicy p = f();
    p.round_allocator = allocator;
    return p;
  };
}

std::vector<std::string> SimPolicyRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : factories_) out.push_back(k);
  return out;
}

namespace {

// The simulator asks for no explanations and bounds each pass.
SchedulerOptions Base(std::string queue) {
  SchedulerOptions o;
  o.queue_policy = std::move(queue);
  o.explain = false;
  o.enable_preemption = false;
  o.enable_backfill = true;
  o.max_waiting_per_pass = 64;
  return o;
}

// Packing profiles score every feasible node (up to 2048 per pool from each
// end, which covers the openb pools of 549 and 404 nodes) and break score ties
// at random, as kube-scheduler does in the FGD authors' simulator. No
// backfill: each job is tried when it arrives and after capacity is freed,
// never held back by a reservation (whose start, estimated from durations,
// means nothing when jobs never depart, as in the FGD method).
SchedulerOptions Packing(std::vector<ScorerSpec> scorers) {
  SchedulerOptions o = Base("fifo");
  o.enable_backfill = false;
  o.engine.max_candidates = 4096;
  o.engine.scorers = std::move(scorers);
  o.engine.selector = "max_score";
  o.engine.selector_options = {{"ties", "random"}};
  // Tied GPU types in the fleet's order, as the packing baselines iterate
  // their node lists (per-job random ties cost fgd 0.2 points on openb).
  o.planner.type_ties = PlannerOptions::TypeTies::kFleetOrder;
  return o;
}

// Gives an already registered policy a round mode.
void RoundMode(SimPolicyRegistry& r, const std::string& name, std::string allocator) {
  r.SetRoundAllocator(name, std::move(allocator));
}

}  // namespace

void RegisterBuiltinSimPolicies(SimPolicyRegistry& r) {
  auto add = [&](const char* name, const char* desc, std::function<SchedulerOptions()> opts,
                 std::optional<Objective> objective = std::nullopt) {
    auto s = r.Register(name, [=] { return SimPolicy{name, desc, opts(), objective}; });
    if (!s.ok()) std::abort();  // registered twice: a programming error
  };
  add("fifo", "first come first served, EASY backfill, no preemption", [] { return Base("fifo"); });
  RoundMode(r, "fifo", "fifo");
  add("sjf", "shortest (oracle) duration first, EASY backfill, no preemption",
      [] { return Base("sjf"); });
  add("tiresias",
      "Tiresias-style discretized 2D-LAS: least attained GPU-service first, preemptive, no "
      "duration knowledge",
      [] {
        SchedulerOptions o = Base("las");
        o.enable_preemption = true;
        o.enable_backfill = false;
        return o;
      });
  RoundMode(r, "tiresias", "tiresias");
  add("drf", "weighted dominant-resource fairness across tenants, preemption by priority",
      [] {
        SchedulerOptions o = Base("drf");
        o.enable_preemption = true;
        return o;
      });
  add("fgd",
      "fragmentation gradient descent (FGD, Weng et al. ATC '23), CPU-aware: least growth of the "
      "expected GPU fragment plus twice the GPU capacity a pod's CPU takes in proportion, FIFO",
      [] {
        return Packing({{"fragmentation", 1.0, {}}});
      });
  add("fgd_published",
      "FGD exactly as published (no CPU-share term), FIFO: the paper's measure alone", [] {
        return Packing({{"fragmentation", 1.0, {{"cpu_share", "0"}}}});
      });
  add("best_fit",
      "best-fit bin packing as the FGD authors' baseline (least CPU and GPU left, by the "
      "largest node), CPU-aware (cpu_share 2), FIFO",
      [] {
        return Packing({{"best_fit", 1.0, {{"normalize", "fleet"}, {"cpu_share", "2"}}}});
      });
  add("dot_product", "Tetris dot-product alignment, FIFO",
      [] { return Packing({{"dot_product", 1.0, {}}}); });
  add("random", "uniformly random feasible node, FIFO", [] {
    SchedulerOptions o = Packing({});
    o.engine.selector = "random_top";
    o.engine.selector_options = {{"k", "100000"}};
    return o;
  });
  add("cheapest", "greedy cheapest region for every job (as SkyPilot's optimizer does)",
      [] { return Base("fifo"); }, Objective::kCost);
  add("fastest", "fastest estimated completion region for every job",
      [] { return Base("fifo"); }, Objective::kTime);
  add("meridian",
      "Meridian's planner: cost and completion time weighed together, data locality and "
      "topology scoring, DRF across tenants",
      [] { return Base("drf"); }, Objective::kWeighted);
  // Same queue as fifo, which is its heterogeneity-unaware baseline; the only
  // difference is that the planner sees each job's true per-type speeds.
  auto gavel = r.Register("gavel", [] {
    SimPolicy p{"gavel",
                "heterogeneity-aware (Gavel-style): plans with each job's measured per-GPU-type "
                "throughput",
                Base("fifo"), Objective::kTime};
    p.heterogeneity_aware = true;
    return p;
  });
  if (!gavel.ok()) std::abort();
  RoundMode(r, "gavel", "gavel");
  for (bool aware : {true, false}) {
    const char* name = aware ? "adaptive" : "adaptive_wan_blind";
    auto s = r.Register(name, [=] {
      SimPolicy p{name,
                  aware ? "goodput-adaptive (Pollux-style): resizes elastic jobs each round where "
                          "they add the most goodput, fairly; counts the WAN loss across regions"
                        : "adaptive without the WAN term: treats every region as one pool",
                  Base("fifo"), Objective::kTime};
      p.round_allocator = "adaptive";
      p.round_options = {{"wan_aware", aware ? "true" : "false"}};
      p.elastic = true;
      return p;
    });
    if (!s.ok()) std::abort();
  }
}

absl::StatusOr<SimPolicy> MakeBuiltinSimPolicy(const std::string& name) {
  SimPolicyRegistry r;
  RegisterBuiltinSimPolicies(r);
  return r.Make(name);
}

}  // namespace meridian::sim
