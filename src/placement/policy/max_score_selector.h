// Selector "max_score": the highest combined score. Option `ties`: "node"
// (default) gives a tie to the lowest node id; "random" draws uniformly among
// the tied candidates from the injected Rng (as kube-scheduler does, which is
// what FGD's published numbers assume). Either way a seed fixes the decisions.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Selector>> MakeMaxScoreSelector(const PolicyOptions& options);

}  // namespace meridian
