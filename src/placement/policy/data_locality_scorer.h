// Scorer "data_locality": prefers nodes near the job's dataset: 100 in the home
// region, else 100 / (1 + egress dollars / 10 + transfer hours) over the
// link from the home region; 0 when no link is known. 100 without a dataset.
// Registered by RegisterBuiltinPolicies. No options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeDataLocalityScorer(const PolicyOptions& options);

}  // namespace meridian
