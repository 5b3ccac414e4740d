// Scorer "best_fit": bin-packing; prefers the node left fullest after placement
// (GPU utilization weighs 3/4, the larger of CPU/memory utilization 1/4), so
// whole nodes stay free for large gangs.
// A CPU-only replica on a node with GPUs scores by the GPU capacity its CPU
// strands instead (CpuTaskStrandingScore in placement/fragmentation.h).
// Registered by RegisterBuiltinPolicies. Options:
//   normalize  "node" (default, as above) or "fleet": the FGD authors' best-fit
//              baseline — CPU and GPU left after placement, each divided by the
//              largest node's, half each, less is better (CPU-only work too,
//              which then goes where the GPUs are used up).
//   cpu_share  weight (default 0, 0..1000) of CpuShareCost (GPU capacity the
//              replica's CPU takes beyond its GPUs in proportion), subtracted
//              in units of the node's (node) or largest node's (fleet) GPUs.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeBestFitScorer(const PolicyOptions& options);

}  // namespace meridian
