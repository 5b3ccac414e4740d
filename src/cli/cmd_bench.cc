// meridian bench placement: decisions per second and latency percentiles of
// the region planner + gang placement path on a synthetic fleet, kept at a
// target GPU utilization by releasing the oldest placements (churn).
#include <algorithm>
#include <chrono>
#include <deque>
#include <fstream>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "core/synthetic.h"
#include "nlohmann/json.hpp"
#include "placement/planner.h"

namespace meridian::cli {

namespace {
std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}
}  // namespace

int RunBenchPlacement(const BenchPlacementArgs& a) {
  SyntheticFleetOptions fo;
  fo.nodes = a.nodes;
  fo.regions = std::min(a.regions, a.nodes);
  fo.seed = a.seed;
  auto fleet = MakeSyntheticFleet(fo);
  if (!fleet.ok()) {
    std::cerr << "bench: " << fleet.status().message() << "\n";
    return kExitInvalid;
  }
  // A pool of job shapes to draw from: gangs of `gang` replicas.
  SyntheticJobOptions jo;
  jo.jobs = 4096;
  jo.max_replicas = 1;
  jo.seed = a.seed + 1;
  Workload w = MakeSyntheticJobs(*fleet, jo);
  for (Job& j : w.jobs) {
    j.replicas = a.gang;
    if (a.gang > 1 && !j.shape.fractional()) j.shape.gpus = std::min(j.shape.gpus, 2);
    j.shape.cpu_milli = int64_t{j.shape.gpus} * 4000;
    j.shape.memory_mib = int64_t{j.shape.gpus} * 16384;
    j.cross_region_allowed = false;
  }
  PolicyRegistry registry;
  RegisterBuiltinPolicies(registry);
  EngineOptions eo;
  eo.max_candidates = a.max_candidates;
  auto engine = PlacementEngine::Create(registry, eo);
  if (!engine.ok()) {
    std::cerr << "bench: " << engine.status().message() << "\n";
    return kExitError;
  }
  RegionPlanner planner(&*fleet, engine->get(), PlannerOptions{});
  ClusterState state(&*fleet);
  Rng rng(a.seed);
  const int64_t cap_gpu = fleet->total_capacity().gpu_milli;
  std::deque<std::vector<ReplicaPlacement>> live;
  std::vector<double> lat_us;
  lat_us.reserve(size_t(a.tasks));
  int64_t failed = 0, replicas = 0;
  double util_sum = 0;
  const bool tty = isatty(STDERR_FILENO) && !a.json;
  auto release_oldest = [&]() {
    for (const ReplicaPlacement& r : live.front()) state.Release(r.allocation);
    live.pop_front();
  };
  using Clk = std::chrono::steady_clock;
  const auto wall0 = Clk::now();
  double busy_s = 0;
  for (int64_t t = 0; t < a.tasks; ++t) {
    while (!live.empty() &&
           double(state.total_used().gpu_milli) > a.target_utilization * double(cap_gpu))
      release_oldest();
    util_sum += double(state.total_used().gpu_milli) / double(cap_gpu);
    const Job& job = w.jobs[size_t(t) % w.jobs.size()];
    auto t0 = Clk::now();
    Plan plan = planner.PlaceJob(state, job, nullptr, {}, rng, false);
    auto t1 = Clk::now();
    double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
    busy_s += us / 1e6;
    lat_us.push_back(us);
    if (plan.placed) {
      replicas += int64_t(plan.replicas.size());
      live.push_back(std::move(plan.replicas));
    } else {
      ++failed;
      for (int k = 0; k < 4 && !live.empty(); ++k) release_oldest();
    }
    if (tty && t % 10000 == 0)
      std::cerr << absl::StrFormat("\r  %lld / %lld decisions", (long long)t, (long long)a.tasks)
                << std::flush;
  }
  if (tty) std::cerr << "\r" << std::string(40, ' ') << "\r";
  const double wall_s = std::chrono::duration<double>(Clk::now() - wall0).count();
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double p) {
    return lat_us[std::min(lat_us.size() - 1, size_t(p * double(lat_us.size())))];
  };
  nlohmann::json out{{"benchmark", "placement"},
                     {"nodes", a.nodes},
                     {"regions", fo.regions},
                     {"tasks", a.tasks},
                     {"gang", a.gang},
                     {"max_candidates", a.max_candidates},
                     {"placements_per_sec", double(a.tasks) / busy_s},
                     {"replicas_per_sec", double(replicas) / busy_s},
                     {"decision_p50_us", pct(0.50)},
                     {"decision_p99_us", pct(0.99)},
                     {"decision_max_us", lat_us.back()},
                     {"failed_decisions", failed},
                     {"mean_gpu_utilization", util_sum / double(a.tasks)},
                     {"wall_s", wall_s},
                     {"threads", 1},
                     {"cpu", CpuModel()},
                     {"hardware_threads", std::thread::hardware_concurrency()}};
  if (a.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << absl::StrFormat(
        "placement: %d nodes, %lld decisions of gang %d: %.0f decisions/s, p50 %.1f us, p99 %.1f "
        "us, max %.1f us; %lld failed; mean GPU utilization %.2f\n",
        a.nodes, (long long)a.tasks, a.gang, out["placements_per_sec"].get<double>(), pct(0.5),
        pct(0.99), lat_us.back(), (long long)failed, util_sum / double(a.tasks));
  }
  return kExitOk;
}

}  // namespace meridian::cli
