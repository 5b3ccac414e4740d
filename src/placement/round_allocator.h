// RoundAllocator: a policy that decides, at each scheduling round, the whole
// GPU allocation of every active job: which jobs run, how many GPUs each gets
// (elastic jobs) and on which nodes. Running jobs may keep, grow, shrink,
// move or lose their GPUs; the caller charges the restart cost of every
// change. This is how round-based schedulers work (Tiresias, Gavel, Pollux)
// and what the simulator's `--round-s` mode and, later, the controller's
// elastic resizing drive; the event-driven Scheduler (scheduler.h) is the
// other path.
//
// Contract: Allocate() returns one entry per input job, in input order; an
// entry lists (node, GPUs) pairs with GPUs > 0 and nodes from `nodes`. The
// sum over all jobs on a node never exceeds its `gpus`; an unhealthy node
// gets nothing. A job gets 0 or between min_gpus and max_gpus GPUs, all of a
// GPU type it allows. Allocators may keep state between rounds (queues,
// random draws); they are deterministic for a seed and the same sequence of
// inputs. Not thread-safe: one allocator per scheduling loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/ids.h"
#include "placement/registry.h"

namespace meridian {

struct RoundNode {
  NodeId id;
  RegionId region;
  GpuTypeId gpu_type;
  int32_t gpus = 0;
  bool healthy = true;
};

// GPUs a job holds on each node; no zero entries.
using NodeGpus = std::vector<std::pair<NodeId, int32_t>>;

struct RoundJob {
  JobId id;
  double submit_s = 0;
  // Rigid jobs: min_gpus == max_gpus == the GPUs they asked for. Elastic
  // jobs: the range they declared.
  int32_t min_gpus = 1;
  int32_t max_gpus = 1;
  // Allowed GPU types with the job's relative speed on each; empty = any
  // type, speed 1.
  std::vector<std::pair<GpuTypeId, double>> speeds;
  NodeGpus current;           // what it holds now (empty: pending)
  double attained_gpu_s = 0;  // GPU-seconds it has run
  double age_s = 0;           // seconds since submission
  int32_t restarts = 0;       // allocation changes so far
  // Goodput on `gpus` GPUs spread over `nodes` nodes in `regions` regions,
  // relative to any fixed reference (only ratios are used). Empty: linear
  // in GPUs. Used by goodput-aware allocators (adaptive).
  std::function<double(int32_t gpus, int32_t nodes, int32_t regions)> goodput;
};

struct RoundInput {
  double now_s = 0;
  const std::vector<RoundNode>* nodes = nullptr;
  const std::vector<RoundJob>* jobs = nullptr;
  double restart_penalty_s = 0;  // what every allocation change costs the job
  // GPU type names by GpuTypeId value: allocators that must not depend on the
  // order in which the fleet lists types order them by name.
  const std::vector<std::string>* gpu_type_names = nullptr;
  // Allocators that reallocate when the set of jobs changed may do so at most
  // this often (s; 0 = whenever it changed).
  double min_reallocation_s = 0;
};

class RoundAllocator {
 public:
  virtual ~RoundAllocator() = default;
  virtual std::string_view name() const = 0;
  virtual std::vector<NodeGpus> Allocate(const RoundInput& in) = 0;
};

// Built-in round allocators:
//   tiresias  discretized 2D-LAS as in the Pollux artifact's Tiresias: two
//             queues split at `threshold_gpu_s` GPU-seconds of service
//             (default 57600 = 16 GPU-hours), FIFO inside a queue; each round
//             the jobs that fit, in queue order, run (a job that no longer
//             fits is preempted); new ones are placed on the nodes with the
//             most free GPUs.
//   fifo      heterogeneity-agnostic FIFO (Gavel's `fifo`): jobs in arrival
//             order keep their GPUs; a new job gets a GPU type drawn
//             uniformly (seeded) among the types with room for it, so the
//             result does not depend on the order of types in the fleet.
//   gavel     heterogeneity-aware FIFO (Gavel's `fifo_perf`): at each
//             reallocation, in arrival order, each job gets the fastest type
//             (by its speeds) with room left; a running job moves when a
//             faster type frees.
//             fifo and gavel reallocate when the set of jobs changed, but at
//             most every RoundInput::min_reallocation_s (option `reset_s`
//             overrides it; Gavel's simulator: 1920 s): until then a new job
//             waits and a finished job's GPUs stay idle.
//   adaptive  goodput-adaptive (Pollux-style): elastic jobs get the GPUs
//             where they add the most goodput, with fairness between jobs
//             (placement/policy/adaptive_allocator.h). Option wan_aware
//             (default true): count cross-region goodput loss.
// `options` are policy-specific; unknown ones are rejected.
absl::StatusOr<std::unique_ptr<RoundAllocator>> MakeRoundAllocator(const std::string& name,
                                                                   const PolicyOptions& options,
                                                                   uint64_t seed);
std::vector<std::string> RoundAllocatorNames();

}  // namespace meridian
