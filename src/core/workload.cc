#include "core/workload.h"

#include <algorithm>

namespace meridian {

const char* ObjectiveName(Objective o) {
  switch (o) {
    case Objective::kCost:
      return "cost";
    case Objective::kTime:
      return "time";
    case Objective::kWeighted:
      return "weighted";
  }
  return "?";
}

double Job::SpeedOn(GpuTypeId type) const {
  if (gpu_types.empty()) return 1.0;
  for (const GpuChoice& c : gpu_types)
    if (c.type == type) return c.speed;
  return 0.0;
}

bool Job::AllowsRegion(RegionId r) const {
  return allowed_regions.empty() ||
         std::find(allowed_regions.begin(), allowed_regions.end(), r) != allowed_regions.end();
}

bool Job::AllowsZone(ZoneId z) const {
  return allowed_zones.empty() ||
         std::find(allowed_zones.begin(), allowed_zones.end(), z) != allowed_zones.end();
}

}  // namespace meridian
