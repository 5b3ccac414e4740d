// Scorer "best_fit": bin-packing; prefers the node left fullest after placement
// (GPU utilization weighs 3/4, the larger of CPU/memory utilization 1/4), so
// whole nodes stay free for large gangs.
// A CPU-only replica on a node with GPUs scores by the GPU capacity its CPU
// strands instead (CpuTaskStrandingScore in placement/fragmentation.h).
// Registered by RegisterBuiltinPolicies. No options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeBestFitScorer(const PolicyOptions& options);

}  // namespace meridian
