// GPU fragmentation as defined by FGD (Weng et al., "Beware of Fragmentation:
// Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
// USENIX ATC '23), CPU- and memory-aware.
//
// A node's fragment against one task class is the free GPU capacity (milli-GPUs)
// of the node that the class cannot use:
//   - the class does not fit the node's free CPU or memory, or asks for no GPU
//     at all (a CPU-only class uses no GPU), or does not fit the GPUs: every
//     free milli-GPU of the node;
//   - otherwise the free milli of every GPU with less room than the class
//     needs per GPU (for a whole-GPU class: every partly used GPU).
// The node's fragment is the expected fragment over the target workload
// (weights of the task mix summing to 1). Placing a task moves the node from
// one state to another; FGD places it where the fragment grows least, and for
// a shared-GPU task also picks the GPU inside the node that way. This follows
// the paper and the authors' simulator (hkust-adsl/kubernetes-scheduler-
// simulator: pkg/utils/frag.go, pkg/simulator/plugin/fgd_score.go), with memory
// checked beside CPU. A class limited to one GPU type (FGD's "no access")
// counts every free milli-GPU of nodes of other types.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/workload.h"
#include "placement/cluster_state.h"

namespace meridian {

// A share of the expected task mix, for fragmentation-aware scoring (FGD).
struct TaskClass {
  TaskShape shape;
  double weight = 1.0;
  GpuTypeId gpu_type = GpuTypeId();  // the only GPU type the class may use; invalid: any
};

// Free resources of a node as the fragment measure sees them.
struct NodeFree {
  std::span<const int16_t> gpu_free;  // milli free per GPU
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  GpuTypeId gpu_type = GpuTypeId();  // invalid for CPU-only nodes
};

// Milli-GPUs of `node` that class `t` (limited to GPU type `type` when valid)
// cannot use (see above).
int64_t ClassFragment(const NodeFree& node, const TaskShape& t, GpuTypeId type = GpuTypeId());

// Expected fragment of `node` over `mix` (sum of weight × ClassFragment).
double NodeFragment(const NodeFree& node, std::span<const TaskClass> mix);

// The effect of placing `shape` on a node: `delta` = fragment after − before
// (milli-GPUs; negative is good), `gpu` = the GPU a shared-GPU task should
// take (the one whose use grows the fragment least, lowest index on ties;
// -1 for other shapes). Pre: the shape fits the node's free resources.
struct FragmentMove {
  double delta = 0;
  int gpu = -1;
};
FragmentMove BestFragmentMove(const NodeState& node, GpuTypeId node_type, const TaskShape& shape,
                              std::span<const TaskClass> mix);

// GPU capacity (milli) a task's CPU and memory take beyond its GPUs, in
// proportion: the node's idle GPUs × the larger share of its free CPU or
// memory the task takes, less the task's own GPUs (0 when not positive). FGD's
// measure charges CPU only once a class no longer fits; this charges it as it
// is used, so CPU-heavy work prefers nodes with CPU to spare per idle GPU.
double CpuShareCost(const NodeState& node, const TaskShape& shape);

// FGD's score of a move: 100 × sigmoid(−delta / 1000), in (0, 100); 50 for no change.
double FragmentMoveScore(double delta);

// Mix used when none is known: shaped like the openb trace (mostly one or
// shared GPUs, some CPU-only work).
std::span<const TaskClass> DefaultTaskMix();
// `mix`, or DefaultTaskMix() when it is empty.
std::span<const TaskClass> MixOrDefault(std::span<const TaskClass> mix);

// Score in (0, 100] for a CPU-only task on a node with GPUs, for every packing
// scorer: FragmentMoveScore of the fragment the task's CPU and memory add (GPU
// capacity that the mix can no longer use there). Highest where it strands
// the least.
double CpuTaskStrandingScore(const NodeState& node, GpuTypeId node_type, const TaskShape& shape,
                             std::span<const TaskClass> mix);

// Builds a mix from observed shapes and their (possibly decayed) counts, as
// FGD builds its "typical pods": the most frequent shapes, by count, until
// `coverage` of the total is reached (at most `max_classes`), renormalised to
// sum to 1. Shapes that differ only in memory are one class whose memory is
// the count-weighted mean; a GPU-type limit is part of the shape.
// Deterministic: ties by shape order.
struct ShapeCount {
  TaskShape shape;
  double count = 0;
  GpuTypeId gpu_type = GpuTypeId();  // the only type allowed; invalid: any
};
std::vector<TaskClass> BuildTaskMix(std::span<const ShapeCount> counts, double coverage = 0.95,
                                    size_t max_classes = 64);

// The task mix of a known job list (a trace, a queue): BuildTaskMix over every
// job's replica shape, CPU-only jobs included, a job allowed exactly one GPU
// type limited to it. The simulator and `meridian place` give it to the
// scheduler, since they know the whole workload.
std::vector<TaskClass> WorkloadTaskMix(std::span<const Job> jobs);

// Cluster-wide fragmentation rate: the expected fragment of every healthy node
// over `mix`, as a share of the cluster's free milli-GPUs (0 when none are free).
double FragmentationRate(const ClusterState& state, std::span<const TaskClass> mix);

}  // namespace meridian
