#include "sim/goodput.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "sim/trace_internal.h"

namespace meridian::sim {

namespace {

using internal::ColumnIndex;
using internal::ParseDouble;
using internal::ParseInt;
using internal::ReadCsvRows;
using Row = std::array<double, 3>;  // (local batch, step s, sync s)

// The placement's smallest rotation as digits: placements are measured once
// per rotation class ("42" is looked up as "24").
std::string Canonical(const std::vector<int32_t>& gpus) {
  std::string s;
  for (int32_t g : gpus) s += g >= 0 && g <= 9 ? char('0' + g) : '?';
  std::string best = s;
  for (size_t i = 1; i < s.size(); ++i) best = std::min(best, s.substr(i) + s.substr(0, i));
  return best;
}

// Linear in the local batch between measured rows, clamped at the ends.
std::array<double, 2> Interp(const std::vector<Row>& rows, double local) {
  if (rows.empty()) return {0, 0};
  if (local <= rows.front()[0]) return {rows.front()[1], rows.front()[2]};
  if (local >= rows.back()[0]) return {rows.back()[1], rows.back()[2]};
  auto hi = std::lower_bound(rows.begin(), rows.end(), local,
                             [](const Row& r, double x) { return r[0] < x; });
  auto lo = hi - 1;
  const double w = ((*hi)[0] - (*lo)[0]) > 0 ? (local - (*lo)[0]) / ((*hi)[0] - (*lo)[0]) : 0;
  return {(*lo)[1] + w * ((*hi)[1] - (*lo)[1]), (*lo)[2] + w * ((*hi)[2] - (*lo)[2])};
}

// Linear interpolation over the keys of `m` (clamped), each value given by `f`.
template <typename Map, typename F>
std::array<double, 2> InterpKeys(const Map& m, double x, F f) {
  auto hi = m.lower_bound(static_cast<typename Map::key_type>(std::ceil(x)));
  if (hi == m.end()) return f(std::prev(m.end())->second);
  if (hi == m.begin() || double(hi->first) <= x) return f(hi->second);
  auto lo = std::prev(hi);
  const double w = (x - double(lo->first)) / double(hi->first - lo->first);
  std::array<double, 2> a = f(lo->second), b = f(hi->second);
  return {a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1])};
}

absl::Status Malformed(const std::string& path, int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", what));
}

// Reads `path` and checks it has `cols`; fills column indexes.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadTable(
    const std::string& path, std::initializer_list<const char*> cols, std::vector<int>* idx,
    std::vector<int64_t>* lines) {
  std::vector<std::string> header;
  auto rows = ReadCsvRows(path, &header, lines);
  if (!rows.ok()) return rows.status();
  for (const char* c : cols) {
    idx->push_back(ColumnIndex(header, c));
    if (idx->back() < 0)
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: missing column '", c, "'"));
  }
  for (size_t i = 0; i < rows->size(); ++i)
    if ((*rows)[i].size() != header.size())
      return Malformed(
          path, (*lines)[i],
          absl::StrCat("expected ", header.size(), " fields, got ", (*rows)[i].size()));
  return rows;
}

absl::StatusOr<GoodputApp> LoadApp(const std::filesystem::path& dir) {
  GoodputApp app;
  app.name = dir.filename().string();
  auto files = internal::ValidationFiles(dir.string());
  if (!files.ok()) return files.status();
  for (const auto& [bsz, path] : *files) {
    std::vector<int> c;
    std::vector<int64_t> lines;
    auto rows = ReadTable(path, {"progress", "grad_sqr", "grad_var"}, &c, &lines);
    if (!rows.ok()) return rows.status();
    std::vector<GoodputApp::Epoch>& epochs = app.validation[bsz];
    for (size_t i = 0; i < rows->size(); ++i) {
      GoodputApp::Epoch e;
      const auto& r = (*rows)[i];
      if (!ParseDouble(r[size_t(c[0])], &e.progress) ||
          !ParseDouble(r[size_t(c[1])], &e.grad_sqr) ||
          !ParseDouble(r[size_t(c[2])], &e.grad_var) || e.progress < 0 || e.grad_sqr < 0 ||
          e.grad_var < 0)
        return Malformed(path, lines[i], "progress, grad_sqr and grad_var must be numbers >= 0");
      epochs.push_back(e);
    }
    if (epochs.empty()) return Malformed(path, 2, "no rows");
  }
  if (app.validation.empty())
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), ": no validation-<batch>.csv"));

  std::map<std::tuple<int32_t, int32_t, int64_t>, std::pair<Row, int>> means;
  {
    const std::string path = (dir / "placements.csv").string();
    std::vector<int> c;
    std::vector<int64_t> lines;
    auto rows = ReadTable(path, {"placement", "local_bsz", "step_time", "sync_time"}, &c, &lines);
    if (!rows.ok()) return rows.status();
    for (size_t i = 0; i < rows->size(); ++i) {
      const auto& r = (*rows)[i];
      const std::string& pl = r[size_t(c[0])];
      int64_t local = 0;
      double step = 0, sync = 0;
      bool digits =
          !pl.empty() && pl.size() <= 16 &&
          std::all_of(pl.begin(), pl.end(), [](char ch) { return ch >= '1' && ch <= '9'; });
      if (!digits || !ParseInt(r[size_t(c[1])], &local) || local <= 0 ||
          !ParseDouble(r[size_t(c[2])], &step) || !(step > 0) ||
          !ParseDouble(r[size_t(c[3])], &sync) || sync < 0)
        return Malformed(path, lines[i],
                         "expected placement digits 1-9, positive local_bsz and step_time, "
                         "sync_time >= 0");
      std::vector<int32_t> gpus;
      int32_t replicas = 0;
      for (char ch : pl) gpus.push_back(ch - '0'), replicas += ch - '0';
      app.placements[Canonical(gpus)].push_back({double(local), step, sync});
      auto& m = means[{int32_t(pl.size()), replicas, local}];
      m.first[0] = double(local);
      m.first[1] += step;
      m.first[2] += sync;
      ++m.second;
      app.min_local = app.min_local == 0 ? local : std::min(app.min_local, local);
      app.max_local = std::max(app.max_local, local);
    }
  }
  for (const auto& [key, m] : means)
    app.grid[std::get<0>(key)][std::get<1>(key)].push_back(
        {m.first[0], m.first[1] / m.second, m.first[2] / m.second});
  {
    const std::string path = (dir / "scalability.csv").string();
    std::vector<int> c;
    std::vector<int64_t> lines;
    auto rows = ReadTable(
        path, {"num_nodes", "num_replicas", "local_bsz", "step_time", "sync_time"}, &c, &lines);
    if (!rows.ok()) return rows.status();
    for (size_t i = 0; i < rows->size(); ++i) {
      const auto& r = (*rows)[i];
      int64_t nodes = 0, replicas = 0, local = 0;
      double step = 0, sync = 0;
      if (!ParseInt(r[size_t(c[0])], &nodes) || nodes < 1 || nodes > 4096 ||
          !ParseInt(r[size_t(c[1])], &replicas) || replicas < 1 || replicas > 65536 ||
          !ParseInt(r[size_t(c[2])], &local) || local <= 0 ||
          !ParseDouble(r[size_t(c[3])], &step) || !(step > 0) ||
          !ParseDouble(r[size_t(c[4])], &sync) || sync < 0)
        return Malformed(path, lines[i], "expected positive integers and times");
      app.grid[int32_t(nodes)][int32_t(replicas)].push_back({double(local), step, sync});
    }
  }
  for (auto& [n, by_r] : app.grid)
    for (auto& [r, rows] : by_r) std::sort(rows.begin(), rows.end());
  for (auto& [k, rows] : app.placements) std::sort(rows.begin(), rows.end());
  if (app.placements.empty())
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), "/placements.csv: no rows"));
  app.init_batch = app.validation.begin()->first;
  app.max_batch = app.validation.rbegin()->first;
  if (app.name == "yolov3") app.max_local = std::min<int64_t>(app.max_local, 8);
  size_t rows = SIZE_MAX;
  for (const auto& [b, e] : app.validation) rows = std::min(rows, e.size());
  app.max_epochs = std::min<int32_t>(DefaultMaxEpochs(app.name, int32_t(rows)), int32_t(rows));
  for (int32_t e = 0; e < app.max_epochs; ++e) {
    double p = INFINITY;
    for (const auto& [b, ep] : app.validation) p = std::min(p, ep[size_t(e)].progress);
    app.epoch_end.push_back(p);
  }
  return app;
}

}  // namespace

int32_t GoodputPlacement::replicas() const {
  int32_t r = 0;
  for (int32_t g : gpus_per_node) r += g;
  return r;
}

int32_t DefaultMaxEpochs(const std::string& app, int32_t rows) {
  static const std::map<std::string, int32_t> kEpochs = {{"bert", 2},         {"cifar10", 100},
                                                         {"ncf", 10},         {"imagenet", 90},
                                                         {"deepspeech2", 80}, {"yolov3", 50}};
  auto it = kEpochs.find(app);
  return it != kEpochs.end() ? it->second : rows;
}

absl::StatusOr<std::unique_ptr<GoodputModel>> GoodputModel::Load(const std::string& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> dirs;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_directory() && std::filesystem::exists(entry.path() / "placements.csv"))
      dirs.push_back(entry.path());
  if (ec)
    return absl::NotFoundError(
        absl::StrCat("cannot read goodput profiles ", dir, ": ", ec.message()));
  std::sort(dirs.begin(), dirs.end());
  std::vector<GoodputApp> apps;
  for (const auto& d : dirs) {
    auto app = LoadApp(d);
    if (!app.ok()) return app.status();
    apps.push_back(*std::move(app));
  }
  if (apps.empty())
    return absl::NotFoundError(
        absl::StrCat(dir, ": no application directories with placements.csv (goodput profiles)"));
  return FromApps(std::move(apps));
}

std::unique_ptr<GoodputModel> GoodputModel::FromApps(std::vector<GoodputApp> apps) {
  std::unique_ptr<GoodputModel> m(new GoodputModel());
  m->apps_ = std::move(apps);
  for (size_t i = 0; i < m->apps_.size(); ++i) m->by_name_[m->apps_[i].name] = i;
  return m;
}

const GoodputApp* GoodputModel::Find(const std::string& app) const {
  auto it = by_name_.find(app);
  return it == by_name_.end() ? nullptr : &apps_[it->second];
}

std::array<double, 2> GoodputModel::Throughput(const GoodputApp& app, const GoodputPlacement& p,
                                               double atomic) const {
  std::array<double, 2> st;
  auto it = app.placements.find(Canonical(p.gpus_per_node));
  if (it != app.placements.end()) {
    st = Interp(it->second, atomic);
  } else {
    // Not measured: between the nearest measured node counts (at most 16, as
    // the artifact), and inside each between the nearest replica counts.
    const double nodes = std::min<double>(double(p.gpus_per_node.size()), 16);
    const double replicas = double(p.replicas());
    st = InterpKeys(app.grid, nodes, [&](const auto& by_replicas) {
      return InterpKeys(by_replicas, replicas,
                        [&](const std::vector<Row>& rows) { return Interp(rows, atomic); });
    });
  }
  if (p.sync_factor != 1 || p.extra_sync_s != 0) {
    const double sync = st[1] * p.sync_factor + p.extra_sync_s;
    st[0] += sync - st[1];
    st[1] = sync;
  }
  return st;
}

namespace {

// Gradient statistics at a global batch, between the profiled batches.
std::array<double, 2> GradStats(const GoodputApp& app, double batch, int32_t epoch) {
  auto at = [&](const std::vector<GoodputApp::Epoch>& e) {
    const auto& x = e[std::min<size_t>(size_t(std::max(epoch, 0)), e.size() - 1)];
    return std::array<double, 2>{x.grad_sqr, x.grad_var};
  };
  auto hi = app.validation.lower_bound(int64_t(std::ceil(batch)));
  if (hi == app.validation.end()) return at(app.validation.rbegin()->second);
  if (hi == app.validation.begin() || double(hi->first) <= batch) return at(hi->second);
  auto lo = std::prev(hi);
  const double w = (batch - double(lo->first)) / double(hi->first - lo->first);
  auto a = at(lo->second), b = at(hi->second);
  return {a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1])};
}

int64_t CeilDiv(double a, double b) { return int64_t(std::ceil(a / b - 1e-8)); }

}  // namespace

double GoodputModel::Goodput(const GoodputApp& app, const GoodputPlacement& p, const BatchConfig& b,
                             int32_t epoch) const {
  const int32_t replicas = p.replicas();
  if (replicas <= 0 || b.atomic <= 0) return 0;
  const double batch = double(b.Global(replicas));
  const double scale = batch / double(app.init_batch);
  auto [step, sync] = Throughput(app, p, double(b.atomic));
  const double compute = step - sync;
  auto [sqr, var] = GradStats(app, batch, epoch);
  const double denom = var / scale + sqr;
  const double gain = denom > 0 ? (var + sqr) / denom : 1;
  const double total = step + compute * b.accum;
  return total > 0 ? gain / total : 0;
}

BatchConfig GoodputModel::ChooseBatch(const GoodputApp& app, const GoodputPlacement& p,
                                      BatchRange range, int32_t epoch) const {
  const bool fixed = range.fixed();
  const int32_t r = p.replicas();
  BatchConfig out;
  if (r <= 0) return out;
  auto split = [&](double global) {
    BatchConfig b;
    const int64_t local = CeilDiv(global, r);
    b.accum = int32_t(std::max<int64_t>(0, CeilDiv(double(local), double(app.max_local)) - 1));
    if (fixed && r == 1 && global > double(app.init_batch)) b.accum = std::max(1, b.accum);
    b.atomic = CeilDiv(double(local), double(b.accum + 1));
    b.atomic = std::min<int64_t>(b.atomic, app.max_batch / (int64_t(r) * (b.accum + 1)));
    return b;
  };
  if (fixed) {
    out = split(double(range.lo));
    out.atomic = std::max<int64_t>(out.atomic, 1);
    return out;
  }
  // Adaptive: the profiled range of global batches that this many GPUs can
  // hold at the smallest measured per-GPU batch; a geometric grid over it.
  const double lo =
      std::max({double(app.init_batch), double(r) * double(app.min_local), double(range.lo)});
  const double hi = range.hi > 0 ? std::min(range.hi, app.max_batch) : double(app.max_batch);
  if (lo > hi) return out;  // too many GPUs for this model: no useful batch
  double best = -1;
  constexpr int kSteps = 16;
  for (int i = 0; i <= kSteps; ++i) {
    const double g = lo * std::pow(hi / lo, double(i) / kSteps);
    BatchConfig b = split(g);
    if (b.atomic < app.min_local) continue;
    const double v = Goodput(app, p, b, epoch);
    if (v > best) best = v, out = b;
  }
  return out;
}

double GoodputModel::Advance(const GoodputApp& app, const GoodputPlacement& p, BatchRange range,
                             double seconds, GoodputJobState& s) const {
  double used = 0;
  if (s.batch.atomic <= 0) s.batch = ChooseBatch(app, p, range, s.epoch);
  while (seconds > 0) {
    if (s.epoch >= app.max_epochs) return used;
    const double g = Goodput(app, p, s.batch, s.epoch);
    if (!(g > 0)) return -1;
    const double next = app.epoch_end[size_t(s.epoch)];
    if (s.progress + g * seconds < next) {
      s.progress += g * seconds;
      return -1;
    }
    // Crosses an epoch boundary inside the interval (whole seconds, as the artifact).
    const double delta = std::min(seconds, std::max(0.0, std::round((next - s.progress) / g)));
    s.progress = next;
    ++s.epoch;
    used += delta;
    seconds -= delta;
    if (s.epoch >= app.max_epochs) return used;
    s.batch = ChooseBatch(app, p, range, s.epoch);
  }
  return -1;
}

double GoodputModel::FractionDone(const GoodputApp& app, const GoodputJobState& s) const {
  if (app.epoch_end.empty() || !(app.epoch_end.back() > 0)) return 1;
  return std::clamp(s.progress / app.epoch_end.back(), 0.0, 1.0);
}

}  // namespace meridian::sim
