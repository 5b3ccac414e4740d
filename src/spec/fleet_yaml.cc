// FleetToYaml: a Fleet written back as a fleet spec that ParseFleet reads
// into an equal Fleet.
#include <charconv>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/fleet.h"
#include "spec/spec.h"
#include "yaml-cpp/yaml.h"

namespace meridian::spec {

namespace {

// Shortest text that reads back as exactly `v`.
std::string Num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return absl::StrCat(v);
  return std::string(buf, end);
}

void Str(YAML::Emitter& out, const std::string& s) {
  std::string lower = absl::AsciiStrToLower(s);
  if (s.empty() || s == "~" || lower == "null") {
    out << YAML::DoubleQuoted << s;
  } else {
    out << s;
  }
}

void KeyStr(YAML::Emitter& out, const char* key, const std::string& value) {
  out << YAML::Key << key << YAML::Value;
  Str(out, value);
}

void KeyNum(YAML::Emitter& out, const char* key, double value) {
  out << YAML::Key << key << YAML::Value << Num(value);
}

void KeyInt(YAML::Emitter& out, const char* key, int64_t value) {
  out << YAML::Key << key << YAML::Value << absl::StrCat(value);
}

void KeyList(YAML::Emitter& out, const char* key, const std::vector<std::string>& items) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& s : items) Str(out, s);
  out << YAML::EndSeq;
}

std::string Cpu(int64_t milli) {
  if (milli % 1000 == 0) return absl::StrCat(milli / 1000);
  return absl::StrCat(milli, "m");
}

std::string Memory(int64_t mib) {
  if (mib % 1024 == 0) return absl::StrCat(mib / 1024, "Gi");
  return absl::StrCat(mib);
}

bool SameLink(const Link& a, const Link& b) {
  return a.known && b.known && a.rtt_ms == b.rtt_ms && a.gbps == b.gbps &&
         a.egress_usd_per_gb == b.egress_usd_per_gb;
}

void EmitLink(YAML::Emitter& out, const Fleet& fleet, size_t a, size_t b, const Link& l,
              bool symmetric) {
  out << YAML::Flow << YAML::BeginMap;
  KeyStr(out, "from", fleet.regions()[a].name);
  KeyStr(out, "to", fleet.regions()[b].name);
  KeyNum(out, "rtt_ms", l.rtt_ms);
  KeyNum(out, "gbps", l.gbps);
  KeyNum(out, "egress_usd_per_gb", l.egress_usd_per_gb);
  if (!symmetric) out << YAML::Key << "symmetric" << YAML::Value << false;
  out << YAML::EndMap;
}

void EmitGroup(YAML::Emitter& out, const Fleet& fleet, size_t gi,
               const std::vector<const Node*>& nodes) {
  const NodeGroup& g = fleet.groups()[gi];
  out << YAML::BeginMap;
  KeyStr(out, "name", g.name);
  KeyStr(out, "region", fleet.region(g.region).name);
  KeyStr(out, "zone", fleet.zone(g.zone).name);
  if (g.gpu_type.Valid()) KeyStr(out, "gpu_type", fleet.gpu_type_name(g.gpu_type));
  KeyInt(out, "gpus", g.gpus_per_node);
  out << YAML::Key << "cpu" << YAML::Value << Cpu(g.cpu_milli);
  out << YAML::Key << "memory" << YAML::Value << Memory(g.memory_mib);
  KeyNum(out, "price_hour", g.price_hour);
  KeyNum(out, "spot_price_hour", g.spot_price_hour);
  KeyInt(out, "count", g.count);
  if (g.spot_count > 0) KeyInt(out, "spot_count", g.spot_count);
  if (!g.taints.empty()) KeyList(out, "taints", g.taints);
  bool any = false;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = *nodes[i];
    bool extra_taints = n.taints.size() > g.taints.size();
    if (n.healthy && !extra_taints) continue;
    if (!any) {
      out << YAML::Key << "nodes" << YAML::Value << YAML::BeginSeq;
      any = true;
    }
    out << YAML::Flow << YAML::BeginMap;
    KeyInt(out, "index", static_cast<int64_t>(i));
    if (!n.healthy) out << YAML::Key << "healthy" << YAML::Value << false;
    if (extra_taints) {
      KeyList(out, "taints",
              std::vector<std::string>(n.taints.begin() + g.taints.size(), n.taints.end()));
    }
    out << YAML::EndMap;
  }
  if (any) out << YAML::EndSeq;
  out << YAML::EndMap;
}

}  // namespace

std::string FleetToYaml(const Fleet& fleet) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "kind" << YAML::Value << "fleet";

  out << YAML::Key << "regions" << YAML::Value << YAML::BeginSeq;
  for (size_t r = 0; r < fleet.regions().size(); ++r) {
    const Region& region = fleet.regions()[r];
    out << YAML::BeginMap;
    KeyStr(out, "name", region.name);
    if (!region.cloud.empty()) KeyStr(out, "cloud", region.cloud);
    if (!region.location.empty()) KeyStr(out, "location", region.location);
    if (region.utilization_ceiling != 1.0)
      KeyNum(out, "utilization_ceiling", region.utilization_ceiling);
    std::vector<std::string> zones;
    for (const Zone& z : fleet.zones())
      if (z.region.index() == r) zones.push_back(z.name);
    if (!zones.empty()) KeyList(out, "zones", zones);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  std::vector<std::vector<const Node*>> group_nodes(fleet.groups().size());
  for (const Node& n : fleet.nodes()) group_nodes[n.group.index()].push_back(&n);
  out << YAML::Key << "node_groups" << YAML::Value << YAML::BeginSeq;
  for (size_t g = 0; g < fleet.groups().size(); ++g) EmitGroup(out, fleet, g, group_nodes[g]);
  out << YAML::EndSeq;

  const size_t nr = fleet.regions().size();
  bool any_link = false;
  for (size_t a = 0; a < nr; ++a) {
    for (size_t b = a + 1; b < nr; ++b) {
      const Link& ab =
          fleet.link(RegionId(static_cast<int32_t>(a)), RegionId(static_cast<int32_t>(b)));
      const Link& ba =
          fleet.link(RegionId(static_cast<int32_t>(b)), RegionId(static_cast<int32_t>(a)));
      if (!ab.known && !ba.known) continue;
      if (!any_link) {
        out << YAML::Key << "links" << YAML::Value << YAML::BeginSeq;
        any_link = true;
      }
      if (SameLink(ab, ba)) {
        EmitLink(out, fleet, a, b, ab, /*symmetric=*/true);
      } else {
        if (ab.known) EmitLink(out, fleet, a, b, ab, /*symmetric=*/false);
        if (ba.known) EmitLink(out, fleet, b, a, ba, /*symmetric=*/false);
      }
    }
  }
  if (any_link) out << YAML::EndSeq;

  if (!fleet.datasets().empty()) {
    out << YAML::Key << "datasets" << YAML::Value << YAML::BeginSeq;
    for (const Dataset& d : fleet.datasets()) {
      out << YAML::Flow << YAML::BeginMap;
      KeyStr(out, "name", d.name);
      KeyNum(out, "size_gb", d.size_gb);
      KeyStr(out, "home", fleet.region(d.home).name);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return absl::StrCat(out.c_str(), "\n");
}

}  // namespace meridian::spec
