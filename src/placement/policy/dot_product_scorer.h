// Scorer "dot_product": Tetris-style alignment (Grandl et al., SIGCOMM'14):
// the dot product of the replica's demand and the node's free resources, each
// normalised by the node's capacity (GPU, CPU, memory), scaled to [0, 100].
// Prefers nodes whose free shape matches the demand. A baseline in the FGD
// paper's comparison. No options.
// A CPU-only replica on a node with GPUs scores by the GPU capacity its CPU
// strands instead (CpuTaskStrandingScore in placement/fragmentation.h).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "placement/registry.h"

namespace meridian {

absl::StatusOr<std::unique_ptr<Scorer>> MakeDotProductScorer(const PolicyOptions& options);

}  // namespace meridian
