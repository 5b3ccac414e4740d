// Importers: fleets from the Alibaba openb node list and from GCP prices plus
// Skyplane inter-region measurements.
#include "spec/importers.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "spec/csv.h"

namespace meridian::spec {

namespace {

using internal::CsvTable;

// Reads several columns at once; the first missing one is the error.
absl::StatusOr<std::vector<size_t>> Columns(const CsvTable& t,
                                            std::initializer_list<absl::string_view> names) {
  std::vector<size_t> out;
  for (absl::string_view n : names) {
    absl::StatusOr<size_t> c = t.Column(n);
    if (!c.ok()) return c.status();
    out.push_back(*c);
  }
  return out;
}

std::string CpuLabel(int64_t milli) {
  return milli % 1000 == 0 ? absl::StrCat(milli / 1000, "c") : absl::StrCat(milli, "m");
}

std::string MemLabel(int64_t mib) {
  return mib % 1024 == 0 ? absl::StrCat(mib / 1024, "Gi") : absl::StrCat(mib, "Mi");
}

}  // namespace

absl::StatusOr<Fleet> ImportOpenbFleet(const std::string& node_csv,
                                       const OpenbImportOptions& options) {
  if (options.region.empty()) return absl::InvalidArgumentError("openb import: empty region name");
  if (!(options.price_per_gpu_hour >= 0) || !std::isfinite(options.price_per_gpu_hour))
    return absl::InvalidArgumentError("openb import: price_per_gpu_hour must be >= 0");
  absl::StatusOr<CsvTable> table = CsvTable::Load(node_csv);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::vector<size_t>> cols =
      Columns(*table, {"sn", "cpu_milli", "memory_mib", "gpu", "model"});
  if (!cols.ok()) return cols.status();
  const size_t c_cpu = (*cols)[1], c_mem = (*cols)[2], c_gpu = (*cols)[3], c_model = (*cols)[4];

  struct GroupKey {
    std::string model;
    int64_t gpus, cpu_milli, memory_mib;
    auto operator<=>(const GroupKey&) const = default;
  };
  std::map<GroupKey, size_t> index;                 // key -> position in `order`
  std::vector<std::pair<GroupKey, int64_t>> order;  // first-appearance order, node count
  for (size_t r = 0; r < table->rows(); ++r) {
    absl::StatusOr<int64_t> cpu = table->Integer(r, c_cpu);
    if (!cpu.ok()) return cpu.status();
    absl::StatusOr<int64_t> mem = table->Integer(r, c_mem);
    if (!mem.ok()) return mem.status();
    absl::StatusOr<int64_t> gpus = table->Integer(r, c_gpu);
    if (!gpus.ok()) return gpus.status();
    const std::string& model = table->cell(r, c_model);
    if (*cpu <= 0 || *cpu > 1'000'000'000)
      return table->RowError(r, absl::StrCat("cpu_milli ", *cpu, " out of range"));
    if (*mem <= 0 || *mem > (int64_t{1} << 40))
      return table->RowError(r, absl::StrCat("memory_mib ", *mem, " out of range"));
    if (*gpus < 0 || *gpus > 1024)
      return table->RowError(r, absl::StrCat("gpu ", *gpus, " out of range"));
    if ((*gpus > 0) != !model.empty())
      return table->RowError(
          r, *gpus > 0 ? "GPU node without a model" : "model given for a node without GPUs");
    if (*gpus == 0 && !options.include_cpu_only) continue;
    GroupKey key{model, *gpus, *cpu, *mem};
    auto [it, inserted] = index.emplace(key, order.size());
    if (inserted) order.push_back({key, 0});
    if (++order[it->second].second > 1'000'000)
      return table->RowError(r, "more than 1000000 identical nodes");
  }
  if (order.empty())
    return absl::InvalidArgumentError(absl::StrCat(node_csv, ": no nodes to import"));

  FleetBuilder b;
  absl::StatusOr<RegionId> region =
      b.AddRegion(Region{options.region, "alibaba", "Alibaba openb trace", 1.0});
  if (!region.ok()) return region.status();
  absl::StatusOr<ZoneId> zone = b.AddZone(absl::StrCat(options.region, "-default"), *region);
  if (!zone.ok()) return zone.status();
  for (const auto& [key, count] : order) {
    NodeGroup g;
    g.name = absl::StrCat(key.gpus > 0 ? absl::StrCat(key.model, "x", key.gpus) : "cpu", "-",
                          CpuLabel(key.cpu_milli), "-", MemLabel(key.memory_mib));
    g.region = *region;
    g.zone = *zone;
    if (key.gpus > 0) g.gpu_type = b.AddGpuType(key.model);
    g.gpus_per_node = static_cast<int32_t>(key.gpus);
    g.cpu_milli = key.cpu_milli;
    g.memory_mib = key.memory_mib;
    g.price_hour = options.price_per_gpu_hour * static_cast<double>(key.gpus);
    g.spot_price_hour = g.price_hour;
    g.count = static_cast<int32_t>(count);
    absl::StatusOr<NodeGroupId> id = b.AddNodeGroup(std::move(g));
    if (!id.ok()) return id.status();
  }
  return std::move(b).Build();
}

namespace {

struct PriceRow {
  std::string instance_type;
  int64_t gpus = 0;
  double vcpus = 0;
  double ram_gb = 0;
  double price = 0;
  double spot_price = 0;
};

// "gcp:us-central1-a" -> "us-central1"; nullopt for other clouds.
std::optional<std::string> GcpRegionOfZone(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "gcp:")) return std::nullopt;
  if (name.size() > 2 && name[name.size() - 2] == '-' &&
      absl::ascii_isalpha(static_cast<unsigned char>(name.back())))
    name.remove_suffix(2);
  return std::string(name);
}

// Directed region pair -> (sum, samples).
using PairStats = std::map<std::pair<std::string, std::string>, std::pair<double, int>>;

absl::Status ReadPairs(const std::string& path, absl::string_view src_col,
                       absl::string_view dst_col, absl::string_view value_col, PairStats* out) {
  absl::StatusOr<CsvTable> t = CsvTable::Load(path);
  if (!t.ok()) return t.status();
  absl::StatusOr<std::vector<size_t>> cols = Columns(*t, {src_col, dst_col, value_col});
  if (!cols.ok()) return cols.status();
  for (size_t r = 0; r < t->rows(); ++r) {
    std::optional<std::string> src = GcpRegionOfZone(t->cell(r, (*cols)[0]));
    std::optional<std::string> dst = GcpRegionOfZone(t->cell(r, (*cols)[1]));
    if (!src || !dst || *src == *dst) continue;
    absl::StatusOr<double> v = t->Number(r, (*cols)[2]);
    if (!v.ok()) return v.status();
    if (*v < 0) return t->RowError(r, absl::StrCat(value_col, " is negative"));
    auto& [sum, n] = (*out)[{*src, *dst}];
    sum += *v;
    ++n;
  }
  return absl::OkStatus();
}

// Mean for a -> b, falling back to b -> a (RTT and throughput are measured
// per direction, but one direction is a fair estimate of the other).
std::optional<double> Mean(const PairStats& s, const std::string& a, const std::string& b) {
  auto it = s.find({a, b});
  if (it == s.end()) it = s.find({b, a});
  if (it == s.end() || it->second.second == 0) return std::nullopt;
  return it->second.first / it->second.second;
}

}  // namespace

absl::StatusOr<Fleet> ImportGcpFleet(const std::string& prices_csv, const std::string& skyplane_dir,
                                     const GcpImportOptions& options) {
  if (options.nodes_per_group < 0 || options.spot_nodes_per_group < 0 ||
      options.nodes_per_group > 1'000'000 || options.spot_nodes_per_group > 1'000'000 ||
      options.gpus_per_node < 0)
    return absl::InvalidArgumentError("gcp import: node counts must be in 0..1000000");
  absl::StatusOr<CsvTable> table = CsvTable::Load(prices_csv);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::vector<size_t>> cols =
      Columns(*table, {"instance_type", "gpu_type", "gpu_count", "vcpus", "ram_gb", "region",
                       "price_hour_usd", "price_hour_spot_usd"});
  if (!cols.ok()) return cols.status();
  const auto& c = *cols;

  // region -> gpu type -> best machine.
  std::map<std::string, std::map<std::string, PriceRow>> best;
  std::set<std::string> all_regions, all_types;
  const std::set<std::string> want_types(options.gpu_types.begin(), options.gpu_types.end());
  for (size_t r = 0; r < table->rows(); ++r) {
    PriceRow row;
    row.instance_type = table->cell(r, c[0]);
    const std::string& type = table->cell(r, c[1]);
    const std::string& region = table->cell(r, c[5]);
    if (row.instance_type.empty() || type.empty() || region.empty())
      return table->RowError(r, "empty instance_type, gpu_type or region");
    absl::StatusOr<double> gpus = table->Number(r, c[2]);
    if (!gpus.ok()) return gpus.status();
    // Fractional GPU shares (vGPU slices such as rtx6000 0.25) do not fit
    // the whole-GPU node model; those machine types are left out.
    if (*gpus > 0 && *gpus < 1) continue;
    if (std::floor(*gpus) != *gpus || *gpus > 1024)
      return table->RowError(
          r, absl::StrCat("gpu_count ", table->cell(r, c[2]), " is not a GPU count"));
    absl::StatusOr<double> vcpus = table->Number(r, c[3]);
    if (!vcpus.ok()) return vcpus.status();
    absl::StatusOr<double> ram = table->Number(r, c[4]);
    if (!ram.ok()) return ram.status();
    absl::StatusOr<double> price = table->Number(r, c[6]);
    if (!price.ok()) return price.status();
    row.gpus = static_cast<int64_t>(*gpus);
    row.vcpus = *vcpus;
    row.ram_gb = *ram;
    row.price = *price;
    row.spot_price = *price;
    if (!table->cell(r, c[7]).empty()) {
      absl::StatusOr<double> spot = table->Number(r, c[7]);
      if (!spot.ok()) return spot.status();
      row.spot_price = *spot;
    }
    if (row.gpus < 1 || row.gpus > 1024)
      return table->RowError(r, absl::StrCat("gpu_count ", row.gpus, " out of range"));
    if (!(row.vcpus > 0 && row.vcpus <= 1e6) || !(row.ram_gb > 0 && row.ram_gb <= 1e9))
      return table->RowError(r, "vcpus and ram_gb must be positive");
    if (!(row.price >= 0 && row.price <= 1e6) || !(row.spot_price >= 0 && row.spot_price <= 1e6))
      return table->RowError(r, "prices must be in 0..1e6");
    all_regions.insert(region);
    all_types.insert(type);
    if (!want_types.empty() && !want_types.contains(type)) continue;
    if (options.gpus_per_node > 0 && row.gpus != options.gpus_per_node) continue;
    auto [it, inserted] = best[region].emplace(type, row);
    const PriceRow& cur = it->second;
    if (!inserted && (row.gpus > cur.gpus || (row.gpus == cur.gpus && row.price < cur.price)))
      it->second = row;
  }
  for (const std::string& t : options.gpu_types) {
    if (!all_types.contains(t))
      return absl::InvalidArgumentError(absl::StrCat("gpu type '", t, "' not in ", prices_csv,
                                                     "; known: ", absl::StrJoin(all_types, ", ")));
  }
  for (const std::string& r : options.regions) {
    if (!all_regions.contains(r))
      return absl::InvalidArgumentError(
          absl::StrCat("region '", r, "' has no GPU prices in ", prices_csv));
  }

  PairStats rtt, throughput, cost;
  std::string dir =
      skyplane_dir.empty() || skyplane_dir.back() == '/' ? skyplane_dir : skyplane_dir + "/";
  if (absl::Status st = ReadPairs(dir + "latency.csv", "src_region", "dst_region", "avg_rtt", &rtt);
      !st.ok())
    return st;
  if (absl::Status st = ReadPairs(dir + "throughput.csv.gz", "src_region", "dst_region",
                                  "throughput_received", &throughput);
      !st.ok())
    return st;
  if (absl::Status st = ReadPairs(dir + "cost.csv", "src", "dest", "cost", &cost); !st.ok())
    return st;

  std::vector<std::string> regions;
  if (!options.regions.empty()) {
    std::set<std::string> unique(options.regions.begin(), options.regions.end());
    regions.assign(unique.begin(), unique.end());
  } else {
    std::set<std::string> measured;
    for (const PairStats* s : {&rtt, &throughput, &cost})
      for (const auto& [pair, v] : *s) {
        measured.insert(pair.first);
        measured.insert(pair.second);
      }
    for (const auto& [region, types] : best)
      if (measured.contains(region) && !types.empty()) regions.push_back(region);
  }

  FleetBuilder b;
  std::vector<RegionId> ids;
  int groups = 0;
  for (const std::string& name : regions) {
    absl::StatusOr<RegionId> id = b.AddRegion(Region{name, "gcp", "", 1.0});
    if (!id.ok()) return id.status();
    ids.push_back(*id);
    absl::StatusOr<ZoneId> zone = b.AddZone(absl::StrCat(name, "-a"), *id);
    if (!zone.ok()) return zone.status();
    auto it = best.find(name);
    if (it == best.end()) continue;
    for (const auto& [type, row] : it->second) {
      NodeGroup g;
      g.name = absl::StrCat(name, "-", row.instance_type);
      g.region = *id;
      g.zone = *zone;
      g.gpu_type = b.AddGpuType(type);
      g.gpus_per_node = static_cast<int32_t>(row.gpus);
      g.cpu_milli = std::llround(row.vcpus * 1000.0);
      g.memory_mib = std::llround(row.ram_gb * 1024.0);
      g.price_hour = row.price;
      g.spot_price_hour = row.spot_price;
      g.count = options.nodes_per_group;
      g.spot_count = options.spot_nodes_per_group;
      absl::StatusOr<NodeGroupId> gid = b.AddNodeGroup(std::move(g));
      if (!gid.ok()) return gid.status();
      ++groups;
    }
  }
  if (groups == 0)
    return absl::InvalidArgumentError(absl::StrCat("no GPU machine types in ", prices_csv,
                                                   " match the requested regions/GPU types"));
  for (size_t a = 0; a < regions.size(); ++a) {
    for (size_t bi = 0; bi < regions.size(); ++bi) {
      if (a == bi) continue;
      std::optional<double> ms = Mean(rtt, regions[a], regions[bi]);
      std::optional<double> bps = Mean(throughput, regions[a], regions[bi]);
      if (!ms || !bps || *bps <= 0) continue;
      Link link;
      link.rtt_ms = *ms;
      link.gbps = *bps / 1e9;
      auto direct = cost.find({regions[a], regions[bi]});
      if (direct != cost.end() && direct->second.second > 0)
        link.egress_usd_per_gb = direct->second.first / direct->second.second;
      if (absl::Status st = b.SetLink(ids[a], ids[bi], link, /*symmetric=*/false); !st.ok())
        return st;
    }
  }
  return std::move(b).Build();
}

}  // namespace meridian::spec
