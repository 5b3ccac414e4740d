// Filter "residency": the node's region and zone are ones the job's residency
// rules (allowed_regions, allowed_zones) allow.
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeResidencyFilter(const PolicyOptions& options);

}  // namespace meridian
