#include "core/synthetic.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
struct GpuKind {
  const char* name;
  int32_t gpus;
  int64_t cpu;
  int64_t mem_gib;
  double price;
};
constexpr GpuKind kKinds[] = {{"a100", 8, 96, 680, 29.4},
                              {"h100", 8, 208, 1872, 88.3},
                              {"l4", 4, 48, 192, 4.0},
                              {"v100", 4, 32, 256, 6.0}};
}  // namespace

absl::StatusOr<Fleet> MakeSyntheticFleet(const SyntheticFleetOptions& o) {
  if (o.nodes < 1 || o.regions < 1 || o.zones_per_region < 1 || o.gpu_types < 1 ||
      o.gpu_types > 4)
    return absl::InvalidArgumentError("synthetic fleet: nodes, regions, zones >= 1; gpu_types 1..4");
  Rng rng(o.seed);
  FleetBuilder b;
  std::vector<std::vector<ZoneId>> zones(size_t(o.regions));
  std::vector<RegionId> regions;
  for (int32_t r = 0; r < o.regions; ++r) {
    Region region;
    region.name = absl::StrCat("region-", r);
    region.cloud = r % 2 == 0 ? "gcp" : "aws";
    region.location = absl::StrCat("site ", r);
    region.utilization_ceiling = o.utilization_ceiling;
    auto id = b.AddRegion(region);
    if (!id.ok()) return id.status();
    regions.push_back(*id);
    for (int32_t z = 0; z < o.zones_per_region; ++z) {
      auto zid = b.AddZone(absl::StrCat(region.name, "-", z), *id);
      if (!zid.ok()) return zid.status();
      zones[size_t(r)].push_back(*zid);
    }
  }
  // One group per (region, zone, GPU kind); nodes spread evenly.
  const int32_t groups = o.regions * o.zones_per_region * o.gpu_types;
  int32_t left = o.nodes;
  int32_t gi = 0;
  for (int32_t r = 0; r < o.regions; ++r)
    for (int32_t z = 0; z < o.zones_per_region; ++z)
      for (int32_t k = 0; k < o.gpu_types; ++k, ++gi) {
        int32_t count = o.nodes / groups + (gi < o.nodes % groups ? 1 : 0);
        left -= count;
        if (count == 0) continue;
        const GpuKind& kind = kKinds[k];
        NodeGroup g;
        g.name = absl::StrCat("r", r, "z", z, "-", kind.name);
        g.region = regions[size_t(r)];
        g.zone = zones[size_t(r)][size_t(z)];
        g.gpu_type = b.AddGpuType(kind.name);
        g.gpus_per_node = kind.gpus;
        g.cpu_milli = kind.cpu * 1000;
        g.memory_mib = kind.mem_gib * 1024;
        double regional = 0.85 + 0.3 * rng.UniformReal();
        g.price_hour = kind.price * regional;
        g.spot_price_hour = g.price_hour * 0.3;
        g.spot_count = static_cast<int32_t>(count * o.spot_fraction);
        g.count = count - g.spot_count;
        if (rng.UniformReal() < o.tainted_fraction) g.taints.push_back("dedicated=team");
        auto id = b.AddNodeGroup(g);
        if (!id.ok()) return id.status();
        for (int32_t i = 0; i < count; ++i)
          if (rng.UniformReal() < o.unhealthy_fraction) (void)b.SetNodeHealth(*id, i, false);
      }
  for (int32_t a = 0; a < o.regions; ++a)
    for (int32_t c = a + 1; c < o.regions; ++c) {
      Link l;
      l.rtt_ms = 10 + 140 * rng.UniformReal();
      l.gbps = 1 + 9 * rng.UniformReal();
      l.egress_usd_per_gb = 0.01 + 0.08 * rng.UniformReal();
      if (auto s = b.SetLink(regions[size_t(a)], regions[size_t(c)], l, true); !s.ok()) return s;
    }
  for (int32_t r = 0; r < o.regions; ++r) {
    Dataset d;
    d.name = absl::StrCat("data-", r);
    d.size_gb = 10 + 490 * rng.UniformReal();
    d.home = regions[size_t(r)];
    if (auto s = b.AddDataset(d); !s.ok()) return s.status();
  }
  return std::move(b).Build();
}

Workload MakeSyntheticJobs(const Fleet& fleet, const SyntheticJobOptions& o) {
  Rng rng(o.seed);
  Workload w;
  const int64_t total_gpu = fleet.total_capacity().gpu_milli;
  for (int32_t t = 0; t < o.tenants; ++t) {
    Tenant tenant;
    tenant.name = absl::StrCat("tenant-", t);
    tenant.id = TenantId(t);
    tenant.weight = t + 1;
    tenant.guarantee.gpu_milli = total_gpu / (4 * std::max(1, o.tenants)) / 1000 * 1000;
    w.tenants.push_back(tenant);
  }
  const int32_t nregions = static_cast<int32_t>(fleet.regions().size());
  const int32_t ntypes = static_cast<int32_t>(fleet.gpu_types().size());
  for (int32_t j = 0; j < o.jobs; ++j) {
    Job job;
    job.name = absl::StrCat("job-", j);
    job.id = JobId(j);
    job.tenant = TenantId(static_cast<int32_t>(rng.Uniform(0, o.tenants - 1)));
    // Gang sizes: powers of two up to max_replicas, small ones most often.
    int32_t r = 1;
    while (r * 2 <= o.max_replicas && rng.UniformReal() < 0.4) r *= 2;
    job.replicas = r;
    if (rng.UniformReal() < o.fractional_share) {
      job.shape = TaskShape{1000, 4096, 1, static_cast<int32_t>(rng.Uniform(1, 9) * 100)};
    } else {
      int32_t g = 1 << rng.Uniform(0, 3);
      job.shape = TaskShape{int64_t{g} * 4000, int64_t{g} * 32768, g, 1000};
    }
    if (ntypes > 0 && rng.UniformReal() < 0.5) {
      int32_t k = static_cast<int32_t>(rng.Uniform(0, ntypes - 1));
      job.gpu_types.push_back({GpuTypeId(k), 1.0});
      if (ntypes > 1) job.gpu_types.push_back({GpuTypeId((k + 1) % ntypes), 0.5 + rng.UniformReal()});
    }
    job.duration_s = 60.0 * double(rng.Uniform(1, 600));
    if (!fleet.datasets().empty() && rng.UniformReal() < 0.5)
      job.dataset = DatasetId(static_cast<int32_t>(rng.Uniform(0, int64_t(fleet.datasets().size()) - 1)));
    if (rng.UniformReal() < o.residency_share) {
      job.allowed_regions.push_back(RegionId(static_cast<int32_t>(rng.Uniform(0, nregions - 1))));
      if (nregions > 1 && rng.UniformReal() < 0.5)
        job.allowed_regions.push_back(RegionId((job.allowed_regions[0].value() + 1) % nregions));
    }
    job.objective = static_cast<Objective>(rng.Uniform(0, 2));
    job.spot_allowed = rng.UniformReal() < o.spot_share;
    job.cross_region_allowed = rng.UniformReal() < o.cross_region_share;
    job.priority = static_cast<int32_t>(rng.Uniform(0, std::max(1, o.priorities) - 1)) * 10;
    job.submit_time_s = j;
    w.jobs.push_back(std::move(job));
  }
  return w;
}

}  // namespace meridian
