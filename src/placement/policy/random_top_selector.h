// Selector "random_top": uniformly random among the `k` best-scored
// candidates (default 3), drawn from the injected Rng. Spreads load and
// avoids herding when many schedulers share a fleet. Option: k (1..100000).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Selector>> MakeRandomTopSelector(const PolicyOptions& options);

}  // namespace meridian
