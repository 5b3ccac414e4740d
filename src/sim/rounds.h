// Round mode of the simulator (SimOptions::round_s > 0), internal to
// meridian_sim: RunSimulation calls it. See rounds.cc for the loop.
#pragma once

#include "absl/status/statusor.h"
#include "sim/simulator.h"

namespace meridian::sim::internal {

// Errors: the policy's allocator or scheduler options are invalid; a job
// names a goodput application the model lacks; node failures or
// no-departures were asked for (not modelled in rounds).
absl::StatusOr<PolicyResult> RunRoundSimulation(const Fleet& fleet, const Trace& trace,
                                                const SimPolicy& policy, const SimOptions& options,
                                                const ProgressFn& progress);

}  // namespace meridian::sim::internal
