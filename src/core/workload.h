// Workload: jobs and tenants, the demand side of the scheduling model.
//
// A Job is a gang of `replicas` identical tasks of one TaskShape that must all
// run at once (all-or-nothing). Tenants own jobs and carry a fair-share weight,
// a guaranteed quota and a borrowing limit. Priority classes name integer
// priorities. References to fleet entities (GPU types, regions, datasets) are
// resolved ids, so a Workload is only meaningful with the Fleet it was
// resolved against. Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/ids.h"
#include "core/resources.h"

namespace meridian {

enum class Objective { kCost, kTime, kWeighted };
const char* ObjectiveName(Objective o);

// One replica's demand. GPUs are either `gpus` whole GPUs (gpu_milli == 1000)
// or one fractional share (gpus == 1, 0 < gpu_milli < 1000), as in openb.
// CPU-only tasks have gpus == 0.
struct TaskShape {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t gpus = 0;
  int32_t gpu_milli = 1000;  // per-GPU share

  bool fractional() const { return gpus == 1 && gpu_milli < 1000; }
  int64_t total_gpu_milli() const { return fractional() ? gpu_milli : int64_t{gpus} * 1000; }
  Resources AsResources() const { return {cpu_milli, memory_mib, total_gpu_milli()}; }
};

struct GpuChoice {
  GpuTypeId type;
  double speed = 1.0;  // relative throughput; runtime = duration / speed
};

struct Job {
  std::string name;
  JobId id;
  TenantId tenant;
  int32_t replicas = 1;
  TaskShape shape;
  // Allowed GPU types with relative speed. Empty: any GPU type at speed 1.0.
  std::vector<GpuChoice> gpu_types;
  double duration_s = 3600;  // estimated runtime at speed 1.0
  DatasetId dataset;         // invalid: no input data
  // Residency: regions the job may run in. Empty: every region.
  std::vector<RegionId> allowed_regions;
  // Zones the job may run in (each in an allowed region). Empty: every zone
  // of the allowed regions.
  std::vector<ZoneId> allowed_zones;
  Objective objective = Objective::kTime;
  double cost_weight = 0.5;  // kWeighted: weight of cost vs completion time
  bool spot_allowed = false;
  bool cross_region_allowed = false;
  int32_t priority = 0;
  std::vector<std::string> tolerations;
  double submit_time_s = 0;

  Resources Demand() const { return shape.AsResources() * replicas; }
  // Speed of `type` for this job; 0 when the type is not allowed.
  double SpeedOn(GpuTypeId type) const;
  bool AllowsRegion(RegionId r) const;
  bool AllowsZone(ZoneId z) const;
};

struct Tenant {
  std::string name;
  TenantId id;
  double weight = 1.0;
  Resources guarantee;  // never preempted below this
  // Most the tenant may use beyond its guarantee by borrowing idle capacity.
  Resources borrow_limit{std::numeric_limits<int64_t>::max() / 4,
                         std::numeric_limits<int64_t>::max() / 4,
                         std::numeric_limits<int64_t>::max() / 4};
};

struct PriorityClass {
  std::string name;
  int32_t value = 0;
};

struct Workload {
  std::vector<Tenant> tenants;
  std::vector<PriorityClass> priority_classes;
  std::vector<Job> jobs;
};

}  // namespace meridian
