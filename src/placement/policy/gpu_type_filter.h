// Filter "gpu_type": the node's GPU type is one the job allows (CPU-only replicas pass everywhere).
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeGpuTypeFilter(const PolicyOptions& options);

}  // namespace meridian
