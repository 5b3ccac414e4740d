// Simulator: a discrete-event loop on a virtual clock that drives the
// unchanged placement::Scheduler over a trace, or, in round mode
// (round_s > 0), a loop of fixed scheduling rounds that asks the policy's
// RoundAllocator for every job's allocation (sim/rounds.cc).
//
// Events: job arrival, job finish, periodic pass (for policies whose queue
// order changes with time, e.g. LAS), node failure and repair. All events at
// one timestamp are applied, then one scheduling pass runs at that time.
// Placed jobs finish after their remaining work divided by the speed of the
// GPU type they got (the slowest type when split); a preempted job keeps the
// work it has done and re-queues whole. Deterministic for a seed: the clock is
// a FakeClock and every random draw comes from one seeded Rng.
// Not thread-safe; one simulation per object.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "core/fleet.h"
#include "sim/goodput.h"
#include "sim/report.h"
#include "sim/sim_policy.h"
#include "sim/trace.h"

namespace meridian::sim {

struct SimOptions {
  uint64_t seed = 1;
  // Jobs run to completion (false: jobs never leave; used by the openb
  // allocation-as-load-grows scenario, which stops when every job arrived).
  bool departures = true;
  // Mean time between failures per node (0 = no failures) and repair time.
  double node_mtbf_s = 0;
  double node_repair_s = 3600;
  // Cross-region scenario: give each job one of the fleet's datasets (uniform,
  // seeded) and limit `residency_share` of the jobs to their dataset's home region.
  bool assign_datasets = false;
  double residency_share = 0;
  // Relative speed per GPU type name, given to jobs that name no GPU types
  // (traces without GPU types, e.g. Philly in the cross-region scenario).
  // Types missing here are not allowed for such jobs. Empty: any type, speed 1.
  std::map<std::string, double> gpu_speeds;
  // No departures: record PolicyResult::checkpoints when the GPU demand that
  // arrived first reaches each of these shares of the fleet's GPUs (ascending).
  std::vector<double> arrival_checkpoints = {0.9, 1.0, 1.1, 1.2, 1.3};
  // Stop simulated time here (0 = run until every job finished or can never run).
  double max_time_s = 0;
  // Scheduling rounds: 0 = event-driven (a pass at every arrival and
  // completion). > 0: allocations change only every round_s seconds (rounds
  // at whole multiples of round_s); arrivals wait for the next round and
  // freed GPUs are reused at the next round (sim/rounds.cc).
  double round_s = 0;
  // Seconds without progress a job pays at every start, resize, migration
  // and restart after preemption (it holds its GPUs meanwhile).
  double restart_penalty_s = 0;
  // Round mode: allocators that reallocate when the set of jobs changed
  // (fifo, gavel) do so at most this often (0 = at every round); meanwhile new
  // jobs wait and freed GPUs stay idle, as in Gavel's simulator (1920 s).
  double allocation_reset_s = 0;
  // Goodput job model (round mode only): jobs whose `model` names an
  // application in it progress by its goodput (sim/goodput.h) instead of a
  // fixed duration. Null: fixed durations. Must outlive the call.
  const GoodputModel* goodput = nullptr;
  // Called for every scheduling decision with the virtual time it was made at
  // (tests and tools; not needed for results).
  std::function<void(double t, const Decision& d)> on_decision;
};

// Called about every 1% of processed jobs: (jobs finished or placed, total).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Runs one policy over the trace on the fleet. Errors: the policy's options
// are invalid, or the trace has no job the fleet could ever run.
absl::StatusOr<PolicyResult> RunSimulation(const Fleet& fleet, const Trace& trace,
                                           const SimPolicy& policy, const SimOptions& options,
                                           const ProgressFn& progress = nullptr);

// The job list the simulator gives the scheduler (objective override,
// datasets, residency), exposed so `meridian place` and `meridian sim` can be
// compared on the same mix. Tenants are created from the trace's tenant names.
Workload TraceToWorkload(const Fleet& fleet, const Trace& trace, const SimPolicy& policy,
                         const SimOptions& options);

}  // namespace meridian::sim
