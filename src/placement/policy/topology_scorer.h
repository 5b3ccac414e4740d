// Scorer "topology": keeps a gang on the fewest nodes and zones: 100 on a
// node that already holds a replica of the gang, 60 in a zone that does, 20
// elsewhere; for the first replica, the share of the gang the node could hold.
// Registered by RegisterBuiltinPolicies. No options.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeTopologyScorer(const PolicyOptions& options);

}  // namespace meridian
