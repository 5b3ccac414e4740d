#include "testing/jobs.h"

#include <string>

#include "core/clock.h"

namespace meridian::test {

TaskShape WholeGpus(int32_t n) {
  if (n == 0) return TaskShape{2000, 4096, 0, 1000};
  return TaskShape{4000 * int64_t{n}, 16384 * int64_t{n}, n, 1000};
}

TaskShape GpuShare(int32_t milli) { return TaskShape{1000, 4096, 1, milli}; }

Job MakeJob(int32_t id, int32_t tenant, TaskShape shape, int32_t replicas) {
  Job j;
  j.name = "job-" + std::to_string(id);
  j.id = JobId(id);
  j.tenant = TenantId(tenant);
  j.shape = shape;
  j.replicas = replicas;
  j.submit_time_s = id;
  return j;
}

Tenant MakeTenant(int32_t id, double weight) {
  Tenant t;
  t.name = "tenant-" + std::to_string(id);
  t.id = TenantId(id);
  t.weight = weight;
  return t;
}

SyntheticJobOptions RandomJobOptions(uint64_t seed) {
  Rng rng(seed * 104729 + 5);
  SyntheticJobOptions o;
  o.jobs = static_cast<int32_t>(rng.Uniform(20, 120));
  o.tenants = static_cast<int32_t>(rng.Uniform(1, 4));
  o.max_replicas = static_cast<int32_t>(rng.Uniform(1, 8));
  o.fractional_share = 0.4 * rng.UniformReal();
  o.residency_share = 0.4 * rng.UniformReal();
  o.spot_share = 0.5 * rng.UniformReal();
  o.cross_region_share = 0.3 * rng.UniformReal();
  o.priorities = static_cast<int32_t>(rng.Uniform(1, 3));
  o.seed = seed;
  return o;
}

}  // namespace meridian::test
