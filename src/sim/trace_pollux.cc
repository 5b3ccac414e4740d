// Pollux evaluation workloads (OSDI '21 artifact): name,time,application,
// num_replicas,batch_size. The files carry no durations: Pollux derives a
// job's progress from per-application profiles. We estimate a fixed duration
// per job from the same public profiles (../pollux-goodput-profiles):
//   iterations = last `iteration` of validation-<B>.csv, B the profiled
//                global batch size closest to the job's batch_size;
//   step time  = scalability.csv step_time at the job's num_replicas (nearest
//                profiled count) and the local batch size closest to
//                batch_size / num_replicas;
//   duration   = iterations x step time.
// This is a static approximation of Pollux's dynamic goodput model
// (docs/traces.md): no adaptive batch sizes, no re-allocation.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "sim/trace.h"
#include "sim/trace_internal.h"
#include "spec/spec.h"

namespace meridian::sim {

namespace {

using internal::LineCursor;
using internal::ParseDouble;
using internal::ParseInt;
using internal::SplitPlain;
using internal::Trim;

struct AppProfile {
  std::map<int64_t, int64_t> iterations;  // global batch size -> iterations to finish
  // (num_replicas, local_bsz, step_time)
  std::vector<std::tuple<int64_t, int64_t, double>> steps;
};

absl::StatusOr<AppProfile> LoadProfile(const std::filesystem::path& dir) {
  AppProfile p;
  auto files = internal::ValidationFiles(dir.string());
  if (!files.ok()) return files.status();
  for (const auto& [bsz, path] : *files) {
    std::vector<std::string> header;
    auto rows = internal::ReadCsvRows(path, &header);
    if (!rows.ok()) return rows.status();
    int it = internal::ColumnIndex(header, "iteration");
    if (it < 0 || rows->empty())
      return absl::InvalidArgumentError(absl::StrCat(path, ": no 'iteration' rows"));
    int64_t iters = 0;
    if (!ParseInt(rows->back()[size_t(it)], &iters) || iters <= 0)
      return absl::InvalidArgumentError(absl::StrCat(path, ": last row has no positive iteration"));
    p.iterations[bsz] = iters;
  }
  std::vector<std::string> header;
  const std::string scal = (dir / "scalability.csv").string();
  auto rows = internal::ReadCsvRows(scal, &header);
  if (!rows.ok()) return rows.status();
  int cr = internal::ColumnIndex(header, "num_replicas"),
      cb = internal::ColumnIndex(header, "local_bsz"),
      cs = internal::ColumnIndex(header, "step_time");
  if (cr < 0 || cb < 0 || cs < 0)
    return absl::InvalidArgumentError(
        absl::StrCat(scal, ": needs columns num_replicas, local_bsz, step_time"));
  for (size_t i = 0; i < rows->size(); ++i) {
    const auto& r = (*rows)[i];
    int64_t n = 0, b = 0;
    double st = 0;
    if (r.size() != header.size() || !ParseInt(r[size_t(cr)], &n) || !ParseInt(r[size_t(cb)], &b) ||
        !ParseDouble(r[size_t(cs)], &st) || !(st > 0))
      return absl::InvalidArgumentError(absl::StrCat(scal, ":", i + 2, ": malformed row"));
    p.steps.push_back({n, b, st});
  }
  if (p.iterations.empty() || p.steps.empty())
    return absl::InvalidArgumentError(
        absl::StrCat(dir.string(), ": needs validation-<batch>.csv files and scalability.csv"));
  return p;
}

double EstimateDuration(const AppProfile& p, int64_t replicas, int64_t batch) {
  auto best_b = p.iterations.begin();
  for (auto it = p.iterations.begin(); it != p.iterations.end(); ++it)
    if (std::llabs(it->first - batch) < std::llabs(best_b->first - batch)) best_b = it;
  int64_t nearest_n = std::get<0>(p.steps.front());
  for (const auto& [n, b, st] : p.steps)
    if (std::llabs(n - replicas) < std::llabs(nearest_n - replicas)) nearest_n = n;
  const double local = double(batch) / double(std::max<int64_t>(1, replicas));
  double step = 0, best_gap = 0;
  for (const auto& [n, b, st] : p.steps) {
    if (n != nearest_n) continue;
    double gap = std::fabs(double(b) - local);
    if (step == 0 || gap < best_gap) step = st, best_gap = gap;
  }
  return double(best_b->second) * step;
}

}  // namespace

absl::StatusOr<Trace> ReadPolluxWorkload(const std::string& path, const std::string& profiles_dir,
                                         const TraceOptions& options) {
  std::vector<std::string> header;
  auto rows = internal::ReadCsvRows(path, &header);
  if (!rows.ok()) return rows.status();
  const char* kCols[] = {"name", "time", "application", "num_replicas", "batch_size"};
  int col[5];
  for (int i = 0; i < 5; ++i) {
    col[i] = internal::ColumnIndex(header, kCols[i]);
    if (col[i] < 0)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": missing column '", kCols[i], "' in header"));
  }
  std::filesystem::path dir = profiles_dir.empty()
                                  ? std::filesystem::path(path).parent_path() / ".." / ".." /
                                        "pollux-goodput-profiles"
                                  : std::filesystem::path(profiles_dir);
  std::map<std::string, AppProfile> profiles;
  Trace trace;
  trace.source = absl::StrCat("pollux:", path);
  internal::Rejector rejector(path, options, &trace);
  for (size_t i = 0; i < rows->size(); ++i) {
    const auto& r = (*rows)[i];
    const int64_t line = int64_t(i) + 2;
    if (r.size() != header.size()) {
      if (auto s = rejector.Reject(line, absl::StrCat("expected ", header.size(), " fields, got ",
                                                      r.size()));
          !s.ok())
        return s;
      continue;
    }
    double t = 0;
    int64_t replicas = 0, batch = 0;
    const std::string& app = r[size_t(col[2])];
    std::string error;
    if (!ParseDouble(r[size_t(col[1])], &t) || t < 0)
      error = absl::StrCat("time '", r[size_t(col[1])], "' is not a non-negative number");
    else if (!ParseInt(r[size_t(col[3])], &replicas) || replicas < 1 || replicas > 4096)
      error = absl::StrCat("num_replicas '", r[size_t(col[3])], "' out of range 1..4096");
    else if (!ParseInt(r[size_t(col[4])], &batch) || batch < 1)
      error = absl::StrCat("batch_size '", r[size_t(col[4])], "' is not a positive integer");
    else if (app.empty() || app.find('/') != std::string::npos || app.find("..") != std::string::npos)
      error = absl::StrCat("bad application '", app, "'");
    if (!error.empty()) {
      if (auto s = rejector.Reject(line, error); !s.ok()) return s;
      continue;
    }
    auto it = profiles.find(app);
    if (it == profiles.end()) {
      auto p = LoadProfile(dir / app);
      if (!p.ok())
        return absl::NotFoundError(absl::StrCat(path, ":", line, ": no profile for application '",
                                                app, "': ", p.status().message()));
      it = profiles.emplace(app, *std::move(p)).first;
    }
    TraceJob job;
    job.name = r[size_t(col[0])];
    job.submit_s = t;
    job.duration_s = EstimateDuration(it->second, replicas, batch);
    job.replicas = static_cast<int32_t>(replicas);
    job.shape = TaskShape{options.cpu_milli_per_gpu, options.memory_mib_per_gpu, 1, 1000};
    job.model = app;
    job.batch_size = batch;
    // What the artifact's Pollux runs let each job do: 1..64 GPUs and any
    // profiled batch; ncf stays on one GPU at batch 32768.
    job.elastic.min_replicas = 1;
    job.elastic.max_replicas = app == "ncf" ? 1 : 64;
    if (app == "ncf") job.elastic.min_batch = job.elastic.max_batch = 32768;
    trace.jobs.push_back(std::move(job));
  }
  if (auto s = internal::FinishTrace(path, options, /*sort=*/true, &trace); !s.ok()) return s;
  // The Pollux artifact's simulator: 60 s rounds, 30 s per restart, goodput.
  trace.modelling.round_s = 60;
  trace.modelling.restart_penalty_s = 30;
  trace.modelling.goodput = true;
  trace.modelling.profiles_dir = dir.lexically_normal().string();
  return trace;
}

}  // namespace meridian::sim
