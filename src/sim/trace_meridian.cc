// Meridian's own trace formats (docs/traces.md): csv with a header naming the
// columns, and jsonl with one object per line using the same field names.
// Both go through BuildJob so they accept and reject exactly the same values.
#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "sim/trace.h"
#include "sim/trace_internal.h"
#include "spec/spec.h"

namespace meridian::sim {

namespace {

using internal::ParseDouble;
using internal::ParseInt;
using internal::Trim;

enum Field {
  kName,
  kSubmit,
  kDuration,
  kReplicas,
  kGpus,
  kCpu,
  kMemory,
  kTenant,
  kGpuTypes,
  kPriority,
  kModel,
  kBatchSize,
  kMinReplicas,
  kMaxReplicasField,
  kMinBatch,
  kMaxBatch,
  kFieldCount
};
constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "name",         "submit_s",     "duration_s", "replicas", "gpus",  "cpu",
    "memory",       "tenant",       "gpu_types",  "priority", "model", "batch_size",
    "min_replicas", "max_replicas", "min_batch",  "max_batch"};
constexpr int kRequiredFields = 3;  // name, submit_s, duration_s
constexpr int64_t kMaxReplicas = 100'000;
constexpr int64_t kMaxGpusPerReplica = 1024;

using Cells = std::array<std::optional<std::string_view>, kFieldCount>;

int FieldIndex(std::string_view name) {
  for (int i = 0; i < kFieldCount; ++i) {
    if (kFieldNames[i] == name) return i;
  }
  return -1;
}

std::string KnownFields() {
  std::string out;
  for (int i = 0; i < kFieldCount; ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", std::string(kFieldNames[i]));
  }
  return out;
}

std::string Quoted(std::string_view field, std::string_view value) {
  return absl::StrCat(std::string(field), " '", std::string(value), "'");
}

// "16384", "16Gi", "512Mi", "1.5Ti" -> MiB.
bool ParseMemoryMib(std::string_view s, int64_t* mib) {
  double scale = 1;
  if (s.size() > 2) {
    std::string_view suffix = s.substr(s.size() - 2);
    if (suffix == "Mi")
      scale = 1, s.remove_suffix(2);
    else if (suffix == "Gi")
      scale = 1024, s.remove_suffix(2);
    else if (suffix == "Ti")
      scale = 1024.0 * 1024, s.remove_suffix(2);
  }
  double v = 0;
  if (!ParseDouble(Trim(s), &v) || v < 0 || v * scale > 1e15) return false;
  *mib = std::llround(v * scale);
  return true;
}

// "4" cores, "0.5" cores or "500m" -> milli-cores.
bool ParseCpuMilli(std::string_view s, int64_t* milli) {
  double scale = 1000;
  if (!s.empty() && s.back() == 'm') scale = 1, s.remove_suffix(1);
  double v = 0;
  if (!ParseDouble(Trim(s), &v) || v < 0 || v * scale > 1e15) return false;
  *milli = std::llround(v * scale);
  return true;
}

// Fills `job` from the present cells; false with `*error` on a bad value.
bool BuildJob(const Cells& cells, const TraceOptions& options, TraceJob* job, std::string* error) {
  auto cell = [&](Field f) { return cells[f].has_value() ? Trim(*cells[f]) : std::string_view(); };
  auto present = [&](Field f) { return cells[f].has_value() && !Trim(*cells[f]).empty(); };

  if (!present(kName)) return *error = "empty name", false;
  job->name = std::string(cell(kName));
  if (!ParseDouble(cell(kSubmit), &job->submit_s) || job->submit_s < 0) {
    return *error = Quoted("invalid submit_s", cell(kSubmit)) + " (want a number >= 0)", false;
  }
  if (!ParseDouble(cell(kDuration), &job->duration_s) || job->duration_s <= 0) {
    return *error = Quoted("invalid duration_s", cell(kDuration)) + " (want a number > 0)", false;
  }
  if (present(kReplicas)) {
    int64_t r = 0;
    if (!ParseInt(cell(kReplicas), &r) || r < 1 || r > kMaxReplicas) {
      return *error = absl::StrCat(Quoted("replicas", cell(kReplicas)), " out of range 1..",
                                   kMaxReplicas),
             false;
    }
    job->replicas = static_cast<int32_t>(r);
  }
  job->shape.gpus = 1;
  job->shape.gpu_milli = 1000;
  if (present(kGpus)) {
    int64_t g = 0;
    double share = 0;
    if (ParseInt(cell(kGpus), &g)) {
      if (g < 0 || g > kMaxGpusPerReplica) {
        return *error = absl::StrCat(Quoted("gpus", cell(kGpus)), " out of range 0..",
                                     kMaxGpusPerReplica),
               false;
      }
      job->shape.gpus = static_cast<int32_t>(g);
    } else if (ParseDouble(cell(kGpus), &share) && share > 0 && share < 1) {
      job->shape.gpus = 1;
      job->shape.gpu_milli =
          static_cast<int32_t>(std::clamp<int64_t>(std::llround(share * 1000), 1, 999));
    } else {
      return *error = Quoted("gpus", cell(kGpus)) +
                      " must be a whole number or a fraction of one GPU below 1",
             false;
    }
  }
  // GPU share of this replica in GPUs, for the CPU/memory defaults.
  const double gpu_equiv = static_cast<double>(job->shape.total_gpu_milli()) / 1000.0;
  if (present(kCpu)) {
    if (!ParseCpuMilli(cell(kCpu), &job->shape.cpu_milli)) {
      return *error = Quoted("invalid cpu", cell(kCpu)) + " (want cores, e.g. 4 or 500m)", false;
    }
  } else {
    job->shape.cpu_milli =
        gpu_equiv > 0 ? std::llround(static_cast<double>(options.cpu_milli_per_gpu) * gpu_equiv)
                      : 1000;
  }
  if (present(kMemory)) {
    if (!ParseMemoryMib(cell(kMemory), &job->shape.memory_mib)) {
      return *error = Quoted("invalid memory", cell(kMemory)) + " (want MiB, or e.g. 16Gi)", false;
    }
  } else {
    job->shape.memory_mib =
        gpu_equiv > 0 ? std::llround(static_cast<double>(options.memory_mib_per_gpu) * gpu_equiv)
                      : 4096;
  }
  if (present(kTenant)) job->tenant = std::string(cell(kTenant));
  if (present(kGpuTypes)) {
    std::string_view types = cell(kGpuTypes);
    size_t start = 0;
    while (start <= types.size()) {
      size_t bar = types.find('|', start);
      if (bar == std::string_view::npos) bar = types.size();
      std::string_view t = Trim(types.substr(start, bar - start));
      if (!t.empty()) job->gpu_types.emplace_back(t);
      start = bar + 1;
    }
  }
  if (present(kPriority)) {
    int64_t p = 0;
    if (!ParseInt(cell(kPriority), &p) || p < -1'000'000'000 || p > 1'000'000'000) {
      return *error = Quoted("invalid priority", cell(kPriority)) + " (want an integer)", false;
    }
    job->priority = static_cast<int32_t>(p);
  }
  if (present(kModel)) job->model = std::string(cell(kModel));
  // Optional positive integers: batch sizes and the elastic range.
  auto positive = [&](Field f, int64_t max, int64_t* out) {
    if (!present(f)) return true;
    if (!ParseInt(cell(f), out) || *out < 1 || *out > max) {
      *error = absl::StrCat(Quoted(std::string(kFieldNames[f]), cell(f)), " out of range 1..", max);
      return false;
    }
    return true;
  };
  int64_t lo = 0, hi = 0, blo = 0, bhi = 0;
  constexpr int64_t kMaxBatchSize = int64_t{1} << 40;
  if (!positive(kBatchSize, kMaxBatchSize, &job->batch_size) ||
      !positive(kMinReplicas, kMaxReplicas, &lo) ||
      !positive(kMaxReplicasField, kMaxReplicas, &hi) ||
      !positive(kMinBatch, kMaxBatchSize, &blo) || !positive(kMaxBatch, kMaxBatchSize, &bhi))
    return false;
  if ((lo > 0 || blo > 0 || bhi > 0) && hi == 0)
    return *error = "min_replicas, min_batch and max_batch need max_replicas (an elastic job)",
           false;
  if (hi > 0 && lo > hi)
    return *error = absl::StrCat("min_replicas ", lo, " is above max_replicas ", hi), false;
  if (blo > 0 && bhi > 0 && blo > bhi)
    return *error = absl::StrCat("min_batch ", blo, " is above max_batch ", bhi), false;
  job->elastic.min_replicas = int32_t(hi > 0 ? std::max<int64_t>(lo, 1) : 0);
  job->elastic.max_replicas = int32_t(hi);
  job->elastic.min_batch = blo;
  job->elastic.max_batch = bhi;
  return true;
}

// Appends a parsed job, enforcing sorted submit times.
absl::Status Accept(TraceJob job, int64_t line, internal::Rejector* rejector, double* last_submit,
                    Trace* trace) {
  if (job.submit_s < *last_submit) {
    return rejector->Reject(
        line, absl::StrCat("submit_s ", job.submit_s, " is before the previous job's ",
                           *last_submit, " (rows must be sorted by submit_s)"));
  }
  *last_submit = job.submit_s;
  trace->jobs.push_back(std::move(job));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Trace> ReadCsvTrace(const std::string& path, const TraceOptions& options) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  internal::LineCursor cursor(*text);
  Trace trace;
  trace.source = absl::StrCat("csv:", path);
  internal::Rejector rejector(path, options, &trace);

  std::vector<std::string_view> fields;
  std::vector<std::string> storage;
  std::string error;
  std::string_view line;
  // Header: the first non-blank line.
  std::array<int, kFieldCount> column;
  column.fill(-1);
  size_t width = 0;
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    if (!internal::SplitQuoted(line, &fields, &storage, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", cursor.line_number(), ": header: ", error));
    }
    width = fields.size();
    for (size_t i = 0; i < fields.size(); ++i) {
      std::string_view name = Trim(fields[i]);
      int f = FieldIndex(name);
      if (f < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", cursor.line_number(),
                                                       ": unknown column '", std::string(name),
                                                       "' in header (known: ", KnownFields(), ")"));
      }
      if (column[f] >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", cursor.line_number(), ": duplicate column '", std::string(name), "'"));
      }
      column[f] = static_cast<int>(i);
    }
    break;
  }
  if (width == 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty file (no header row)"));
  for (int f = 0; f < kRequiredFields; ++f) {
    if (column[f] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": missing column '", std::string(kFieldNames[f]), "' in header"));
    }
  }

  double last_submit = 0;
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    const int64_t n = cursor.line_number();
    if (!internal::SplitQuoted(line, &fields, &storage, &error)) {
      if (auto s = rejector.Reject(n, error); !s.ok()) return s;
      continue;
    }
    if (fields.size() != width) {
      auto s =
          rejector.Reject(n, absl::StrCat("expected ", width, " columns, got ", fields.size()));
      if (!s.ok()) return s;
      continue;
    }
    Cells cells;
    for (int f = 0; f < kFieldCount; ++f) {
      if (column[f] >= 0) cells[f] = fields[column[f]];
    }
    TraceJob job;
    if (!BuildJob(cells, options, &job, &error)) {
      if (auto s = rejector.Reject(n, error); !s.ok()) return s;
      continue;
    }
    if (auto s = Accept(std::move(job), n, &rejector, &last_submit, &trace); !s.ok()) return s;
  }
  if (auto s = internal::FinishTrace(path, options, /*sort=*/false, &trace); !s.ok()) return s;
  return trace;
}

absl::StatusOr<Trace> ReadJsonlTrace(const std::string& path, const TraceOptions& options) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  internal::LineCursor cursor(*text);
  Trace trace;
  trace.source = absl::StrCat("jsonl:", path);
  internal::Rejector rejector(path, options, &trace);

  double last_submit = 0;
  std::string_view line;
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    const int64_t n = cursor.line_number();
    nlohmann::json object = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                                  /*allow_exceptions=*/false);
    std::string error;
    std::array<std::string, kFieldCount> texts;
    Cells cells;
    if (object.is_discarded() || !object.is_object()) {
      error = "not a JSON object";
    } else {
      for (auto it = object.begin(); it != object.end() && error.empty(); ++it) {
        const int f = FieldIndex(it.key());
        const nlohmann::json& v = it.value();
        if (f < 0) {
          error = absl::StrCat("unknown field '", it.key(), "' (known: ", KnownFields(), ")");
        } else if (v.is_null()) {
          continue;
        } else if (f == kName || f == kTenant || f == kModel) {
          if (!v.is_string())
            error = absl::StrCat("field '", it.key(), "' must be a string");
          else
            texts[f] = v.get<std::string>();
        } else if (f == kGpuTypes) {
          if (v.is_string()) {
            texts[f] = v.get<std::string>();
          } else if (v.is_array()) {
            std::vector<std::string> types;
            for (const nlohmann::json& t : v) {
              if (!t.is_string()) {
                error = "gpu_types must be an array of strings";
                break;
              }
              types.push_back(t.get<std::string>());
            }
            texts[f] = absl::StrJoin(types, "|");
          } else {
            error = "gpu_types must be an array of strings or a '|'-separated string";
          }
        } else if (f == kMemory && v.is_string()) {
          texts[f] = v.get<std::string>();
        } else if (v.is_number()) {
          texts[f] = v.dump();
        } else {
          error = absl::StrCat("field '", it.key(), "' must be a number");
        }
        if (error.empty()) cells[f] = texts[f];
      }
      for (int f = 0; f < kRequiredFields && error.empty(); ++f) {
        if (!cells[f].has_value()) {
          error = absl::StrCat("missing field '", std::string(kFieldNames[f]), "'");
        }
      }
    }
    TraceJob job;
    if (error.empty() && !BuildJob(cells, options, &job, &error)) {
      // error set by BuildJob
    }
    if (!error.empty()) {
      if (auto s = rejector.Reject(n, error); !s.ok()) return s;
      continue;
    }
    if (auto s = Accept(std::move(job), n, &rejector, &last_submit, &trace); !s.ok()) return s;
  }
  if (auto s = internal::FinishTrace(path, options, /*sort=*/false, &trace); !s.ok()) return s;
  return trace;
}

}  // namespace meridian::sim
