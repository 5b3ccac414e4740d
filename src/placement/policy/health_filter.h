// Filter "health": the node is healthy (not failed, not cordoned).
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeHealthFilter(const PolicyOptions& options);

}  // namespace meridian
