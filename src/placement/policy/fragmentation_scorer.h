// Scorer "fragmentation": Fragmentation Gradient Descent (FGD; Weng et al.,
// ATC '23). The score is 100 × sigmoid(−Δ/1000), where Δ is the change of the
// node's expected GPU fragment over the task mix (placement/fragmentation.h;
// CPU- and memory-aware, absolute milli-GPUs, not divided by node size) when
// the replica lands there; for a shared-GPU replica the GPU inside the node
// is the one that grows the fragment least, and ChooseGpu() names it so the
// ClusterState allocates exactly that GPU. The task mix comes from the
// PlacementContext (DefaultTaskMix() when empty). Registered by
// RegisterBuiltinPolicies.
// Option `cpu_share` (default 2, 0..1000): Δ also gets this multiple of
// CpuShareCost (GPU capacity the replica's CPU and memory take beyond its GPUs
// in proportion), which FGD's measure only sees once a class stops fitting;
// 0 is FGD exactly as published.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeFragmentationScorer(const PolicyOptions& options);

}  // namespace meridian
