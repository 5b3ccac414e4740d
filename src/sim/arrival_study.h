// The FGD paper's method as a simulator mode ("arrival study"): the pod list
// is inflated until its GPU demand is `inflate` times the fleet's GPUs, the
// arrivals are put in a seeded random order (as the authors' --shuffle-pod),
// nothing ever departs, each pod is tried once when it arrives, and the GPUs
// left unallocated (and the fragmentation rate) are read when the demand that
// arrived reaches 90/100/110/120/130% of the fleet's GPUs. Repeated over
// several seeds (orders), it reports the mean and spread per checkpoint.
// Pure functions over their inputs; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/fleet.h"
#include "sim/report.h"
#include "sim/sim_policy.h"
#include "sim/trace.h"

namespace meridian::sim {

// Appends copies of the trace's jobs (names suffixed "-rN") until their GPU
// demand reaches `target_gpu_milli`. With `rng`, the copies are drawn
// uniformly at random (FGD's workload inflation); without, they cycle through
// the trace in order, shifted in time by the trace's span per round.
// InvalidArgument when the trace asks for no GPUs.
absl::Status InflateTrace(double target_gpu_milli, Rng* rng, Trace* trace);

// Puts the jobs in a random order drawn from `seed` and gives them distinct
// arrival times 0, 1, 2, ... s, so each is tried alone, when it arrives.
void ShuffleArrivals(uint64_t seed, Trace* trace);

struct ArrivalStudyOptions {
  double inflate = 1.3;      // GPU demand / fleet GPUs
  uint64_t first_seed = 42;  // orders: first_seed, first_seed + 1, ...
  int32_t seeds = 1;
  std::vector<double> checkpoints = {0.9, 1.0, 1.1, 1.2, 1.3};
};

struct ArrivalStudyResult {
  std::string policy;
  std::vector<double> checkpoints;
  // [seed][checkpoint]
  std::vector<std::vector<double>> unallocated;
  std::vector<std::vector<double>> fragmentation_rate;
  // Per checkpoint over the seeds: mean and sample standard deviation.
  std::vector<double> unallocated_mean, unallocated_std;
  std::vector<double> fragmentation_mean;
  double wall_s = 0;   // summed over seeds
  PolicyResult first;  // the full result of the first seed (curves for the report)
};

// Runs every policy on every order. Errors: bad options, or what
// RunSimulation returns.
absl::StatusOr<std::vector<ArrivalStudyResult>> RunArrivalStudy(
    const Fleet& fleet, const Trace& trace, const std::vector<SimPolicy>& policies,
    const ArrivalStudyOptions& options);

// {"run": {...}, "study": {...}, "policies": {name: {checkpoints, unallocated_mean, ...}}}.
std::string ArrivalStudyToJson(const std::vector<ArrivalStudyResult>& results,
                               const ArrivalStudyOptions& options, const RunInfo& info);

}  // namespace meridian::sim
