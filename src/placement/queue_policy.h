// QueuePolicy: the order in which pending jobs are offered to the planner.
//
// Inside one priority class the Scheduler keeps each tenant's pending jobs
// sorted by Key(job, 0) (then submit time, then id) and, at every step, offers
// the tenant head with the smallest Key(head, tenant_share), where
// tenant_share is the tenant's dominant resource share divided by its weight
// at that moment. So a policy whose key is the share gives weighted DRF
// across tenants with FIFO inside each tenant, a key of the submit time gives
// global FIFO, a key of the duration gives SJF, a key of attained service
// gives least-attained-service (Tiresias).
//
// Tier() is a sub-priority used for preemption: a pending job may preempt a
// running one of the same priority class whose tier is strictly higher
// (Tiresias demotes jobs to higher tiers as their attained service grows).
// Implementations are stateless; const methods are thread-safe.
#pragma once

#include <string_view>

#include "core/workload.h"

namespace meridian {

struct QueuedJob {
  const Job& job;
  double attained_gpu_s = 0;  // GPU-seconds this job has run so far (across preemptions)
};

class QueuePolicy {
 public:
  virtual ~QueuePolicy() = default;
  virtual std::string_view name() const = 0;
  // Lower goes first. Must not depend on time except through `j`; for a
  // pending job the result with tenant_share == 0 must stay fixed while it
  // waits (the scheduler keeps pending jobs in a sorted set by that key).
  virtual double Key(const QueuedJob& j, double tenant_share) const = 0;
  // True when Key() depends on tenant_share. When false the scheduler uses the
  // key computed at enqueue time and never calls Key() again while the job waits.
  virtual bool UsesTenantShare() const { return false; }
  // 0 = top tier. Default: every job in one tier.
  virtual int32_t Tier(const QueuedJob& j) const { return 0; }
  // Seconds between scheduling passes this policy needs even without
  // arrivals or completions (to re-evaluate tiers); 0 = none.
  virtual double PassIntervalSeconds() const { return 0; }
};

}  // namespace meridian
