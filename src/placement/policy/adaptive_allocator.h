// Goodput-adaptive round allocator (`adaptive`), written from the Pollux
// paper's description of its scheduling objective (Qiao et al., OSDI '21,
// section 4), not from its code.
//
// Each round, for the active jobs:
//  1. Speedup. A job's speedup on r GPUs is its goodput there divided by its
//     goodput at its fair share (ceil(total GPUs / jobs), within its bounds),
//     as the job's `goodput` callback predicts it (packed onto the fewest
//     nodes; across regions when no region can hold r GPUs and wan_aware).
//     Any change of a job's GPU count (a start too) multiplies its speedup by
//     max(age - restarts x penalty, 0) / (age + penalty): a young job that
//     was just resized is not resized again for a small gain.
//  2. Counts. Fairness is Pollux's p = -1 power mean: maximise
//     sum_j -1 / speedup_j. Starting from nothing, GPUs go greedily to the
//     move with the best gain per GPU: a job's first min_gpus, one more GPU,
//     the next whole node, twice its GPUs, or back to the count it holds now
//     (no restart). A job without GPUs counts as a large fixed loss, so as
//     many jobs as fit run before any grows, jobs with less attained service
//     first.
//  3. Nodes. A job whose count did not change keeps its nodes. The others,
//     largest first, are packed: whole free nodes, then the node with the
//     fewest free GPUs that holds the rest; with wan_aware inside one region
//     when one can hold them (the one with the fewest free GPUs that can),
//     and when none can, spread over regions only if that predicts more
//     goodput than shrinking to what the roomiest region holds. Without
//     wan_aware regions are ignored (the WAN-blind variant the cross-region
//     comparison uses).
// Options: wan_aware (true|false, default true); p, the power mean's
// exponent (default -1; 0 = sum of logs; 1 = total speedup).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/round_allocator.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<RoundAllocator>> MakeAdaptiveAllocator(const PolicyOptions& options);

}  // namespace meridian
