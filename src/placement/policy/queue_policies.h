// Built-in queue policies (see placement/queue_policy.h):
//   drf       weighted dominant-resource fairness across tenants, FIFO inside
//             a tenant (the default)
//   fifo      global submit order
//   sjf       shortest estimated duration first (oracle durations in the simulator)
//   las       Tiresias-style discretized two-dimensional least-attained-service:
//             attained service = GPUs x seconds run; tiers at `thresholds`
//             GPU-seconds (default "3600,36000"); FIFO inside a tier; a job in a
//             lower tier may preempt one in a higher tier; passes every
//             `interval_s` (default 60).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/queue_policy.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeDrfQueuePolicy(const PolicyOptions& options);
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeFifoQueuePolicy(const PolicyOptions& options);
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeSjfQueuePolicy(const PolicyOptions& options);
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeLasQueuePolicy(const PolicyOptions& options);

}  // namespace meridian
