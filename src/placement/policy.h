// Placement policy interfaces: Filter, Scorer, Selector.
//
// The engine (PlacementEngine) places one replica at a time: it gathers a
// bounded set of candidate nodes from the ClusterState index, keeps those that
// every Filter accepts, asks every Scorer for a score, combines the scores by
// the profile's weights and lets the Selector pick. Policies are stateless
// with respect to the cluster (all state comes in the PlacementContext), so
// one instance is shared by every decision. Implementations live in
// placement/policy/, one file pair each, and are created by name through the
// PolicyRegistry (placement/registry.h). Const methods must be thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/fleet.h"
#include "core/workload.h"
#include "placement/cluster_state.h"
#include "placement/fragmentation.h"

namespace meridian {

// Everything a policy may look at for one replica decision.
struct PlacementContext {
  const Fleet& fleet;
  const ClusterState& state;
  const Job& job;
  // Replicas of this gang already placed in the current attempt.
  std::span<const Allocation> gang_so_far;
  // Expected task mix (weights sum to 1); may be empty.
  std::span<const TaskClass> task_mix;
};

class Filter {
 public:
  virtual ~Filter() = default;
  virtual std::string_view name() const = 0;
  // True when the job's replica may be placed on `node`. Must not depend on
  // anything but the context and the node. Pre: node is a valid fleet node.
  virtual bool Feasible(const PlacementContext& ctx, NodeId node) const = 0;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual std::string_view name() const = 0;
  // Score in [0, 100]; higher is better. Pre: every filter accepted `node`
  // (in particular the replica fits there).
  virtual double Score(const PlacementContext& ctx, NodeId node) const = 0;
  // For a shared-GPU replica (shape.fractional()) on `node`, the GPU index the
  // scorer's score assumed, or -1 when it has no preference (the ClusterState
  // then takes the best-fitting GPU). The engine allocates the GPU named by
  // the first scorer with a weight > 0 that has a preference. Pre: as Score.
  virtual int ChooseGpu(const PlacementContext& /*ctx*/, NodeId /*node*/) const { return -1; }
};

struct ScoredCandidate {
  NodeId node;
  double score = 0;
};

class Selector {
 public:
  virtual ~Selector() = default;
  virtual std::string_view name() const = 0;
  // Index of the chosen candidate. Pre: !candidates.empty(). Post: < size().
  virtual size_t Select(std::span<const ScoredCandidate> candidates, Rng& rng) const = 0;
};

}  // namespace meridian
