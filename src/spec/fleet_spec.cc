// ParseFleet: fleet spec document -> validated Fleet (via FleetBuilder).
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/fleet.h"
#include "spec/document.h"
#include "spec/spec.h"

namespace meridian::spec {

namespace {

using internal::DiagnosticSink;
using internal::IndexPath;
using internal::MapReader;
using internal::NameAt;
using internal::Need;
using internal::Range;

constexpr int64_t kMaxGpusPerNode = 1024;
constexpr int64_t kMaxNodesPerGroup = 1'000'000;
// All groups together; bounds the memory a spec can make us allocate.
constexpr int64_t kMaxNodesPerFleet = 1'000'000;
// Taints are copied into every node of a group: bound the expansion.
constexpr size_t kMaxTaintsPerList = 64;
constexpr int64_t kMaxNodeTaintsPerFleet = 4'000'000;

struct RegionInfo {
  RegionId id;
  std::vector<std::string> zones;  // in order; first is the default
  int line = 0;
};

class FleetParser {
 public:
  explicit FleetParser(DiagnosticSink* sink) : sink_(sink) {}

  std::optional<Fleet> Parse(absl::string_view text, absl::string_view filename);

 private:
  void ParseRegions(const YAML::Node& seq);
  void ParseNodeGroups(const YAML::Node& seq);
  void ParseNodeGroup(MapReader& m, std::optional<std::string> name);
  void ParseLinks(const YAML::Node& seq);
  void ParseDatasets(const YAML::Node& seq);
  // Region id by name, or reports "unknown region" at the field.
  std::optional<RegionId> ResolveRegion(MapReader& m, absl::string_view key, Need need);
  std::vector<std::string> RegionNames() const;

  DiagnosticSink* sink_;
  FleetBuilder builder_;
  std::map<std::string, RegionInfo> regions_;
  std::vector<std::string> region_order_;
  absl::flat_hash_map<std::string, std::string> zone_region_;  // zone -> region
  absl::flat_hash_map<std::string, ZoneId> zone_ids_;
  int64_t total_nodes_ = 0;
  int64_t total_node_taints_ = 0;
};

std::vector<std::string> FleetParser::RegionNames() const { return region_order_; }

std::optional<Fleet> FleetParser::Parse(absl::string_view text, absl::string_view filename) {
  std::optional<YAML::Node> root = internal::LoadDocument(text, filename, sink_);
  if (!root) return std::nullopt;
  MapReader top(sink_, *root, "", {"kind", "regions", "node_groups", "links", "datasets"});
  if (!top.ok()) return std::nullopt;
  internal::CheckKind(&top, "fleet");

  std::optional<YAML::Node> regions = top.Get("regions", Need::kOptional);
  if (!regions || (regions->IsSequence() && regions->size() == 0)) {
    top.Error("regions", "a fleet needs at least one region");
  } else if (internal::CheckSequence(sink_, *regions, "regions")) {
    ParseRegions(*regions);
  }
  std::optional<YAML::Node> groups = top.Get("node_groups", Need::kOptional);
  if (!groups || (groups->IsSequence() && groups->size() == 0)) {
    top.Error("node_groups", "a fleet needs at least one node group");
  } else if (internal::CheckSequence(sink_, *groups, "node_groups")) {
    ParseNodeGroups(*groups);
  }
  if (std::optional<YAML::Node> links = top.Get("links", Need::kOptional)) {
    if (internal::CheckSequence(sink_, *links, "links")) ParseLinks(*links);
  }
  if (std::optional<YAML::Node> datasets = top.Get("datasets", Need::kOptional)) {
    if (internal::CheckSequence(sink_, *datasets, "datasets")) ParseDatasets(*datasets);
  }
  if (!sink_->empty()) return std::nullopt;
  absl::StatusOr<Fleet> fleet = std::move(builder_).Build();
  if (!fleet.ok()) {
    sink_->Add(root->Mark(), "", std::string(fleet.status().message()));
    return std::nullopt;
  }
  return *std::move(fleet);
}

void FleetParser::ParseRegions(const YAML::Node& seq) {
  size_t i = 0;
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("regions", i++),
                {"name", "cloud", "location", "utilization_ceiling", "zones"});
    if (!m.ok()) continue;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    Region region;
    region.cloud = m.String("cloud", Need::kOptional).value_or("");
    region.location = m.String("location", Need::kOptional).value_or("");
    region.utilization_ceiling =
        m.Number("utilization_ceiling", Need::kOptional, Range{0, 1, true}).value_or(1.0);
    std::vector<NameAt> zones =
        m.NameList("zones", Need::kOptional).value_or(std::vector<NameAt>{});
    if (!name) continue;
    if (auto it = regions_.find(*name); it != regions_.end()) {
      m.Error("name", absl::StrCat("duplicate region name '", *name, "' (first at line ",
                                   it->second.line, ")"));
      continue;
    }
    region.name = *name;
    absl::StatusOr<RegionId> id = builder_.AddRegion(region);
    if (!id.ok()) {
      m.Error("name", std::string(id.status().message()));
      continue;
    }
    RegionInfo& info = regions_[*name];
    info.id = *id;
    info.line = m.node().Mark().line + 1;
    region_order_.push_back(*name);
    if (zones.empty()) zones.push_back(NameAt{absl::StrCat(*name, "-default"), {}, ""});
    for (const NameAt& zone : zones) {
      if (auto other = zone_region_.find(zone.name); other != zone_region_.end()) {
        sink_->Add(zone.mark, zone.path,
                   absl::StrCat("duplicate zone '", zone.name, "' (already in region '",
                                other->second, "')"));
        continue;
      }
      absl::StatusOr<ZoneId> zid = builder_.AddZone(zone.name, *id);
      if (!zid.ok()) {
        sink_->Add(zone.mark, zone.path, std::string(zid.status().message()));
        continue;
      }
      zone_region_[zone.name] = *name;
      zone_ids_[zone.name] = *zid;
      info.zones.push_back(zone.name);
    }
  }
}

std::optional<RegionId> FleetParser::ResolveRegion(MapReader& m, absl::string_view key, Need need) {
  std::optional<std::string> name = m.Name(key, need);
  if (!name) return std::nullopt;
  auto it = regions_.find(*name);
  if (it == regions_.end()) {
    m.Error(key, internal::UnknownName("region", *name, RegionNames()));
    return std::nullopt;
  }
  return it->second.id;
}

void FleetParser::ParseNodeGroups(const YAML::Node& seq) {
  size_t i = 0;
  absl::flat_hash_map<std::string, int> names;  // name -> line
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("node_groups", i++),
                {"name", "region", "zone", "gpu_type", "gpus", "cpu", "memory", "price_hour",
                 "spot_price_hour", "count", "spot_count", "taints", "nodes"});
    if (!m.ok()) continue;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    if (name) {
      auto [it, inserted] = names.emplace(*name, m.node().Mark().line + 1);
      if (!inserted) {
        m.Error("name", absl::StrCat("duplicate node group name '", *name, "' (first at line ",
                                     it->second, ")"));
        continue;
      }
    }
    ParseNodeGroup(m, std::move(name));
  }
}

void FleetParser::ParseNodeGroup(MapReader& m, std::optional<std::string> name) {
  NodeGroup g;
  bool ok = name.has_value();
  std::optional<RegionId> region = ResolveRegion(m, "region", Need::kRequired);
  ok &= region.has_value();
  std::optional<std::string> zone = m.Name("zone", Need::kOptional);
  if (region) {
    const std::string& region_name = region_order_[region->index()];
    const RegionInfo& info = regions_.at(region_name);
    if (!zone) {
      if (m.Has("zone") || info.zones.empty()) {
        ok = false;
      } else {
        zone = info.zones.front();
      }
    } else if (auto it = zone_region_.find(*zone); it == zone_region_.end()) {
      m.Error("zone", absl::StrCat(internal::UnknownName("zone", *zone, info.zones),
                                   " (zones of region '", region_name, "')"));
      ok = false;
    } else if (it->second != region_name) {
      m.Error("zone", absl::StrCat("zone '", *zone, "' belongs to region '", it->second, "', not '",
                                   region_name, "'"));
      ok = false;
    }
    if (ok) {
      g.region = *region;
      g.zone = zone_ids_.at(*zone);
    }
  }
  std::optional<int64_t> gpus = m.Int("gpus", Need::kOptional, 0, kMaxGpusPerNode);
  if (m.Has("gpus") && !gpus) ok = false;
  std::optional<std::string> gpu_type = m.Name("gpu_type", Need::kOptional);
  if (m.Has("gpu_type") && !gpu_type) ok = false;
  g.gpus_per_node = static_cast<int32_t>(gpus.value_or(0));
  if (gpu_type && g.gpus_per_node == 0 && (gpus || !m.Has("gpus"))) {
    m.Error(m.Has("gpus") ? "gpus" : "gpu_type", "a node group with gpu_type needs gpus > 0");
    ok = false;
  } else if (!gpu_type && !m.Has("gpu_type") && g.gpus_per_node > 0) {
    m.Error("gpu_type", "missing required field 'gpu_type' (nodes have gpus > 0)");
    ok = false;
  }
  std::optional<int64_t> cpu = m.Cpu("cpu", Need::kRequired, /*allow_zero=*/false);
  std::optional<int64_t> memory = m.Memory("memory", Need::kRequired, /*allow_zero=*/false);
  std::optional<double> price = m.Number("price_hour", Need::kOptional, internal::kPrice);
  std::optional<double> spot_price = m.Number("spot_price_hour", Need::kOptional, internal::kPrice);
  std::optional<int64_t> count = m.Int("count", Need::kRequired, 0, kMaxNodesPerGroup);
  std::optional<int64_t> spot_count = m.Int("spot_count", Need::kOptional, 0, kMaxNodesPerGroup);
  ok &= cpu && memory && count;
  ok &= (price || !m.Has("price_hour")) && (spot_price || !m.Has("spot_price_hour")) &&
        (spot_count || !m.Has("spot_count"));
  std::optional<std::vector<NameAt>> taints = m.NameList("taints", Need::kOptional);
  if (m.Has("taints") && !taints) ok = false;
  if (taints && taints->size() > kMaxTaintsPerList) {
    m.Error("taints", absl::StrCat(taints->size(), " taints; at most ", kMaxTaintsPerList,
                                   " per node group"));
    ok = false;
  }

  // Per-node overrides.
  struct Override {
    int32_t index;
    std::optional<bool> healthy;
    std::vector<NameAt> taints;
  };
  std::vector<Override> overrides;
  if (std::optional<YAML::Node> nodes = m.Get("nodes", Need::kOptional)) {
    std::string nodes_path = m.Path("nodes");
    if (!internal::CheckSequence(sink_, *nodes, nodes_path)) {
      ok = false;
    } else {
      int64_t total =
          (count && (spot_count || !m.Has("spot_count"))) ? *count + spot_count.value_or(0) : -1;
      absl::flat_hash_map<int64_t, int> seen;
      size_t j = 0;
      for (const YAML::Node& item : *nodes) {
        MapReader n(sink_, item, IndexPath(nodes_path, j++), {"index", "healthy", "taints"});
        if (!n.ok()) {
          ok = false;
          continue;
        }
        std::optional<int64_t> index = n.Int("index", Need::kRequired, 0, kMaxNodesPerGroup * 2);
        std::optional<bool> healthy = n.Bool("healthy", Need::kOptional);
        std::optional<std::vector<NameAt>> node_taints = n.NameList("taints", Need::kOptional);
        if (!index || (n.Has("healthy") && !healthy) || (n.Has("taints") && !node_taints)) {
          ok = false;
          continue;
        }
        if (node_taints && node_taints->size() > kMaxTaintsPerList) {
          n.Error("taints", absl::StrCat(node_taints->size(), " taints; at most ",
                                         kMaxTaintsPerList, " per node"));
          ok = false;
          continue;
        }
        if (total >= 0 && *index >= total) {
          n.Error("index",
                  absl::StrCat("node index ", *index, " out of range: the group has ", total,
                               " node", total == 1 ? "" : "s", " (0..", total - 1, ")"));
          ok = false;
          continue;
        }
        auto [it, inserted] = seen.emplace(*index, item.Mark().line + 1);
        if (!inserted) {
          n.Error("index", absl::StrCat("duplicate override for node ", *index, " (first at line ",
                                        it->second, ")"));
          ok = false;
          continue;
        }
        overrides.push_back(Override{static_cast<int32_t>(*index), healthy,
                                     node_taints.value_or(std::vector<NameAt>{})});
      }
    }
  }
  if (!ok) return;
  total_nodes_ += *count + spot_count.value_or(0);
  if (total_nodes_ > kMaxNodesPerFleet) {
    m.Error("count", absl::StrCat("the fleet would have ", total_nodes_, " nodes; at most ",
                                  kMaxNodesPerFleet, " are supported"));
    total_nodes_ = std::numeric_limits<int64_t>::min() / 2;  // report once
    return;
  }
  total_node_taints_ +=
      (*count + spot_count.value_or(0)) * static_cast<int64_t>(taints ? taints->size() : 0);
  if (total_node_taints_ > kMaxNodeTaintsPerFleet) {
    m.Error("taints",
            absl::StrCat("the fleet's nodes would carry ", total_node_taints_,
                         " taints in total; at most ", kMaxNodeTaintsPerFleet, " are supported"));
    total_node_taints_ = std::numeric_limits<int64_t>::min() / 2;  // report once
    return;
  }

  g.name = *name;
  if (gpu_type) g.gpu_type = builder_.AddGpuType(*gpu_type);
  g.cpu_milli = *cpu;
  g.memory_mib = *memory;
  g.price_hour = price.value_or(0);
  g.spot_price_hour = spot_price.value_or(g.price_hour);
  g.count = static_cast<int32_t>(*count);
  g.spot_count = static_cast<int32_t>(spot_count.value_or(0));
  for (NameAt& t : taints.value_or(std::vector<NameAt>{})) g.taints.push_back(std::move(t.name));
  absl::StatusOr<NodeGroupId> id = builder_.AddNodeGroup(std::move(g));
  if (!id.ok()) {
    sink_->Add(m.node().Mark(), m.path(), std::string(id.status().message()));
    return;
  }
  for (const Override& o : overrides) {
    absl::Status st = absl::OkStatus();
    if (o.healthy) st.Update(builder_.SetNodeHealth(*id, o.index, *o.healthy));
    for (const NameAt& t : o.taints) st.Update(builder_.AddNodeTaint(*id, o.index, t.name));
    if (!st.ok()) sink_->Add(m.node().Mark(), m.Path("nodes"), std::string(st.message()));
  }
}

void FleetParser::ParseLinks(const YAML::Node& seq) {
  size_t i = 0;
  std::map<std::pair<int32_t, int32_t>, int> seen;  // directed pair -> line
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("links", i++),
                {"from", "to", "rtt_ms", "gbps", "egress_usd_per_gb", "symmetric"});
    if (!m.ok()) continue;
    std::optional<RegionId> from = ResolveRegion(m, "from", Need::kRequired);
    std::optional<RegionId> to = ResolveRegion(m, "to", Need::kRequired);
    std::optional<double> rtt = m.Number("rtt_ms", Need::kRequired, Range{0, 1e6});
    std::optional<double> gbps = m.Number("gbps", Need::kRequired, Range{0, 1e6, true});
    std::optional<double> egress = m.Number("egress_usd_per_gb", Need::kOptional, Range{0, 1e3});
    std::optional<bool> symmetric = m.Bool("symmetric", Need::kOptional);
    if (!from || !to || !rtt || !gbps || (m.Has("egress_usd_per_gb") && !egress) ||
        (m.Has("symmetric") && !symmetric))
      continue;
    if (*from == *to) {
      m.Error("to", "a link must join two different regions");
      continue;
    }
    bool both = symmetric.value_or(true);
    bool dup = false;
    int line = m.node().Mark().line + 1;
    for (auto pair :
         {std::pair(from->value(), to->value()), std::pair(to->value(), from->value())}) {
      auto [it, inserted] = seen.emplace(pair, line);
      if (!inserted) {
        m.Error("to",
                absl::StrCat("duplicate link ", region_order_[pair.first], " -> ",
                             region_order_[pair.second], " (first at line ", it->second, ")"));
        dup = true;
        break;
      }
      if (!both) break;
    }
    if (dup) continue;
    Link link;
    link.rtt_ms = *rtt;
    link.gbps = *gbps;
    link.egress_usd_per_gb = egress.value_or(0);
    absl::Status st = builder_.SetLink(*from, *to, link, both);
    if (!st.ok()) sink_->Add(m.node().Mark(), m.path(), std::string(st.message()));
  }
}

void FleetParser::ParseDatasets(const YAML::Node& seq) {
  size_t i = 0;
  absl::flat_hash_map<std::string, int> names;
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("datasets", i++), {"name", "size_gb", "home"});
    if (!m.ok()) continue;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    std::optional<double> size = m.Number("size_gb", Need::kRequired, Range{0, 1e9});
    std::optional<RegionId> home = ResolveRegion(m, "home", Need::kRequired);
    if (!name || !size || !home) continue;
    auto [it, inserted] = names.emplace(*name, m.node().Mark().line + 1);
    if (!inserted) {
      m.Error("name", absl::StrCat("duplicate dataset name '", *name, "' (first at line ",
                                   it->second, ")"));
      continue;
    }
    absl::StatusOr<DatasetId> id = builder_.AddDataset(Dataset{*name, *size, *home});
    if (!id.ok()) sink_->Add(m.node().Mark(), m.path(), std::string(id.status().message()));
  }
}

}  // namespace

absl::StatusOr<Fleet> ParseFleet(std::string_view text_in, std::string_view filename_in,
                                 std::vector<Diagnostic>* diags) {
  absl::string_view text = internal::ToAbsl(text_in);
  absl::string_view filename = internal::ToAbsl(filename_in);
  DiagnosticSink sink(filename);
  std::optional<Fleet> fleet;
  try {
    FleetParser parser(&sink);
    fleet = parser.Parse(text, filename);
  } catch (const std::exception& e) {
    sink.AddDocument(absl::StrCat("internal error while reading the fleet: ", e.what()));
  } catch (...) {
    sink.AddDocument("internal error while reading the fleet");
  }
  if (absl::Status st = sink.Finish(diags); !st.ok()) return st;
  if (!fleet) return absl::InternalError("fleet parser returned nothing without a diagnostic");
  return *std::move(fleet);
}

}  // namespace meridian::spec
