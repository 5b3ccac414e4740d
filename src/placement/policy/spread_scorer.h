// Scorer "spread": the opposite of best_fit; prefers the emptiest node and
// avoids putting two replicas of one job on one node (for serving replicas).
// Registered by RegisterBuiltinPolicies. No options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeSpreadScorer(const PolicyOptions& options);

}  // namespace meridian
