// Filter "spot": spot nodes only take jobs that allow spot (they may be reclaimed).
// Registered by RegisterBuiltinPolicies; takes no options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Filter>> MakeSpotFilter(const PolicyOptions& options);

}  // namespace meridian
