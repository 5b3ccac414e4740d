// Selector "max_score": the highest combined score; ties go to the lowest
// node id, so decisions are reproducible. No options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Selector>> MakeMaxScoreSelector(const PolicyOptions& options);

}  // namespace meridian
