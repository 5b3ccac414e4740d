// PlacementEngine: places the replicas of one gang on nodes, all or nothing.
//
// For every replica the engine gathers at most `max_candidates` nodes per pool
// from the ClusterState index (half from the tightest end, half from the
// loosest, plus the nodes already holding replicas of the gang), keeps those
// every Filter accepts (CPU-only work: only CPU-only nodes when any fits),
// combines the Scorers' scores by weight and lets the Selector pick; a
// shared-GPU replica takes the GPU the first preferring scorer chose.
// The replica is allocated at once, so later replicas see it; if any replica
// cannot be placed every allocation of the attempt is released (rollback) and
// the ClusterState is exactly as before.
//
// Explain() answers "why not here?" by running every filter over every node of
// a region and counting the nodes each filter removed, like Slurm's pending
// reasons but per region.
//
// Not thread-safe (scratch buffers): one engine per scheduling loop thread.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "placement/cluster_state.h"
#include "placement/policy.h"
#include "placement/registry.h"

namespace meridian {

struct ScorerSpec {
  std::string name;
  double weight = 1.0;
  PolicyOptions options;
};

struct EngineOptions {
  // Applied in this order; Explain() charges a node to the first that rejects it.
  std::vector<std::string> filters = {"health", "residency", "gpu_type", "spot", "taints",
                                      "capacity"};
  std::vector<ScorerSpec> scorers = {{"best_fit", 1.0, {}},     {"fragmentation", 1.0, {}},
                                     {"topology", 2.0, {}},     {"cost", 0.5, {}},
                                     {"data_locality", 0.5, {}}};
  std::string selector = "max_score";
  PolicyOptions selector_options;
  // Nodes scored per replica: up to half from the tightest end of each pool
  // and half from the loosest. More finds better nodes and costs time; a bound
  // of twice the largest pool scores every feasible node (packing policies in
  // the simulator use 4096, which covers the openb pools).
  int max_candidates = 16;
  // CPU-only replicas go to CPU-only nodes whenever one of the candidates is
  // one; GPU nodes are scored only when none fits (then the scorers decide).
  bool cpu_jobs_on_cpu_nodes_first = true;
};

// Where some replicas of a gang go: a region and a GPU type (invalid for
// CPU-only jobs, meaning any pool of the region).
struct RegionShare {
  RegionId region;
  GpuTypeId gpu_type;
  int32_t replicas = 0;
};

struct ScorePart {
  std::string_view scorer;
  double weight = 0;
  double score = 0;
};

struct ReplicaPlacement {
  Allocation allocation;
  double score = 0;             // weighted sum
  std::vector<ScorePart> parts;  // filled when asked for
};

struct FilterCount {
  std::string_view filter;
  int32_t nodes_removed = 0;
};

struct RegionExplanation {
  RegionId region;
  int32_t nodes_total = 0;
  std::vector<FilterCount> removed;  // in filter order, only filters that removed nodes
  int32_t nodes_fitting = 0;         // nodes every filter accepts for one replica
  std::vector<std::string> notes;    // region-level reasons (residency, quota, ceiling, ...)
};

class PlacementEngine {
 public:
  static absl::StatusOr<std::unique_ptr<PlacementEngine>> Create(const PolicyRegistry& registry,
                                                                 EngineOptions options);

  // Places job.replicas replicas split as `shares` (their replicas must sum to
  // job.replicas). On success appends one ReplicaPlacement per replica to
  // `out` and returns true; the allocations are committed to `state`. On
  // failure returns false and `state` and `out` are unchanged.
  bool PlaceGang(ClusterState& state, const Job& job, std::span<const RegionShare> shares,
                 std::span<const TaskClass> task_mix, Rng& rng, bool record_parts,
                 std::vector<ReplicaPlacement>* out) const;

  // How many replicas of `job` (up to `limit`) fit in the share's region and
  // GPU type right now. Leaves `state` unchanged.
  int32_t CountFit(ClusterState& state, const Job& job, RegionId region, GpuTypeId gpu_type,
                   int32_t limit, std::span<const TaskClass> task_mix, Rng& rng) const;

  // Full scan of `region`: nodes removed per filter for one replica of `job`.
  RegionExplanation Explain(const ClusterState& state, const Job& job, RegionId region) const;

  const EngineOptions& options() const { return options_; }

 private:
  PlacementEngine() = default;
  // Places one replica; returns false when no candidate passes the filters.
  bool PlaceOne(ClusterState& state, const Job& job, const RegionShare& share,
                std::span<const TaskClass> task_mix, Rng& rng, bool record_parts,
                std::vector<Allocation>& gang, ReplicaPlacement* out) const;

  EngineOptions options_;
  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<std::unique_ptr<Scorer>> scorers_;
  std::vector<double> weights_;
  std::unique_ptr<Selector> selector_;
  mutable std::vector<NodeId> candidates_;
  mutable std::vector<uint32_t> seen_;  // per node: epoch_ when last considered
  mutable uint32_t epoch_ = 0;
  mutable std::vector<int> exhausted_;
  mutable std::vector<ScoredCandidate> scored_;
  mutable std::vector<Allocation> gang_;
};

}  // namespace meridian
