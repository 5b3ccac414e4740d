// Invariant checkers for the placement state, written as brute-force
// recomputations that share no code with the engine.
//
// Each returns one human-readable line per violation (empty: all hold), so a
// test can EXPECT_THAT(..., IsEmpty()) and print every broken invariant at
// once. They only read their arguments. Not thread-safe with respect to a
// scheduler that is running a pass.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "placement/cluster_state.h"
#include "placement/scheduler.h"

namespace meridian::test {

// Brute-force answer for ClusterState::ForEachCandidate: the healthy nodes of
// `pool` with the GPU room `shape` needs, in id order.
std::vector<NodeId> BruteForceCandidates(const ClusterState& state, int pool,
                                         const TaskShape& shape);

// Every pool's candidate index agrees with a full scan for a spread of shapes
// (CPU-only, 1/2/4/8 whole GPUs, 0.25/0.5/0.9 GPU), in both orders: the same
// set, no node twice, tightest (loosest) first by wholly free GPUs; and the
// pool's free GPU total equals the sum over its healthy nodes.
std::vector<std::string> CheckCapacityIndex(const ClusterState& state);

// `state` is exactly a fresh ClusterState plus `allocations`: per node free
// CPU/memory/GPU, per-GPU free milli, whole free GPUs and task count, region
// and total usage. Also no node or GPU is over-committed.
std::vector<std::string> CheckStateMatches(const ClusterState& state,
                                           std::span<const Allocation> allocations);

// Every scheduler invariant the property tests rely on: gangs all-or-nothing
// (a running job has exactly `replicas` allocations of its shape, a pending
// one none), residency, spot, taints, GPU type and health respected, no
// over-commit (recomputed from the running jobs' allocations), ClusterState
// consistent with them, tenant usage equal to the sum of its running jobs'
// demands and within guarantee + borrowing limit.
std::vector<std::string> CheckSchedulerInvariants(const Scheduler& scheduler);

}  // namespace meridian::test
