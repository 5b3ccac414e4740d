#include "sim/arrival_study.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "sim/simulator.h"

namespace meridian::sim {

namespace {
double GpuDemand(const TraceJob& j) { return double(j.shape.total_gpu_milli()) * j.replicas; }
}  // namespace

absl::Status InflateTrace(double target_gpu_milli, Rng* rng, Trace* trace) {
  double demand = 0;
  for (const TraceJob& j : trace->jobs) demand += GpuDemand(j);
  if (!(demand > 0))
    return absl::InvalidArgumentError("inflation needs a trace that asks for GPUs");
  const size_t base = trace->jobs.size();
  const double span = trace->jobs.back().submit_s - trace->jobs.front().submit_s + 1;
  for (size_t k = 0; demand < target_gpu_milli; ++k) {
    const size_t round = k / base + 1;
    size_t i = rng ? size_t(rng->Uniform(0, int64_t(base) - 1)) : k % base;
    TraceJob j = trace->jobs[i];
    j.name += absl::StrCat("-r", round);
    j.submit_s += span * double(round);
    demand += GpuDemand(j);
    trace->jobs.push_back(std::move(j));
  }
  return absl::OkStatus();
}

void ShuffleArrivals(uint64_t seed, Trace* trace) {
  Rng rng(seed);
  std::vector<TraceJob>& jobs = trace->jobs;
  for (size_t i = jobs.size(); i > 1; --i)
    std::swap(jobs[i - 1], jobs[size_t(rng.Uniform(0, int64_t(i) - 1))]);
  for (size_t i = 0; i < jobs.size(); ++i) jobs[i].submit_s = double(i);
}

absl::StatusOr<std::vector<ArrivalStudyResult>> RunArrivalStudy(
    const Fleet& fleet, const Trace& trace, const std::vector<SimPolicy>& policies,
    const ArrivalStudyOptions& options) {
  if (options.seeds < 1 || options.seeds > 1000)
    return absl::InvalidArgumentError("seeds must be in 1..1000");
  if (!(options.inflate > 0) || options.inflate > 100)
    return absl::InvalidArgumentError("inflate must be in (0, 100]");
  if (trace.jobs.empty()) return absl::InvalidArgumentError("trace has no jobs");
  for (size_t i = 0; i < options.checkpoints.size(); ++i)
    if (!(options.checkpoints[i] > 0) ||
        (i > 0 && options.checkpoints[i] <= options.checkpoints[i - 1]))
      return absl::InvalidArgumentError("checkpoints must be positive and ascending");
  std::vector<ArrivalStudyResult> out(policies.size());
  for (size_t p = 0; p < policies.size(); ++p) {
    out[p].policy = policies[p].name;
    out[p].checkpoints = options.checkpoints;
  }
  const double target = options.inflate * double(fleet.total_capacity().gpu_milli);
  for (int32_t k = 0; k < options.seeds; ++k) {
    const uint64_t seed = options.first_seed + uint64_t(k);
    Trace t = trace;
    Rng inflate_rng(seed ^ 0x1f1a7e5eedULL);
    if (absl::Status s = InflateTrace(target, &inflate_rng, &t); !s.ok()) return s;
    ShuffleArrivals(seed, &t);
    SimOptions so;
    so.seed = seed;
    so.departures = false;
    so.arrival_checkpoints = options.checkpoints;
    for (size_t p = 0; p < policies.size(); ++p) {
      auto r = RunSimulation(fleet, t, policies[p], so);
      if (!r.ok()) return r.status();
      std::vector<double> un(options.checkpoints.size(), std::nan("")), fr = un;
      for (size_t c = 0; c < r->checkpoints.size(); ++c) {
        un[c] = r->checkpoints[c].unallocated;
        fr[c] = r->checkpoints[c].fragmentation_rate;
      }
      out[p].unallocated.push_back(std::move(un));
      out[p].fragmentation_rate.push_back(std::move(fr));
      out[p].wall_s += r->wall_s;
      if (k == 0) out[p].first = *std::move(r);
    }
  }
  for (ArrivalStudyResult& r : out) {
    const size_t nc = r.checkpoints.size();
    r.unallocated_mean.assign(nc, 0);
    r.unallocated_std.assign(nc, 0);
    r.fragmentation_mean.assign(nc, 0);
    const double n = double(r.unallocated.size());
    for (size_t c = 0; c < nc; ++c) {
      for (size_t k = 0; k < r.unallocated.size(); ++k) {
        r.unallocated_mean[c] += r.unallocated[k][c] / n;
        r.fragmentation_mean[c] += r.fragmentation_rate[k][c] / n;
      }
      double ss = 0;
      for (const auto& u : r.unallocated)
        ss += (u[c] - r.unallocated_mean[c]) * (u[c] - r.unallocated_mean[c]);
      r.unallocated_std[c] = n > 1 ? std::sqrt(ss / (n - 1)) : 0;
    }
  }
  return out;
}

std::string ArrivalStudyToJson(const std::vector<ArrivalStudyResult>& results,
                               const ArrivalStudyOptions& options, const RunInfo& info) {
  using Json = nlohmann::ordered_json;
  auto num = [](double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); };
  auto arr = [&](const std::vector<double>& v) {
    Json a = Json::array();
    for (double x : v) a.push_back(num(x));
    return a;
  };
  Json doc = Json::object();
  doc["run"] = {{"fleet", info.fleet},
                {"trace", info.trace},
                {"nodes", info.nodes},
                {"gpus", info.gpus},
                {"scenario", info.scenario}};
  doc["study"] = {{"method", "arrival study: inflate, shuffle, no departures"},
                  {"inflate", options.inflate},
                  {"first_seed", options.first_seed},
                  {"seeds", options.seeds},
                  {"checkpoints", arr(options.checkpoints)}};
  Json pols = Json::object();
  for (const ArrivalStudyResult& r : results) {
    Json p = Json::object();
    p["unallocated_mean"] = arr(r.unallocated_mean);
    p["unallocated_std"] = arr(r.unallocated_std);
    p["fragmentation_rate_mean"] = arr(r.fragmentation_mean);
    Json per = Json::array();
    for (size_t k = 0; k < r.unallocated.size(); ++k)
      per.push_back({{"seed", options.first_seed + k},
                     {"unallocated", arr(r.unallocated[k])},
                     {"fragmentation_rate", arr(r.fragmentation_rate[k])}});
    p["per_seed"] = std::move(per);
    p["wall_s"] = num(r.wall_s);
    pols[r.policy] = std::move(p);
  }
  doc["policies"] = std::move(pols);
  return doc.dump(2) + "\n";
}

}  // namespace meridian::sim
