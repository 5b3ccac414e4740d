// Scorer "cost": prefers cheaper nodes: 100 / (1 + price per GPU-hour /
// reference_usd), per node-hour for CPU-only replicas.
// Registered by RegisterBuiltinPolicies. Option reference_usd (default 2.0).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeCostScorer(const PolicyOptions& options);

}  // namespace meridian
