// Scheduler: the queue in front of the placement engine.
//
// One Schedule() pass walks the pending jobs by priority class (highest
// first); inside a class it serves tenants by weighted dominant resource
// fairness (DRF over GPU, CPU and memory: the tenant with the smallest
// dominant share / weight goes next) and each tenant's jobs in submit order.
// Every job is checked against its tenant's quota (guarantee + borrowing
// limit), then planned and placed by the RegionPlanner. A job that does not
// fit may preempt a minimal set of strictly lower-priority running jobs, never
// taking a victim's tenant below its guarantee. The first job that still
// cannot start holds a reservation (EASY backfill): later jobs start only if
// they end, by their estimated duration, before the reservation's start, or
// they leave the reserved GPU pool enough room for it.
//
// Time comes from the injected Clock, randomness from the injected Rng; the
// same inputs give the same decisions. Not thread-safe: owned by one loop
// thread (the controller's scheduling loop or the simulator).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/clock.h"
#include "placement/planner.h"

namespace meridian {

struct SchedulerOptions {
  EngineOptions engine;
  PlannerOptions planner;
  // Order of pending jobs inside a priority class (placement/queue_policy.h).
  std::string queue_policy = "drf";
  PolicyOptions queue_policy_options;
  // Stop a pass after this many placement attempts failed (0 = look at every
  // pending job). Bounds a pass on deep queues, like Slurm's queue depth. Jobs
  // skipped because no capacity was freed since their last attempt do not count.
  int32_t max_waiting_per_pass = 0;
  bool enable_preemption = true;
  bool enable_backfill = true;
  // Fill Decision::plan.why_not for jobs left waiting (a full scan per region).
  bool explain = true;
  // Running jobs considered as preemption victims per region option.
  int32_t max_victim_candidates = 256;
  // Learned task mix (fragmentation scoring): a shape's weight halves after
  // this many further replicas were submitted, so the mix follows the workload.
  double task_mix_half_life = 5000;
};

enum class DecisionKind {
  kPlaced,       // started now
  kBackfilled,   // started now, ahead of a blocked job that holds a reservation
  kPreempting,   // started now after evicting `victims`
  kPreempted,    // this running job was evicted and is pending again
  kWaiting,      // still pending; `reasons` and plan.why_not say why
};
const char* DecisionKindName(DecisionKind k);

struct Decision {
  JobId job;
  DecisionKind kind = DecisionKind::kWaiting;
  Plan plan;
  std::vector<JobId> victims;        // kPreempting
  std::vector<std::string> reasons;  // kWaiting: quota, reservation, never-fits ...
  double reservation_start_s = -1;   // kWaiting holder of the reservation: estimated start
};

class Scheduler final : public WaitEstimator {
 public:
  // `fleet`, `clock` and `rng` must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const Fleet* fleet,
                                                           const PolicyRegistry& registry,
                                                           SchedulerOptions options,
                                                           const Clock* clock, Rng* rng);

  // Tenants must be added before their jobs. Ids must be dense from 0.
  absl::Status AddTenant(const Tenant& tenant);
  // Queues a job. Errors: duplicate id, unknown tenant, invalid shape.
  absl::Status Submit(const Job& job);
  // Takes over a job that already runs with replica i on nodes[i] (a
  // controller rebuilding its scheduler after the node set changed or after a
  // restart). The replicas' resources are allocated as if just placed.
  // FailedPrecondition when a replica no longer fits its node (the caller
  // re-queues the job); the same errors as Submit otherwise.
  absl::Status Adopt(const Job& job, const std::vector<NodeId>& nodes);
  // A running job ended: its resources return to the pool. NotFound when the
  // job is not running.
  absl::Status Finish(JobId job);
  // Forgets a job, pending or running (a cancelled job); a running job's
  // resources return to the pool. NotFound when the job is unknown.
  absl::Status Remove(JobId job);
  // A node failed or recovered. Running jobs with a replica on a failed node
  // are re-queued whole (their other replicas released); returns their ids.
  std::vector<JobId> SetNodeHealthy(NodeId node, bool healthy);

  // One pass over the queue; returns a decision per job it looked at plus one
  // per evicted job.
  std::vector<Decision> Schedule();

  // Fixes the task mix used by fragmentation scoring to a known workload (a
  // trace). Default: learned online from the replica shapes of submitted jobs
  // (CPU-only ones included), every shape's count decaying with half-life
  // SchedulerOptions::task_mix_half_life, reduced by BuildTaskMix.
  void SetTaskMix(std::vector<TaskClass> mix);
  const std::vector<TaskClass>& task_mix() const { return task_mix_; }

  const ClusterState& state() const { return state_; }
  const RegionPlanner& planner() const { return *planner_; }
  const Job* job(JobId id) const;
  bool IsRunning(JobId id) const;
  std::vector<JobId> pending() const;
  std::vector<JobId> running() const;
  // Allocations of a running job (empty otherwise).
  const std::vector<Allocation>& allocations(JobId id) const;
  // GPU-seconds a job has run so far (including the current run).
  double attained_gpu_s(JobId id) const;
  // Time of the next pass the queue policy needs without events (0 = none).
  double pass_interval_s() const { return queue_policy_->PassIntervalSeconds(); }
  const QueuePolicy& queue_policy() const { return *queue_policy_; }
  const Resources& tenant_usage(TenantId t) const { return tenants_[t.index()].usage; }
  const Tenant& tenant(TenantId t) const { return tenants_[t.index()].spec; }
  size_t num_tenants() const { return tenants_.size(); }

  double EstimateWaitSeconds(const ClusterState& state, const Job& job, RegionId region,
                             GpuTypeId gpu_type) const override;

 private:
  enum class State { kPending, kRunning };
  // Pending-set order inside one (priority, tenant) queue.
  using PendingKey = std::tuple<double, double, JobId>;  // (policy key, submit, id)
  struct Entry {
    Job job;
    State state = State::kPending;
    std::vector<Allocation> allocations;
    std::vector<std::pair<int, int64_t>> pool_gpu;  // (pool, milli-GPUs held there)
    double start_s = 0;
    double expected_end_s = 0;
    double attained_gpu_s = 0;  // completed runs only; see attained_gpu_s()
    PendingKey pending_key;
    // capacity_version_ when placement last failed for lack of room: while no
    // capacity has been freed since, placement cannot succeed and is skipped.
    uint64_t failed_version = UINT64_MAX;
  };
  struct TenantEntry {
    Tenant spec;
    Resources usage;
  };
  struct Reservation {
    JobId holder;
    int pool = -1;
    double start_s = 0;
    int64_t extra_gpu_milli = 0;  // room left in the pool at start_s beyond the holder's need
  };

  Scheduler(const Fleet* fleet, SchedulerOptions options, const Clock* clock, Rng* rng);

  void Enqueue(Entry& e);
  void Dequeue(Entry& e);
  double Attained(const Entry& e) const;
  int32_t TierOf(const Entry& e) const;
  bool QuotaAllows(const Entry& e, std::string* why) const;
  void Start(Entry& e, const Plan& plan);
  void Stop(Entry& e);  // releases; the job becomes pending
  bool TryPreempt(Entry& e, Decision& d, std::vector<Decision>& out);
  // Earliest time `demand_gpu_milli` is free in `pool` as running jobs end; +inf if never.
  double PoolFreeAt(int pool, int64_t demand_gpu_milli, int64_t* extra) const;
  void LearnShape(const TaskShape& shape, int32_t replicas, GpuTypeId type);
  void RebuildTaskMix();

  const Fleet* fleet_;
  SchedulerOptions options_;
  const Clock* clock_;
  Rng* rng_;
  std::unique_ptr<PlacementEngine> engine_;
  std::unique_ptr<RegionPlanner> planner_;
  ClusterState state_;
  std::vector<TenantEntry> tenants_;
  std::unique_ptr<QueuePolicy> queue_policy_;
  std::map<JobId, Entry> jobs_;  // ordered: deterministic iteration
  // priority (high first) -> tenant -> pending jobs in policy order
  std::map<int32_t, std::vector<std::set<PendingKey>>, std::greater<>> pending_;
  std::set<JobId> running_;
  uint64_t capacity_version_ = 0;  // bumped whenever capacity is freed
  // Quick reject for preemption: lowest priority and highest tier among
  // running jobs; recomputed when stale (running set changed or time moved).
  struct VictimBound {
    bool valid = false;
    double at_s = 0;
    int32_t min_priority = 0;
    int32_t max_tier = 0;
  };
  VictimBound victim_bound_;
  // Per GPU pool: (expected end, job, milli-GPUs it frees) of running jobs.
  std::vector<std::set<std::tuple<double, JobId, int64_t>>> pool_ends_;
  std::vector<TaskClass> task_mix_;
  bool task_mix_fixed_ = false;
  bool task_mix_dirty_ = false;
  // Learned task mix: (cpu, memory, gpus, milli per GPU, the one allowed GPU
  // type or -1) -> decayed replica count.
  std::map<std::tuple<int64_t, int64_t, int32_t, int32_t, int32_t>, double> shape_counts_;
  double mix_increment_ = 1;
};

}  // namespace meridian
