#include "sim/gavel.h"

#include <cmath>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/clock.h"
#include "nlohmann/json.hpp"
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

}  // namespace meridian::sim
