#include "core/fleet.h"

#include "absl/strings/str_cat.h"

namespace meridian {

namespace {
const std::string kNone = "none";
template <typename IdT, typename Map>
IdT Lookup(const Map& m, std::string_view name) {
  // Debian's abseil has its own string_view type: convert for heterogeneous lookup.
  auto it = m.find(absl::string_view(name.data(), name.size()));
  return it == m.end() ? IdT() : it->second;
}
}  // namespace

const std::string& Fleet::gpu_type_name(GpuTypeId id) const {
  return id.Valid() ? gpu_types_[id.index()] : kNone;
}
RegionId Fleet::FindRegion(std::string_view name) const {
  return Lookup<RegionId>(region_by_name_, name);
}
ZoneId Fleet::FindZone(std::string_view name) const { return Lookup<ZoneId>(zone_by_name_, name); }
GpuTypeId Fleet::FindGpuType(std::string_view name) const {
  return Lookup<GpuTypeId>(gpu_by_name_, name);
}
DatasetId Fleet::FindDataset(std::string_view name) const {
  return Lookup<DatasetId>(dataset_by_name_, name);
}
NodeId Fleet::FindNode(std::string_view name) const { return Lookup<NodeId>(node_by_name_, name); }

FleetBuilder::FleetBuilder() = default;

absl::StatusOr<RegionId> FleetBuilder::AddRegion(Region region) {
  if (region.name.empty()) return absl::InvalidArgumentError("region name is empty");
  if (fleet_.region_by_name_.contains(region.name))
    return absl::AlreadyExistsError(absl::StrCat("duplicate region '", region.name, "'"));
  if (!(region.utilization_ceiling > 0 && region.utilization_ceiling <= 1))
    return absl::InvalidArgumentError(
        absl::StrCat("region '", region.name, "': utilization_ceiling must be in (0, 1]"));
  RegionId id(static_cast<int32_t>(fleet_.regions_.size()));
  fleet_.region_by_name_[region.name] = id;
  fleet_.regions_.push_back(std::move(region));
  return id;
}

absl::StatusOr<ZoneId> FleetBuilder::AddZone(std::string name, RegionId region) {
  if (!region.Valid() || region.index() >= fleet_.regions_.size())
    return absl::InvalidArgumentError("zone refers to an unknown region");
  if (fleet_.zone_by_name_.contains(name))
    return absl::AlreadyExistsError(absl::StrCat("duplicate zone '", name, "'"));
  ZoneId id(static_cast<int32_t>(fleet_.zones_.size()));
  fleet_.zone_by_name_[name] = id;
  fleet_.zones_.push_back(Zone{std::move(name), region});
  return id;
}

GpuTypeId FleetBuilder::AddGpuType(std::string_view name) {
  auto it = fleet_.gpu_by_name_.find(absl::string_view(name.data(), name.size()));
  if (it != fleet_.gpu_by_name_.end()) return it->second;
  GpuTypeId id(static_cast<int32_t>(fleet_.gpu_types_.size()));
  fleet_.gpu_types_.emplace_back(name);
  fleet_.gpu_by_name_[std::string(name)] = id;
  return id;
}

absl::StatusOr<NodeGroupId> FleetBuilder::AddNodeGroup(NodeGroup g) {
  if (!g.region.Valid() || g.region.index() >= fleet_.regions_.size())
    return absl::InvalidArgumentError(absl::StrCat("node group '", g.name, "': unknown region"));
  if (!g.zone.Valid() || g.zone.index() >= fleet_.zones_.size() ||
      fleet_.zones_[g.zone.index()].region != g.region)
    return absl::InvalidArgumentError(
        absl::StrCat("node group '", g.name, "': zone not in its region"));
  if (g.count < 0 || g.spot_count < 0 || g.cpu_milli <= 0 || g.memory_mib <= 0 ||
      g.gpus_per_node < 0 || g.price_hour < 0 || g.spot_price_hour < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("node group '", g.name, "': sizes must be positive and counts non-negative"));
  if ((g.gpus_per_node > 0) != g.gpu_type.Valid())
    return absl::InvalidArgumentError(
        absl::StrCat("node group '", g.name, "': gpus and gpu type must be given together"));
  for (const NodeGroup& other : fleet_.groups_)
    if (other.name == g.name)
      return absl::AlreadyExistsError(absl::StrCat("duplicate node group '", g.name, "'"));
  NodeGroupId id(static_cast<int32_t>(fleet_.groups_.size()));
  fleet_.groups_.push_back(std::move(g));
  return id;
}

absl::Status FleetBuilder::SetLink(RegionId a, RegionId b, Link link, bool symmetric) {
  if (!a.Valid() || !b.Valid() || a.index() >= fleet_.regions_.size() ||
      b.index() >= fleet_.regions_.size())
    return absl::InvalidArgumentError("link refers to an unknown region");
  if (link.rtt_ms < 0 || link.gbps <= 0 || link.egress_usd_per_gb < 0)
    return absl::InvalidArgumentError("link needs rtt_ms >= 0, gbps > 0, egress >= 0");
  link.known = true;
  links_.push_back({{a.value(), b.value()}, link});
  if (symmetric) links_.push_back({{b.value(), a.value()}, link});
  return absl::OkStatus();
}

absl::StatusOr<DatasetId> FleetBuilder::AddDataset(Dataset d) {
  if (fleet_.dataset_by_name_.contains(d.name))
    return absl::AlreadyExistsError(absl::StrCat("duplicate dataset '", d.name, "'"));
  if (!d.home.Valid() || d.home.index() >= fleet_.regions_.size())
    return absl::InvalidArgumentError(absl::StrCat("dataset '", d.name, "': unknown home region"));
  if (d.size_gb < 0)
    return absl::InvalidArgumentError(absl::StrCat("dataset '", d.name, "': negative size"));
  DatasetId id(static_cast<int32_t>(fleet_.datasets_.size()));
  fleet_.dataset_by_name_[d.name] = id;
  fleet_.datasets_.push_back(std::move(d));
  return id;
}

absl::Status FleetBuilder::SetNodeHealth(NodeGroupId group, int32_t index, bool healthy) {
  NodeOverride o;
  o.group = group;
  o.index = index;
  o.set_healthy = true;
  o.healthy = healthy;
  overrides_.push_back(std::move(o));
  return absl::OkStatus();
}

absl::Status FleetBuilder::AddNodeTaint(NodeGroupId group, int32_t index, std::string taint) {
  NodeOverride o;
  o.group = group;
  o.index = index;
  o.taint = std::move(taint);
  overrides_.push_back(std::move(o));
  return absl::OkStatus();
}

absl::StatusOr<Fleet> FleetBuilder::Build() && {
  Fleet& f = fleet_;
  const size_t nr = f.regions_.size();
  int64_t total_nodes = 0;
  for (const NodeGroup& g : f.groups_) total_nodes += int64_t{g.count} + g.spot_count;
  constexpr int64_t kMaxNodes = 10'000'000;
  if (total_nodes > kMaxNodes)
    return absl::InvalidArgumentError(
        absl::StrCat("fleet has ", total_nodes, " nodes; at most ", kMaxNodes, " are supported"));
  f.links_.assign(nr * nr, Link{});
  for (size_t r = 0; r < nr; ++r) f.links_[r * nr + r] = Link{0, 1e9, 0, true};
  for (const auto& [ab, l] : links_) f.links_[size_t(ab.first) * nr + size_t(ab.second)] = l;

  std::vector<size_t> group_first(f.groups_.size());
  f.nodes_.reserve(static_cast<size_t>(total_nodes));
  for (size_t gi = 0; gi < f.groups_.size(); ++gi) {
    const NodeGroup& g = f.groups_[gi];
    group_first[gi] = f.nodes_.size();
    for (int32_t i = 0; i < g.count + g.spot_count; ++i) {
      Node n;
      bool spot = i >= g.count;
      n.name = spot ? absl::StrCat(g.name, "-spot-", i - g.count) : absl::StrCat(g.name, "-", i);
      n.group = NodeGroupId(static_cast<int32_t>(gi));
      n.region = g.region;
      n.zone = g.zone;
      n.gpu_type = g.gpu_type;
      n.gpus = g.gpus_per_node;
      n.capacity = Resources{g.cpu_milli, g.memory_mib, int64_t{g.gpus_per_node} * 1000};
      n.spot = spot;
      n.price_hour = spot ? g.spot_price_hour : g.price_hour;
      n.taints = g.taints;
      f.nodes_.push_back(std::move(n));
    }
  }
  for (const NodeOverride& o : overrides_) {
    const NodeGroup& g = f.groups_[o.group.index()];
    if (o.index < 0 || o.index >= g.count + g.spot_count)
      return absl::InvalidArgumentError(absl::StrCat("node group '", g.name, "': node index ",
                                                     o.index, " out of range"));
    Node& n = f.nodes_[group_first[o.group.index()] + size_t(o.index)];
    if (o.set_healthy) n.healthy = o.healthy;
    if (!o.taint.empty()) n.taints.push_back(o.taint);
  }
  f.region_nodes_.assign(nr, {});
  f.region_capacity_.assign(nr, Resources{});
  f.total_capacity_ = Resources{};
  for (size_t i = 0; i < f.nodes_.size(); ++i) {
    const Node& n = f.nodes_[i];
    NodeId id(static_cast<int32_t>(i));
    if (!f.node_by_name_.emplace(n.name, id).second)
      return absl::AlreadyExistsError(absl::StrCat("duplicate node name '", n.name, "'"));
    f.region_nodes_[n.region.index()].push_back(id);
    f.region_capacity_[n.region.index()] += n.capacity;
    f.total_capacity_ += n.capacity;
  }
  return std::move(fleet_);
}

}  // namespace meridian
