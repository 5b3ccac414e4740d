// meridian sim: replay a trace through one or more policies on a fleet.
#include <cmath>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "sim/arrival_study.h"
#include "sim/gavel.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "spec/spec.h"

namespace meridian::cli {

namespace {
bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}
std::string Dur(double s) {
  if (s < 120) return absl::StrFormat("%.0fs", s);
  if (s < 7200) return absl::StrFormat("%.1fm", s / 60);
  if (s < 172800) return absl::StrFormat("%.1fh", s / 3600);
  return absl::StrFormat("%.1fd", s / 86400);
}
}  // namespace

namespace {
absl::StatusOr<std::vector<sim::SimPolicy>> MakePolicies(const std::vector<std::string>& names) {
  std::vector<sim::SimPolicy> policies;
  for (const std::string& p : names) {
    auto pol = sim::MakeBuiltinSimPolicy(p);
    if (!pol.ok()) return pol.status();
    policies.push_back(*std::move(pol));
  }
  return policies;
}

sim::RunInfo MakeRunInfo(const SimArgs& a, const Fleet& fleet) {
  sim::RunInfo info;
  info.fleet = a.fleet;
  info.trace = a.trace;
  info.nodes = int64_t(fleet.nodes().size());
  info.gpus = fleet.total_capacity().gpu_milli / 1000;
  info.seed = a.seed;
  info.scenario = a.scenario.empty() ? a.trace : a.scenario;
  return info;
}

int RunArrivalStudy(const SimArgs& a, const Fleet& fleet, const sim::Trace& trace) {
  auto policies = MakePolicies(a.policies);
  if (!policies.ok()) {
    std::cerr << "sim: " << policies.status().message() << "\n";
    return kExitInvalid;
  }
  sim::ArrivalStudyOptions o;
  o.inflate = a.inflate;
  o.first_seed = uint64_t(a.shuffle);
  o.seeds = a.seeds;
  if (o.inflate < o.checkpoints.back()) {
    while (!o.checkpoints.empty() && o.checkpoints.back() > o.inflate + 1e-9)
      o.checkpoints.pop_back();
    o.checkpoints.push_back(o.inflate);
  }
  auto results = sim::RunArrivalStudy(fleet, trace, *policies, o);
  if (!results.ok()) {
    std::cerr << "sim: " << results.status().message() << "\n";
    return kExitError;
  }
  const sim::RunInfo info = MakeRunInfo(a, fleet);
  if (!a.json_out.empty() && !WriteFile(a.json_out, sim::ArrivalStudyToJson(*results, o, info))) {
    std::cerr << "sim: cannot write " << a.json_out << "\n";
    return kExitError;
  }
  if (!a.report_out.empty()) {
    std::vector<sim::PolicyResult> first;
    for (const auto& r : *results) first.push_back(r.first);
    if (!WriteFile(a.report_out, sim::RenderHtmlReport(first, info))) {
      std::cerr << "sim: cannot write " << a.report_out << "\n";
      return kExitError;
    }
  }
  if (a.quiet) return kExitOk;
  std::cout << absl::StrFormat(
      "%zu pods on %lld nodes (%lld GPUs), inflated to %.0f%% of the GPUs, %d random order(s) "
      "from seed %lld, no departures\n",
      trace.jobs.size(), (long long)info.nodes, (long long)info.gpus, 100 * o.inflate, o.seeds,
      (long long)a.shuffle);
  std::cout << "unallocated GPUs (% of the fleet's) when the arrived GPU demand reached:\n";
  std::cout << absl::StrFormat("%-12s", "policy");
  for (double c : o.checkpoints)
    std::cout << absl::StrFormat(" %14s", absl::StrFormat("%.0f%%", 100 * c));
  std::cout << absl::StrFormat(" %9s %7s\n", "frag@100%", "wall");
  for (const auto& r : *results) {
    std::cout << absl::StrFormat("%-12s", r.policy);
    for (size_t c = 0; c < r.checkpoints.size(); ++c)
      std::cout << absl::StrFormat(
          " %14s",
          absl::StrFormat("%.2f ± %.2f", 100 * r.unallocated_mean[c], 100 * r.unallocated_std[c]));
    double frag100 = std::nan("");
    for (size_t c = 0; c < r.checkpoints.size(); ++c)
      if (std::abs(r.checkpoints[c] - 1.0) < 1e-9) frag100 = r.fragmentation_mean[c];
    std::cout << absl::StrFormat(" %8.1f%% %6.1fs\n", 100 * frag100, r.wall_s);
  }
  return kExitOk;
}
}  // namespace

int RunSim(const SimArgs& a) {
  std::vector<spec::Diagnostic> diags;
  auto fleet = spec::LoadFleet(a.fleet, &diags);
  if (!fleet.ok()) {
    for (const auto& d : diags) std::cerr << d.ToString() << "\n";
    if (diags.empty()) std::cerr << "sim: " << fleet.status().message() << "\n";
    return kExitInvalid;
  }
  sim::TraceOptions to;
  to.lenient = a.lenient;
  to.limit = a.limit;
  to.seed = a.seed;
  if (a.trace.rfind("gavel:", 0) == 0) to.gavel_throughputs = a.gavel;
  auto trace = sim::ReadTrace(a.trace, to);
  if (!trace.ok()) {
    std::cerr << "sim: " << trace.status().message() << "\n";
    return kExitInvalid;
  }
  if (trace->skipped > 0) {
    std::cerr << "sim: skipped " << trace->skipped << " bad line(s) (--lenient); first:\n";
    for (const auto& e : trace->skipped_examples) std::cerr << "  " << e << "\n";
  }
  if (a.shuffle >= 0 || a.seeds > 1) {
    if (a.shuffle < 0 || !a.no_departures || !(a.inflate > 0)) {
      std::cerr << "sim: --shuffle/--seeds is the arrival study (FGD's method): it needs "
                   "--shuffle SEED, --no-departures and --inflate R\n";
      return kExitInvalid;
    }
    return RunArrivalStudy(a, *fleet, *trace);
  }
  if (a.inflate > 0) {
    // Cycle the trace's jobs (shifted in time) until the GPU demand that has
    // arrived reaches `inflate` times the fleet's GPUs (FGD's methodology).
    absl::Status s =
        sim::InflateTrace(a.inflate * double(fleet->total_capacity().gpu_milli), nullptr, &*trace);
    if (!s.ok()) {
      std::cerr << "sim: --inflate: " << s.message() << "\n";
      return kExitInvalid;
    }
  }
  if (!a.gavel.empty() && a.trace.rfind("gavel:", 0) != 0) {
    bool has_gavel_type = false;
    for (const char* t : sim::kGavelWorkerTypes) has_gavel_type |= fleet->FindGpuType(t).Valid();
    if (!has_gavel_type) {
      std::cerr << "sim: --gavel needs a fleet with k80, p100 or v100 GPUs (e.g. "
                   "examples/fleets/philly-hetero.yaml)\n";
      return kExitInvalid;
    }
    auto table = sim::ReadGavelThroughputs(a.gavel);
    absl::Status assigned =
        table.ok() ? sim::AssignGavelJobTypes(*trace, *table, a.seed) : table.status();
    if (!assigned.ok()) {
      std::cerr << "sim: --gavel: " << assigned.message() << "\n";
      return kExitInvalid;
    }
  }
  auto policies_or = MakePolicies(a.policies);
  if (!policies_or.ok()) {
    std::cerr << "sim: " << policies_or.status().message() << "\n";
    return kExitInvalid;
  }
  const std::vector<sim::SimPolicy>& policies = *policies_or;
  sim::SimOptions so;
  so.seed = a.seed;
  so.departures = !a.no_departures;
  so.node_mtbf_s = a.mtbf_s;
  so.assign_datasets = a.datasets;
  so.residency_share = a.residency_share;
  so.max_time_s = a.max_time_s;
  // Modelling: the flags, else what the trace kind suggests.
  so.round_s = a.round_s >= 0 ? a.round_s : trace->modelling.round_s;
  so.restart_penalty_s =
      a.restart_penalty_s >= 0 ? a.restart_penalty_s : trace->modelling.restart_penalty_s;
  so.allocation_reset_s =
      a.reallocation_s >= 0 ? a.reallocation_s : trace->modelling.allocation_reset_s;
  const bool goodput =
      a.job_model.empty() ? trace->modelling.goodput && so.round_s > 0 : a.job_model == "goodput";
  std::unique_ptr<sim::GoodputModel> model;
  if (goodput) {
    const std::string dir =
        !a.profiles_dir.empty() ? a.profiles_dir : trace->modelling.profiles_dir;
    if (dir.empty()) {
      std::cerr << "sim: --job-model goodput needs goodput profiles (--profiles DIR)\n";
      return kExitInvalid;
    }
    if (so.round_s <= 0) {
      std::cerr << "sim: --job-model goodput needs scheduling rounds (--round-s > 0)\n";
      return kExitInvalid;
    }
    auto m = sim::GoodputModel::Load(dir);
    if (!m.ok()) {
      std::cerr << "sim: " << m.status().message() << "\n";
      return kExitInvalid;
    }
    model = *std::move(m);
    so.goodput = model.get();
  }
  for (const std::string& kv : a.gpu_speeds) {
    size_t eq = kv.find('=');
    double speed = 0;
    if (eq == std::string::npos || !absl::SimpleAtod(kv.substr(eq + 1), &speed) || !(speed > 0) ||
        speed > 1000) {
      std::cerr << "sim: --gpu-speed '" << kv << "': expected TYPE=SPEED with SPEED in (0, 1000]\n";
      return kExitInvalid;
    }
    if (!fleet->FindGpuType(kv.substr(0, eq)).Valid()) {
      std::cerr << "sim: --gpu-speed '" << kv << "': the fleet has no GPU type '" << kv.substr(0, eq)
                << "'\n";
      return kExitInvalid;
    }
    so.gpu_speeds[kv.substr(0, eq)] = speed;
  }
  if (a.datasets && fleet->datasets().empty()) {
    std::cerr << "sim: --datasets needs a fleet with datasets (add a `datasets:` section)\n";
    return kExitInvalid;
  }
  const bool tty = isatty(STDERR_FILENO) && !a.quiet;
  std::vector<sim::PolicyResult> results;
  for (const sim::SimPolicy& p : policies) {
    sim::ProgressFn progress;
    if (tty)
      progress = [&](int64_t done, int64_t total) {
        int width = 40, filled = int(double(done) / double(total) * width);
        std::cerr << absl::StrFormat("\r  %-12s [%s%s] %3.0f%%", p.name, std::string(filled, '#'),
                                     std::string(width - filled, ' '),
                                     100.0 * double(done) / double(total))
                  << std::flush;
      };
    auto r = sim::RunSimulation(*fleet, *trace, p, so, progress);
    if (tty) std::cerr << "\r" << std::string(70, ' ') << "\r";
    if (!r.ok()) {
      std::cerr << "sim: policy " << p.name << ": " << r.status().message() << "\n";
      return kExitError;
    }
    results.push_back(*std::move(r));
  }
  sim::RunInfo info = MakeRunInfo(a, *fleet);
  info.modelling = absl::StrFormat(
      "%s, restart penalty %gs, job model %s",
      so.round_s > 0 ? so.allocation_reset_s > 0
                           ? absl::StrFormat("rounds of %gs (reallocation at most every %gs)",
                                             so.round_s, so.allocation_reset_s)
                           : absl::StrFormat("rounds of %gs", so.round_s)
                     : std::string("event-driven"),
      so.restart_penalty_s, goodput ? "goodput" : "fixed");
  if (!a.json_out.empty() && !WriteFile(a.json_out, sim::ResultsToJson(results, info))) {
    std::cerr << "sim: cannot write " << a.json_out << "\n";
    return kExitError;
  }
  if (!a.report_out.empty() && !WriteFile(a.report_out, sim::RenderHtmlReport(results, info))) {
    std::cerr << "sim: cannot write " << a.report_out << "\n";
    return kExitError;
  }
  if (!a.quiet) {
    std::cout << absl::StrFormat("%zu jobs on %lld nodes (%lld GPUs), trace %s\n",
                                 trace->jobs.size(), (long long)info.nodes, (long long)info.gpus,
                                 a.trace);
    std::cout << "modelling: " << info.modelling << "\n";
    std::cout << absl::StrFormat("%-12s %9s %9s %9s %9s %9s %7s %11s %6s %7s %6s\n", "policy",
                                 "completed", "avg JCT", "p50 JCT", "p99 JCT", "makespan",
                                 "GPU%", "cost $", "preempt", "unalloc", "wall");
    for (const auto& r : results)
      std::cout << absl::StrFormat(
          "%-12s %9lld %9s %9s %9s %9s %6.1f%% %11.0f %7lld %6.1f%% %5.1fs\n", r.policy,
          (long long)r.jobs_completed, Dur(r.avg_jct_s), Dur(r.median_jct_s), Dur(r.p99_jct_s),
          Dur(r.makespan_s), 100 * r.gpu_util, r.cost_usd, (long long)r.preemptions,
          100 * r.unallocated_gpu_share, r.wall_s);
  }
  return kExitOk;
}

}  // namespace meridian::cli
