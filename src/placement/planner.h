// RegionPlanner: chooses the region(s) and GPU type for a job, then places it.
//
// For every (allowed region, allowed GPU type present there) the planner
// estimates completion time = queue wait (from a WaitEstimator) + dataset
// transfer over the link from the dataset's home + runtime scaled by the GPU
// type's speed, and dollar cost = GPU-hours x price + egress. Options are
// ranked by the job's objective (time, cost, or a weighted blend of both,
// each normalised by the best option) and tried in that order; the first
// that the PlacementEngine can place whole, without pushing its region past
// its utilization ceiling, wins. A job that allows cross-region and fits in no
// single region is split over the fewest regions, preferring the
// best-connected ones (lowest RTT, then highest bandwidth); the plan then
// records that the job must synchronise across regions.
//
// Not thread-safe: loop thread only (it uses the engine's scratch state).
#pragma once

#include <string>
#include <vector>

#include "placement/engine.h"

namespace meridian {

// Estimates how long `job` would wait before `gpu_type` capacity in `region`
// frees up. The Scheduler implements it from running jobs' expected ends.
class WaitEstimator {
 public:
  virtual ~WaitEstimator() = default;
  virtual double EstimateWaitSeconds(const ClusterState& state, const Job& job, RegionId region,
                                     GpuTypeId gpu_type) const = 0;
};

struct RegionEstimate {
  RegionId region;
  GpuTypeId gpu_type;
  double speed = 1.0;
  double wait_s = 0;
  double transfer_s = 0;
  double runtime_s = 0;
  double completion_s = 0;  // wait + transfer + runtime
  double compute_usd = 0;
  double egress_usd = 0;
  double cost_usd = 0;  // compute + egress
  double rank_key = 0;  // lower is better under the job's objective
};

struct Plan {
  bool placed = false;
  bool cross_region = false;  // replicas in several regions: hierarchical sync needed
  std::vector<RegionShare> shares;
  std::vector<ReplicaPlacement> replicas;
  std::vector<RegionEstimate> ranked;  // every option considered, best first
  // Filled when placement failed and explanations were asked for: one per
  // fleet region (regions outside residency get a note and no scan).
  std::vector<RegionExplanation> why_not;
  double est_cost_usd = 0;
  double est_completion_s = 0;
};

struct PlannerOptions {
  // Consider splitting a cross-region job over at most this many regions.
  int32_t max_split_regions = 4;
  // Record per-scorer parts for each replica (for `meridian place`).
  bool record_score_parts = false;
  // How GPU types of one region that rank equal for a job are ordered (the
  // first that fits is used). kPerJob: a pseudo-random order per job (hash
  // of job id and type name): a heterogeneity-unaware policy spreads over
  // the types, favouring none. kByName: one fixed order for every job (type
  // names): packing policies fill the types one after another, which leaves
  // the other types' pools whole. kFleetOrder: the order the fleet lists
  // them (for an imported node list, the list's order, which is what the FGD
  // authors' simulator iterates); the packing policies of `meridian sim` use
  // it, as their published baselines do.
  enum class TypeTies { kPerJob, kByName, kFleetOrder };
  TypeTies type_ties = TypeTies::kPerJob;
};

class RegionPlanner {
 public:
  // `fleet` and `engine` must outlive the planner.
  RegionPlanner(const Fleet* fleet, const PlacementEngine* engine, PlannerOptions options);

  // Ranks the options for `job` without placing it: by the job's objective,
  // then region; GPU types of one region that tie go in a per-job
  // pseudo-random order (hash of job id and type name), never fleet order.
  std::vector<RegionEstimate> Rank(const ClusterState& state, const Job& job,
                                   const WaitEstimator* waits) const;

  // Ranks, then places (committing to `state`) or explains when `explain`.
  Plan PlaceJob(ClusterState& state, const Job& job, const WaitEstimator* waits,
                std::span<const TaskClass> task_mix, Rng& rng, bool explain) const;

  // Same, but only over the regions/types in `restrict_to` (already ranked),
  // without explanations. Used by preemption and backfill trials.
  Plan PlaceOnly(ClusterState& state, const Job& job, std::span<const RegionEstimate> options,
                 std::span<const TaskClass> task_mix, Rng& rng) const;

  // Cheapest price per GPU-hour of `gpu_type` in `region` (spot if `spot`);
  // 0 when the region has no such nodes.
  double PricePerGpuHour(RegionId region, GpuTypeId gpu_type, bool spot) const;

  // Explanation for one region, including region-level notes.
  RegionExplanation ExplainRegion(const ClusterState& state, const Job& job, RegionId r) const;

 private:
  bool UnderCeiling(const ClusterState& state, const Job& job, RegionId r, int32_t replicas) const;

  const Fleet* fleet_;
  const PlacementEngine* engine_;
  PlannerOptions options_;
  // [region][gpu type + 1] -> cheapest $/GPU-hour (on-demand, spot); slot 0 is CPU-only ($/node-hour).
  std::vector<std::vector<std::pair<double, double>>> prices_;
};

}  // namespace meridian
