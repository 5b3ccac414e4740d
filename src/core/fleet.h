// Fleet: the static description of every GPU node Meridian may use.
//
// A Fleet holds regions (a cloud location), zones inside regions, node groups
// (identical nodes: GPU type, per-node shape, prices, count) and the nodes
// expanded from them, links between regions (RTT, bandwidth, egress price)
// and datasets (size, home region). Entities are stored in vectors and
// addressed by strong ids (core/ids.h); names are unique per kind.
// A Fleet is immutable once built and validated (FleetBuilder / spec/):
// allocation state lives in placement/ClusterState, never here.
// Thread-compatible: share const references freely.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/ids.h"
#include "core/resources.h"

namespace meridian {

struct Region {
  std::string name;
  std::string cloud;     // "gcp", "aws", "azure", "onprem", ...
  std::string location;  // free text: "Iowa, US"
  // Fraction (0, 1] of the region's GPUs new work may fill before it spills
  // to the next-best region. 1.0 = no ceiling.
  double utilization_ceiling = 1.0;
};

struct Zone {
  std::string name;
  RegionId region;
};

struct NodeGroup {
  std::string name;
  RegionId region;
  ZoneId zone;
  GpuTypeId gpu_type;  // invalid for CPU-only nodes
  int32_t gpus_per_node = 0;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  double price_hour = 0;       // on-demand $/node-hour
  double spot_price_hour = 0;  // $/node-hour for the spot nodes of the group
  int32_t count = 0;           // on-demand nodes
  int32_t spot_count = 0;      // spot nodes (only jobs that allow spot may use them)
  std::vector<std::string> taints;
};

struct Node {
  std::string name;
  NodeGroupId group;
  RegionId region;
  ZoneId zone;
  GpuTypeId gpu_type;  // invalid for CPU-only nodes
  int32_t gpus = 0;
  Resources capacity;  // gpu_milli == gpus * 1000
  bool spot = false;
  bool healthy = true;
  double price_hour = 0;
  std::vector<std::string> taints;  // a job must tolerate every taint
};

struct Link {
  double rtt_ms = 0;
  double gbps = 0;              // sustained throughput
  double egress_usd_per_gb = 0;
  bool known = false;           // false: no measurement for this pair
};

struct Dataset {
  std::string name;
  double size_gb = 0;
  RegionId home;
};

class Fleet {
 public:
  const std::vector<Region>& regions() const { return regions_; }
  const std::vector<Zone>& zones() const { return zones_; }
  const std::vector<NodeGroup>& groups() const { return groups_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<std::string>& gpu_types() const { return gpu_types_; }
  const std::vector<Dataset>& datasets() const { return datasets_; }

  const Region& region(RegionId id) const { return regions_[id.index()]; }
  const Zone& zone(ZoneId id) const { return zones_[id.index()]; }
  const NodeGroup& group(NodeGroupId id) const { return groups_[id.index()]; }
  const Node& node(NodeId id) const { return nodes_[id.index()]; }
  const Dataset& dataset(DatasetId id) const { return datasets_[id.index()]; }
  const std::string& gpu_type_name(GpuTypeId id) const;  // "none" when invalid

  // Name lookups; invalid id when absent.
  RegionId FindRegion(std::string_view name) const;
  ZoneId FindZone(std::string_view name) const;
  GpuTypeId FindGpuType(std::string_view name) const;
  DatasetId FindDataset(std::string_view name) const;
  NodeId FindNode(std::string_view name) const;

  // Link from `a` to `b`. Same region: zero RTT, unlimited bandwidth, free.
  const Link& link(RegionId a, RegionId b) const {
    return links_[a.index() * regions_.size() + b.index()];
  }

  // Nodes of a region, in id order.
  const std::vector<NodeId>& region_nodes(RegionId r) const { return region_nodes_[r.index()]; }
  // Sum of node capacities in a region.
  const Resources& region_capacity(RegionId r) const { return region_capacity_[r.index()]; }
  const Resources& total_capacity() const { return total_capacity_; }

 private:
  friend class FleetBuilder;
  std::vector<Region> regions_;
  std::vector<Zone> zones_;
  std::vector<NodeGroup> groups_;
  std::vector<Node> nodes_;
  std::vector<std::string> gpu_types_;
  std::vector<Dataset> datasets_;
  std::vector<Link> links_;  // regions_.size()^2, row-major by source
  std::vector<std::vector<NodeId>> region_nodes_;
  std::vector<Resources> region_capacity_;
  Resources total_capacity_;
  absl::flat_hash_map<std::string, RegionId> region_by_name_;
  absl::flat_hash_map<std::string, ZoneId> zone_by_name_;
  absl::flat_hash_map<std::string, GpuTypeId> gpu_by_name_;
  absl::flat_hash_map<std::string, DatasetId> dataset_by_name_;
  absl::flat_hash_map<std::string, NodeId> node_by_name_;
};

// Builds a Fleet step by step. Add* methods return an error for a duplicate
// name or a reference to something not yet added; Build() expands node groups
// into nodes and finishes the indexes. Not thread-safe.
class FleetBuilder {
 public:
  FleetBuilder();

  absl::StatusOr<RegionId> AddRegion(Region region);
  absl::StatusOr<ZoneId> AddZone(std::string name, RegionId region);
  // Returns the existing id when the type is already known.
  GpuTypeId AddGpuType(std::string_view name);
  // Precondition: region/zone valid. gpu_type may be invalid (CPU-only).
  absl::StatusOr<NodeGroupId> AddNodeGroup(NodeGroup group);
  // Directed link; SetLink(a, b, l, true) also sets b -> a.
  absl::Status SetLink(RegionId a, RegionId b, Link link, bool symmetric);
  absl::StatusOr<DatasetId> AddDataset(Dataset dataset);
  // Per-node overrides applied after expansion, by node index inside the group.
  absl::Status SetNodeHealth(NodeGroupId group, int32_t index, bool healthy);
  absl::Status AddNodeTaint(NodeGroupId group, int32_t index, std::string taint);

  size_t num_regions() const { return fleet_.regions_.size(); }

  // Expands groups into nodes named "<group>-<index>" (spot nodes "<group>-spot-<index>").
  absl::StatusOr<Fleet> Build() &&;

 private:
  struct NodeOverride {
    NodeGroupId group;
    int32_t index = 0;
    bool set_healthy = false;
    bool healthy = true;
    std::string taint;
  };
  Fleet fleet_;
  std::vector<std::pair<std::pair<int32_t, int32_t>, Link>> links_;
  std::vector<NodeOverride> overrides_;
};

}  // namespace meridian
