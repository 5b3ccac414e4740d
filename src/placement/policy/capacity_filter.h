// Filter "capacity": the replica's CPU, memory and GPU share fit in the node's free resources.
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeCapacityFilter(const PolicyOptions& options);

}  // namespace meridian
