// Filter "taints": the job tolerates every taint on the node.
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeTaintsFilter(const PolicyOptions& options);

}  // namespace meridian
