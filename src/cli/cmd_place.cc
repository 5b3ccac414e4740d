// meridian place --fleet F --jobs J: one scheduling pass at t=0 over the job
// mix, printing every decision with its regions, nodes and score breakdown,
// and per-region reasons for jobs that wait.
#include <cstdio>
#include <iostream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "placement/scheduler.h"
#include "spec/spec.h"

namespace meridian::cli {

namespace {

void PrintDiags(const std::vector<spec::Diagnostic>& diags) {
  for (const auto& d : diags) std::cerr << d.ToString() << "\n";
}

std::string Duration(double s) {
  if (s >= 1e11) return "never";
  if (s < 120) return absl::StrFormat("%.0fs", s);
  if (s < 7200) return absl::StrFormat("%.0fm", s / 60);
  return absl::StrFormat("%.1fh", s / 3600);
}

nlohmann::json ExplanationJson(const Fleet& fleet, const RegionExplanation& ex) {
  nlohmann::json removed = nlohmann::json::object();
  for (const FilterCount& f : ex.removed) removed[std::string(f.filter)] = f.nodes_removed;
  return {{"region", fleet.region(ex.region).name},
          {"nodes_total", ex.nodes_total},
          {"nodes_fitting", ex.nodes_fitting},
          {"removed_by_filter", removed},
          {"notes", ex.notes}};
}

std::string ExplanationText(const RegionExplanation& ex) {
  std::string s = absl::StrCat(ex.nodes_total, " nodes");
  if (!ex.removed.empty()) {
    absl::StrAppend(&s, "; removed by");
    for (const FilterCount& f : ex.removed)
      absl::StrAppend(&s, " ", std::string(f.filter), "=", f.nodes_removed);
  }
  absl::StrAppend(&s, "; ", ex.nodes_fitting, " fit one replica");
  for (const std::string& n : ex.notes) absl::StrAppend(&s, "; ", n);
  return s;
}

}  // namespace

int RunPlace(const PlaceArgs& args) {
  std::vector<spec::Diagnostic> diags;
  auto fleet = spec::LoadFleet(args.fleet, &diags);
  if (!fleet.ok()) {
    PrintDiags(diags);
    if (diags.empty()) std::cerr << fleet.status().message() << "\n";
    return kExitInvalid;
  }
  auto workload = spec::LoadWorkload(args.jobs, &*fleet, &diags);
  if (!workload.ok()) {
    PrintDiags(diags);
    if (diags.empty()) std::cerr << workload.status().message() << "\n";
    return kExitInvalid;
  }

  SchedulerOptions opts;
  opts.enable_preemption = !args.no_preemption;
  opts.enable_backfill = !args.no_backfill;
  opts.planner.record_score_parts = true;
  opts.engine.selector = args.selector;
  opts.engine.max_candidates = args.max_candidates;
  if (!args.scorers.empty()) {
    opts.engine.scorers.clear();
    for (const std::string& s : args.scorers) {
      std::vector<std::string> kv = absl::StrSplit(s, absl::MaxSplits('=', 1));
      ScorerSpec spec{kv[0], 1.0, {}};
      if (kv.size() == 2 && !absl::SimpleAtod(kv[1], &spec.weight)) {
        std::cerr << "--scorer " << s << ": weight must be a number\n";
        return kExitInvalid;
      }
      opts.engine.scorers.push_back(std::move(spec));
    }
  }
  PolicyRegistry registry;
  RegisterBuiltinPolicies(registry);
  FakeClock clock(0);
  Rng rng(args.seed);
  auto sched = Scheduler::Create(&*fleet, registry, opts, &clock, &rng);
  if (!sched.ok()) {
    std::cerr << "place: " << sched.status().message() << "\n";
    return kExitInvalid;
  }
  for (const Tenant& t : workload->tenants)
    if (auto s = (*sched)->AddTenant(t); !s.ok()) {
      std::cerr << "place: " << s.message() << "\n";
      return kExitInvalid;
    }
  for (const Job& j : workload->jobs)
    if (auto s = (*sched)->Submit(j); !s.ok()) {
      std::cerr << "place: " << s.message() << "\n";
      return kExitInvalid;
    }
  (*sched)->SetTaskMix(WorkloadTaskMix(workload->jobs));  // the whole workload is known
  std::vector<Decision> decisions = (*sched)->Schedule();
  // Present in workload order; evictions after the job that caused them.
  std::map<int32_t, Decision*> final_by_job;
  for (Decision& d : decisions) final_by_job[d.job.value()] = &d;

  const Fleet& f = *fleet;
  int placed = 0, waiting = 0;
  nlohmann::json jobs_json = nlohmann::json::array();
  for (const Job& job : workload->jobs) {
    auto it = final_by_job.find(job.id.value());
    if (it == final_by_job.end()) continue;
    const Decision& d = *it->second;
    bool running = (*sched)->IsRunning(job.id);
    running ? ++placed : ++waiting;
    nlohmann::json j{{"job", job.name},
                     {"tenant", workload->tenants[job.tenant.index()].name},
                     {"status", DecisionKindName(d.kind)},
                     {"priority", job.priority},
                     {"objective", ObjectiveName(job.objective)}};
    if (running) {
      nlohmann::json shares = nlohmann::json::array();
      for (const RegionShare& s : d.plan.shares)
        shares.push_back({{"region", f.region(s.region).name},
                          {"gpu_type", f.gpu_type_name(s.gpu_type)},
                          {"replicas", s.replicas}});
      j["regions"] = shares;
      j["cross_region"] = d.plan.cross_region;
      if (d.plan.cross_region) j["sync"] = "hierarchical";
      j["est_cost_usd"] = d.plan.est_cost_usd;
      j["est_completion_s"] = d.plan.est_completion_s;
      nlohmann::json reps = nlohmann::json::array();
      for (const ReplicaPlacement& r : d.plan.replicas) {
        nlohmann::json parts = nlohmann::json::object();
        for (const ScorePart& p : r.parts)
          parts[std::string(p.scorer)] = {{"score", p.score}, {"weight", p.weight}};
        reps.push_back({{"node", f.node(r.allocation.node).name},
                        {"region", f.region(f.node(r.allocation.node).region).name},
                        {"score", r.score},
                        {"breakdown", parts}});
      }
      j["replicas"] = reps;
      if (!d.victims.empty()) {
        nlohmann::json v = nlohmann::json::array();
        for (JobId id : d.victims) v.push_back((*sched)->job(id)->name);
        j["preempted"] = v;
      }
    } else {
      j["reasons"] = d.reasons;
      nlohmann::json why = nlohmann::json::array();
      for (const RegionExplanation& ex : d.plan.why_not) why.push_back(ExplanationJson(f, ex));
      j["why_not"] = why;
    }
    nlohmann::json ranked = nlohmann::json::array();
    for (const RegionEstimate& e : d.plan.ranked)
      ranked.push_back({{"region", f.region(e.region).name},
                        {"gpu_type", f.gpu_type_name(e.gpu_type)},
                        {"wait_s", e.wait_s},
                        {"transfer_s", e.transfer_s},
                        {"runtime_s", e.runtime_s},
                        {"completion_s", e.completion_s},
                        {"cost_usd", e.cost_usd},
                        {"egress_usd", e.egress_usd}});
    j["region_estimates"] = ranked;
    jobs_json.push_back(std::move(j));

    if (args.json) continue;
    std::cout << absl::StrFormat("job %-22s %-20s tenant=%s priority=%d objective=%s\n", job.name,
                                 running ? DecisionKindName(d.kind) : "WAITING",
                                 workload->tenants[job.tenant.index()].name, job.priority,
                                 ObjectiveName(job.objective));
    if (running) {
      std::string where;
      for (const RegionShare& s : d.plan.shares)
        absl::StrAppend(&where, where.empty() ? "" : " + ", f.region(s.region).name, " (",
                        s.replicas, "x ", f.gpu_type_name(s.gpu_type), ")");
      std::cout << absl::StrFormat("  regions: %s%s\n", where,
                                   d.plan.cross_region ? "  [cross-region: hierarchical sync]" : "");
      std::cout << absl::StrFormat("  estimate: $%.2f, done in %s\n", d.plan.est_cost_usd,
                                   Duration(d.plan.est_completion_s));
      for (size_t i = 0; i < d.plan.replicas.size(); ++i) {
        const ReplicaPlacement& r = d.plan.replicas[i];
        std::string parts;
        for (const ScorePart& p : r.parts)
          if (p.weight > 0)
            absl::StrAppend(&parts, parts.empty() ? "" : " ", std::string(p.scorer), "=",
                            absl::StrFormat("%.0f", p.score));
        std::cout << absl::StrFormat("  replica %-3d -> %-22s score %6.1f  [%s]\n", i,
                                     f.node(r.allocation.node).name, r.score, parts);
      }
      if (!d.victims.empty()) {
        std::string v;
        for (JobId id : d.victims) absl::StrAppend(&v, v.empty() ? "" : ", ", (*sched)->job(id)->name);
        std::cout << "  preempted: " << v << "\n";
      }
    } else {
      for (const std::string& r : d.reasons) std::cout << "  reason: " << r << "\n";
      for (const RegionExplanation& ex : d.plan.why_not)
        std::cout << absl::StrFormat("  %-16s %s\n", f.region(ex.region).name + ":",
                                     ExplanationText(ex));
    }
  }
  Resources used = (*sched)->state().total_used();
  const Resources& cap = f.total_capacity();
  if (args.json) {
    nlohmann::json out{{"jobs", jobs_json},
                       {"summary",
                        {{"placed", placed},
                         {"waiting", waiting},
                         {"gpus_used", double(used.gpu_milli) / 1000.0},
                         {"gpus_total", double(cap.gpu_milli) / 1000.0}}}};
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << absl::StrFormat("\n%d placed, %d waiting; GPUs in use %.2f of %.0f\n", placed,
                                 waiting, double(used.gpu_milli) / 1000.0,
                                 double(cap.gpu_milli) / 1000.0);
  }
  return kExitOk;
}

}  // namespace meridian::cli
