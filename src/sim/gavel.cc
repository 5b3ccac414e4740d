#include "sim/gavel.h"

#include <cmath>
#include <filesystem>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/clock.h"
#include "nlohmann/json.hpp"
#include "sim/trace_internal.h"
#include "spec/spec.h"

namespace meridian::sim {

namespace {

constexpr const char* kBaseWorker = kGavelWorkerTypes[0];  // speeds are relative to it

// "('ResNet-50 (batch size 64)', 4)" -> ("ResNet-50 (batch size 64)", 4).
// Job type names contain parentheses and commas: split at the last "', ".
bool ParseJobKey(const std::string& key, std::string* job_type, int32_t* scale_factor) {
  constexpr std::string_view kOpen = "('", kSep = "', ";
  if (key.size() < kOpen.size() + kSep.size() + 2 || key.compare(0, kOpen.size(), kOpen) != 0 ||
      key.back() != ')')
    return false;
  const size_t sep = key.rfind(kSep);
  if (sep == std::string::npos || sep < kOpen.size()) return false;
  *job_type = key.substr(kOpen.size(), sep - kOpen.size());
  const std::string number = key.substr(sep + kSep.size(), key.size() - 1 - sep - kSep.size());
  return !job_type->empty() && absl::SimpleAtoi(number, scale_factor) && *scale_factor > 0;
}

}  // namespace

absl::StatusOr<GavelTable> ReadGavelThroughputs(const std::string& path) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!doc.is_object())
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected a JSON object keyed by worker type (k80, p100, v100)"));
  GavelTable table;
  for (const char* worker : kGavelWorkerTypes) {
    auto w = doc.find(worker);
    if (w == doc.end()) continue;
    if (!w->is_object())
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": worker type '", worker, "' is not a JSON object"));
    for (auto it = w->begin(); it != w->end(); ++it) {
      std::string job_type;
      int32_t scale = 0;
      if (!ParseJobKey(it.key(), &job_type, &scale))
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": ", worker, ": malformed job key '", it.key(),
                         "' (expected \"('<job type>', <scale factor>)\")"));
      if (!it->is_object())
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": ", worker, ": ", it.key(), ": expected a JSON object"));
      auto isolated = it->find("null");
      if (isolated == it->end()) continue;  // only co-location measurements
      if (!isolated->is_number())
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": ", worker, ": ", it.key(),
                         ": isolated throughput (\"null\") is not a number"));
      const double throughput = isolated->get<double>();
      // Gavel stores 0 where the job does not fit the worker type.
      if (!std::isfinite(throughput) || throughput <= 0) continue;
      table.throughput[job_type][scale][worker] = throughput;
    }
  }
  bool usable = false;
  for (const auto& [type, scales] : table.throughput)
    for (const auto& [scale, workers] : scales) usable |= workers.contains(kBaseWorker);
  if (!usable)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no job type has a positive isolated throughput on ", kBaseWorker,
                     " (worker types read: ", absl::StrJoin(kGavelWorkerTypes, ", "), ")"));
  return table;
}

int32_t GavelScaleFactor(const TraceJob& job) {
  const int64_t gpus = int64_t{job.replicas} * job.shape.gpus;
  if (gpus <= 0) return 0;
  if (gpus <= 1) return 1;
  if (gpus <= 2) return 2;
  if (gpus <= 4) return 4;
  return 8;
}

absl::Status AssignGavelJobTypes(Trace& trace, const GavelTable& table, uint64_t seed) {
  // Candidates per scale factor, in the table's (sorted) order: deterministic.
  struct Candidate {
    const std::string* type;
    const std::map<std::string, double>* throughput;  // worker type -> steps/s
  };
  std::map<int32_t, std::vector<Candidate>> candidates;
  for (const auto& [type, scales] : table.throughput)
    for (const auto& [scale, workers] : scales)
      if (workers.contains(kBaseWorker)) candidates[scale].push_back({&type, &workers});
  for (const TraceJob& job : trace.jobs) {
    const int32_t scale = GavelScaleFactor(job);
    if (scale > 0 && !candidates.contains(scale))
      return absl::InvalidArgumentError(absl::StrCat(
          "job '", job.name, "' needs scale factor ", scale,
          " but the Gavel table has no job type measured on ", kBaseWorker, " at that scale"));
  }
  Rng rng(seed);
  for (TraceJob& job : trace.jobs) {
    const int32_t scale = GavelScaleFactor(job);
    if (scale == 0) continue;
    const auto& pool = candidates.at(scale);
    const Candidate& drawn = pool[rng.Uniform(0, int64_t(pool.size()) - 1)];
    const double base = drawn.throughput->at(kBaseWorker);
    job.model = *drawn.type;
    job.speeds.clear();
    for (const auto& [worker, steps] : *drawn.throughput) job.speeds[worker] = steps / base;
    // Not measured on some worker type: the job does not fit there.
    if (job.gpu_types.empty() && drawn.throughput->size() < std::size(kGavelWorkerTypes))
      for (const auto& [worker, speed] : job.speeds) job.gpu_types.push_back(worker);
  }
  return absl::OkStatus();
}

absl::StatusOr<Trace> ReadGavelTrace(const std::string& path, const TraceOptions& options) {
  const std::string table_path = !options.gavel_throughputs.empty()
                                     ? options.gavel_throughputs
                                     : (std::filesystem::path(path).parent_path() / ".." /
                                        "gavel-throughputs" / "simulation_throughputs.json.gz")
                                           .lexically_normal()
                                           .string();
  auto table = ReadGavelThroughputs(table_path);
  if (!table.ok())
    return absl::Status(
        table.status().code(),
        absl::StrCat("gavel trace ", path, ": throughput table: ", table.status().message(),
                     " (give the table with --gavel PATH)"));
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  Trace trace;
  trace.source = absl::StrCat("gavel:", path);
  internal::Rejector rejector(path, options, &trace);
  internal::LineCursor cursor(*text);
  std::string_view line;
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    const int64_t n = cursor.line_number();
    std::vector<std::string> f;
    for (size_t start = 0;;) {
      const size_t tab = line.find('\t', start);
      f.emplace_back(line.substr(start, tab == std::string_view::npos ? line.npos : tab - start));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    std::string error;
    int64_t steps = 0, scale = 0;
    double arrival = 0;
    const GavelTable::Workers* workers = nullptr;
    if (f.size() != 10) {
      error = absl::StrCat("expected 10 tab-separated fields (Gavel trace), got ", f.size());
    } else if (!internal::ParseInt(internal::Trim(f[5]), &steps) || steps < 1) {
      error = absl::StrCat("total_steps '", f[5], "' is not a positive integer");
    } else if (!internal::ParseInt(internal::Trim(f[6]), &scale) || scale < 1 || scale > 4096) {
      error = absl::StrCat("scale_factor '", f[6], "' out of range 1..4096");
    } else if (!internal::ParseDouble(internal::Trim(f[9]), &arrival) || arrival < 0) {
      error = absl::StrCat("arrival_time '", f[9], "' is not a non-negative number");
    } else {
      auto type = table->throughput.find(std::string(internal::Trim(f[0])));
      if (type != table->throughput.end()) {
        auto sc = type->second.find(int32_t(scale));
        if (sc != type->second.end()) workers = &sc->second;
      }
      if (workers == nullptr)
        error = absl::StrCat("job type '", f[0], "' at scale factor ", scale,
                             " is not in the throughput table ", table_path);
    }
    if (!error.empty()) {
      if (auto st = rejector.Reject(n, error); !st.ok()) return st;
      continue;
    }
    TraceJob job;
    job.name = absl::StrCat("job-", trace.jobs.size());
    job.submit_s = arrival;
    job.model = std::string(internal::Trim(f[0]));
    job.replicas = int32_t(scale);
    job.shape = TaskShape{options.cpu_milli_per_gpu, options.memory_mib_per_gpu, 1, 1000};
    std::string base;
    for (const char* w : kGavelWorkerTypes)
      if (base.empty() && workers->contains(w)) base = w;
    const double base_tput = workers->at(base);
    job.duration_s = double(steps) / base_tput;
    for (const auto& [w, tput] : *workers) {
      job.speeds[w] = tput / base_tput;
      job.gpu_types.push_back(w);
    }
    trace.jobs.push_back(std::move(job));
  }
  if (auto st = internal::FinishTrace(path, options, /*sort=*/true, &trace); !st.ok()) return st;
  // Gavel's simulator: 360 s rounds, no cost for moving a job.
  trace.modelling.round_s = 360;
  trace.modelling.allocation_reset_s = 1920;
  return trace;
}

}  // namespace meridian::sim
