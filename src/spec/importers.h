// Importers: fleets built from real public data sets, read at run time.
//
// Nothing here is committed data: the caller passes paths under
// ../shared/data (or a user's own copies in the same formats). Every format
// error names the file and line.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/fleet.h"

namespace meridian::spec {

struct OpenbImportOptions {
  std::string region = "openb";  // all openb nodes go into this one region/zone
  bool include_cpu_only = true;  // nodes with gpu == 0
  double price_per_gpu_hour = 2.0;  // openb has no prices; flat, documented default
};

// Alibaba openb node list (csv: sn,cpu_milli,memory_mib,gpu,model). Nodes with
// identical (model, gpu, cpu, memory) become one node group.
absl::StatusOr<Fleet> ImportOpenbFleet(const std::string& node_csv,
                                       const OpenbImportOptions& options);

struct GcpImportOptions {
  // Regions to include (GCP names like "us-central1"); empty = every region
  // that has both prices and Skyplane measurements.
  std::vector<std::string> regions;
  // GPU types (gpu_type column, e.g. "a100", "h100-80gb", "l4"); empty = all.
  std::vector<std::string> gpu_types;
  int32_t nodes_per_group = 4;
  int32_t spot_nodes_per_group = 0;
  // Only machine types with this many GPUs (largest shape of each type
  // when 0).
  int32_t gpus_per_node = 0;
};

// Multi-region fleet from gcp_gpu_instance_prices.csv (prices per region and
// machine type) plus Skyplane latency.csv (RTT), throughput.csv.gz (Gbit/s)
// and cost.csv (egress $/GB) for gcp->gcp pairs. `skyplane_dir` holds the
// three Skyplane files. Region pairs without a measurement get no link.
absl::StatusOr<Fleet> ImportGcpFleet(const std::string& prices_csv,
                                     const std::string& skyplane_dir,
                                     const GcpImportOptions& options);

}  // namespace meridian::spec
