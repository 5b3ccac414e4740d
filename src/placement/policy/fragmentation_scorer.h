// Scorer "fragmentation": fragmentation-aware packing in the spirit of FGD (Weng et
// al., ATC'23). A node's fragmentation for a task class is the GPU capacity
// that class cannot use there (all free GPU milli when the class does not fit,
// else the partial GPU remainders too small for it); the node's fragmentation
// is the expected value over the task mix. The score is highest for the node
// whose fragmentation grows least (or shrinks most) by placing the replica.
// Registered by RegisterBuiltinPolicies. No options; the task mix comes from the PlacementContext (a default mix when empty).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeFragmentationScorer(const PolicyOptions& options);

}  // namespace meridian
