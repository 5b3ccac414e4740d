// Philly and openb readers, the synthetic generator and ReadTrace dispatch.
// Meridian's own csv/jsonl formats are in trace_meridian.cc.
#include "sim/trace.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/clock.h"
#include "sim/trace_internal.h"
#include "spec/spec.h"

namespace meridian::sim {

namespace {

using internal::LineCursor;
using internal::ParseDouble;
using internal::ParseInt;
using internal::Rejector;
using internal::Trim;

// Largest job accepted from a trace, in GPUs (the largest Philly job has 128).
constexpr int64_t kMaxJobGpus = 1 << 16;
constexpr int64_t kMaxSyntheticJobs = 10'000'000;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil), so timestamps are read as UTC without timegm or locales.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool ParseFixedInt(std::string_view s, size_t pos, size_t len, int64_t* out) {
  if (pos + len > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// "YYYY-MM-DD HH:MM:SS" (also with 'T') as seconds since the Unix epoch, UTC.
bool ParseTimestamp(std::string_view s, int64_t* seconds) {
  s = Trim(s);
  if (s.size() != 19 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
      s[13] != ':' || s[16] != ':') {
    return false;
  }
  int64_t y, mo, d, h, mi, sec;
  if (!ParseFixedInt(s, 0, 4, &y) || !ParseFixedInt(s, 5, 2, &mo) || !ParseFixedInt(s, 8, 2, &d) ||
      !ParseFixedInt(s, 11, 2, &h) || !ParseFixedInt(s, 14, 2, &mi) ||
      !ParseFixedInt(s, 17, 2, &sec)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  *seconds = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  return true;
}

std::string MissingColumn(const std::string& file, std::string_view column) {
  return absl::StrCat(file, ": missing column '", std::string(column), "' in header");
}

// Reads the header of `text`; on success `cursor` is past it and `index`
// holds the column of each name in `columns` (-1 for absent optional ones).
absl::Status ReadHeader(const std::string& file, LineCursor* cursor,
                        const std::vector<std::string_view>& columns, size_t required,
                        std::vector<int>* index, size_t* width) {
  std::string_view line;
  while (cursor->Next(&line)) {
    if (internal::IsBlank(line)) continue;
    std::vector<std::string_view> header;
    internal::SplitPlain(line, &header);
    *index = internal::MapHeader(header, columns);
    *width = header.size();
    for (size_t c = 0; c < required; ++c) {
      if ((*index)[c] < 0) return absl::InvalidArgumentError(MissingColumn(file, columns[c]));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(file, ": empty file (no header row)"));
}

std::string ColumnCountError(size_t got, size_t want) {
  return absl::StrCat("expected ", want, " columns, got ", got);
}

std::string BadNumber(std::string_view column, std::string_view value) {
  return absl::StrCat("invalid ", std::string(column), " '", std::string(value), "'");
}

}  // namespace

absl::StatusOr<Trace> ReadPhillyTrace(const std::string& path, const TraceOptions& options) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  enum Col { kTimestamp, kDuration, kNumGpus, kCluster };
  const std::vector<std::string_view> columns = {"timestamp", "duration", "num_gpus", "cluster"};
  LineCursor cursor(*text);
  std::vector<int> col;
  size_t width = 0;
  if (absl::Status s = ReadHeader(path, &cursor, columns, 3, &col, &width); !s.ok()) return s;

  Trace trace;
  trace.source = absl::StrCat("philly:", path);
  Rejector rejector(path, options, &trace);
  std::vector<int64_t> stamps;
  std::vector<std::string_view> f;
  std::string_view line;
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    const int64_t n = cursor.line_number();
    internal::SplitPlain(line, &f);
    if (f.size() != width) {
      if (auto s = rejector.Reject(n, ColumnCountError(f.size(), width)); !s.ok()) return s;
      continue;
    }
    int64_t stamp = 0;
    if (!ParseTimestamp(f[col[kTimestamp]], &stamp)) {
      auto s =
          rejector.Reject(n, absl::StrCat("invalid timestamp '", std::string(f[col[kTimestamp]]),
                                          "' (want YYYY-MM-DD HH:MM:SS)"));
      if (!s.ok()) return s;
      continue;
    }
    double duration = 0;
    std::string_view dur_text = Trim(f[col[kDuration]]);
    if (!ParseDouble(dur_text, &duration) || duration <= 0) {
      auto s = rejector.Reject(n, absl::StrCat(BadNumber("duration", dur_text), " (want > 0)"));
      if (!s.ok()) return s;
      continue;
    }
    int64_t gpus = 0;
    std::string_view gpu_text = Trim(f[col[kNumGpus]]);
    double gpus_real = 0;
    if (!ParseInt(gpu_text, &gpus)) {
      // Tolerate "4.0"; reject fractions.
      if (ParseDouble(gpu_text, &gpus_real) && gpus_real == std::floor(gpus_real) &&
          std::abs(gpus_real) < 1e9) {
        gpus = static_cast<int64_t>(gpus_real);
      } else {
        gpus = -1;
      }
    }
    if (gpus < 1 || gpus > kMaxJobGpus) {
      auto s = rejector.Reject(
          n, absl::StrCat("num_gpus '", std::string(gpu_text), "' out of range 1..", kMaxJobGpus));
      if (!s.ok()) return s;
      continue;
    }
    TraceJob job;
    job.submit_s = static_cast<double>(stamp);
    job.duration_s = duration;
    internal::GangShape(gpus, options, &job);
    if (col[kCluster] >= 0) job.tenant = std::string(Trim(f[col[kCluster]]));
    trace.jobs.push_back(std::move(job));
    stamps.push_back(stamp);
  }
  if (!stamps.empty()) {
    const int64_t start = *std::min_element(stamps.begin(), stamps.end());
    for (size_t i = 0; i < trace.jobs.size(); ++i) {
      trace.jobs[i].submit_s = static_cast<double>(stamps[i] - start);
    }
  }
  if (absl::Status s = internal::FinishTrace(path, options, /*sort=*/true, &trace); !s.ok()) {
    return s;
  }
  // Names follow arrival order, so "philly-0" is the first job to arrive.
  for (size_t i = 0; i < trace.jobs.size(); ++i) trace.jobs[i].name = absl::StrCat("philly-", i);
  return trace;
}

absl::StatusOr<Trace> ReadOpenbTrace(const std::string& path, const TraceOptions& options) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  enum Col { kName, kCpu, kMemory, kNumGpu, kGpuMilli, kCreation, kDeletion, kGpuSpec, kQos };
  const std::vector<std::string_view> columns = {"name",          "cpu_milli", "memory_mib",
                                                 "num_gpu",       "gpu_milli", "creation_time",
                                                 "deletion_time", "gpu_spec",  "qos"};
  LineCursor cursor(*text);
  std::vector<int> col;
  size_t width = 0;
  if (absl::Status s = ReadHeader(path, &cursor, columns, 7, &col, &width); !s.ok()) return s;

  Trace trace;
  trace.source = absl::StrCat("openb:", path);
  Rejector rejector(path, options, &trace);
  std::vector<std::string_view> f;
  std::string_view line;
  double first_creation = std::numeric_limits<double>::infinity();
  while (cursor.Next(&line)) {
    if (internal::IsBlank(line)) continue;
    const int64_t n = cursor.line_number();
    internal::SplitPlain(line, &f);
    auto reject = [&](const std::string& reason) { return rejector.Reject(n, reason); };
    if (f.size() != width) {
      if (auto s = reject(ColumnCountError(f.size(), width)); !s.ok()) return s;
      continue;
    }
    auto field = [&](Col c) { return Trim(f[col[c]]); };
    int64_t cpu = 0, memory = 0, num_gpu = 0, gpu_milli = 0;
    double creation = 0, deletion = 0;
    std::string error;
    if (field(kName).empty()) {
      error = "empty name";
    } else if (!ParseInt(field(kCpu), &cpu) || cpu < 0) {
      error = BadNumber("cpu_milli", field(kCpu));
    } else if (!ParseInt(field(kMemory), &memory) || memory < 0) {
      error = BadNumber("memory_mib", field(kMemory));
    } else if (!ParseInt(field(kNumGpu), &num_gpu) || num_gpu < 0 || num_gpu > kMaxJobGpus) {
      error =
          absl::StrCat("num_gpu '", std::string(field(kNumGpu)), "' out of range 0..", kMaxJobGpus);
    } else if (!ParseInt(field(kGpuMilli), &gpu_milli) || gpu_milli < 0 || gpu_milli > 1000 ||
               (num_gpu == 1 && gpu_milli == 0)) {
      error = absl::StrCat("gpu_milli '", std::string(field(kGpuMilli)), "' out of range ",
                           num_gpu == 1 ? "1..1000" : "0..1000");
    } else if (!ParseDouble(field(kCreation), &creation) || creation < 0) {
      error = BadNumber("creation_time", field(kCreation));
    } else if (field(kDeletion).empty()) {
      error = "empty deletion_time (pod never ended)";
    } else if (!ParseDouble(field(kDeletion), &deletion)) {
      error = BadNumber("deletion_time", field(kDeletion));
    } else if (deletion < creation) {
      error = "deletion_time before creation_time";
    }
    if (!error.empty()) {
      if (auto s = reject(error); !s.ok()) return s;
      continue;
    }
    if (deletion == creation) {
      // Deleted the instant it was created (a Pending pod withdrawn): a valid
      // record that carries no work, dropped in both modes.
      rejector.Skip(n, "zero duration (deletion_time == creation_time), not a job");
      continue;
    }
    TraceJob job;
    job.name = std::string(field(kName));
    job.submit_s = creation;
    job.duration_s = deletion - creation;
    job.shape.cpu_milli = cpu;
    job.shape.memory_mib = memory;
    job.shape.gpus = static_cast<int32_t>(num_gpu);
    job.shape.gpu_milli = (num_gpu == 1) ? static_cast<int32_t>(gpu_milli) : 1000;
    if (col[kQos] >= 0) job.tenant = std::string(field(kQos));
    if (col[kGpuSpec] >= 0) {
      std::string_view spec = field(kGpuSpec);
      size_t start = 0;
      while (start <= spec.size() && !spec.empty()) {
        size_t bar = spec.find('|', start);
        if (bar == std::string_view::npos) bar = spec.size();
        std::string_view type = Trim(spec.substr(start, bar - start));
        if (!type.empty()) job.gpu_types.emplace_back(type);
        start = bar + 1;
      }
    }
    first_creation = std::min(first_creation, creation);
    trace.jobs.push_back(std::move(job));
  }
  for (TraceJob& job : trace.jobs) job.submit_s -= first_creation;
  if (absl::Status s = internal::FinishTrace(path, options, /*sort=*/true, &trace); !s.ok()) {
    return s;
  }
  return trace;
}

Trace SyntheticTrace(const SyntheticTraceOptions& options, const TraceOptions& trace_options) {
  Trace trace;
  int64_t count = std::max<int64_t>(0, options.jobs);
  if (trace_options.limit > 0) count = std::min(count, trace_options.limit);
  trace.source = absl::StrCat("synthetic:", options.jobs);
  trace.jobs.reserve(static_cast<size_t>(count));
  Rng rng(options.seed);

  // Size distribution: P(2^k) proportional to 0.3^k for 2^k <= max_gpus.
  std::vector<double> cumulative;
  double total = 0;
  for (int64_t k = 0, size = 1; size <= std::max(1, options.max_gpus); ++k, size *= 2) {
    total += std::pow(0.3, static_cast<double>(k));
    cumulative.push_back(total);
  }
  for (double& c : cumulative) c /= total;

  const double rate_per_s = std::max(options.arrivals_per_hour, 1e-9) / 3600.0;
  const double log_median = std::log(std::max(options.median_duration_s, 1e-3));
  const int32_t tenants = std::max(0, options.tenants);
  std::vector<std::string> tenant_names;
  for (int32_t t = 0; t < tenants; ++t) tenant_names.push_back(absl::StrCat("tenant-", t));
  static constexpr int32_t kShares[] = {250, 500, 750};

  double now = 0;
  bool have_spare = false;
  double spare_normal = 0;
  for (int64_t i = 0; i < count; ++i) {
    TraceJob& job = trace.jobs.emplace_back();
    job.name = absl::StrCat("syn-", i);
    job.submit_s = now;
    // Standard normal by Box-Muller; the second value of each pair is kept.
    double z;
    if (have_spare) {
      z = spare_normal;
      have_spare = false;
    } else {
      const double u1 = 1.0 - rng.UniformReal();  // (0, 1]
      const double u2 = rng.UniformReal();
      const double r = std::sqrt(-2.0 * std::log(u1));
      z = r * std::cos(2.0 * std::numbers::pi * u2);
      spare_normal = r * std::sin(2.0 * std::numbers::pi * u2);
      have_spare = true;
    }
    job.duration_s = std::max(1.0, std::exp(log_median + options.duration_sigma * z));
    if (options.fractional_share > 0 && rng.UniformReal() < options.fractional_share) {
      const int32_t milli = kShares[rng.Uniform(0, 2)];
      job.replicas = 1;
      job.shape.gpus = 1;
      job.shape.gpu_milli = milli;
      job.shape.cpu_milli = std::max<int64_t>(100, trace_options.cpu_milli_per_gpu * milli / 1000);
      job.shape.memory_mib =
          std::max<int64_t>(256, trace_options.memory_mib_per_gpu * milli / 1000);
    } else {
      const double u = rng.UniformReal();
      size_t k = 0;
      while (k + 1 < cumulative.size() && u >= cumulative[k]) ++k;
      internal::GangShape(int64_t{1} << k, trace_options, &job);
    }
    if (tenants > 0) job.tenant = tenant_names[static_cast<size_t>(i % tenants)];
    // Exponential inter-arrival time by inverse CDF.
    now += -std::log(1.0 - rng.UniformReal()) / rate_per_s;
  }
  return trace;
}

absl::StatusOr<Trace> ReadTrace(const std::string& spec, const TraceOptions& options) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (options.limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace limit must be >= 0 (0 = all), got ", options.limit));
  }
  if (colon != std::string::npos && !rest.empty()) {
    if (kind == "philly") return ReadPhillyTrace(rest, options);
    if (kind == "openb") return ReadOpenbTrace(rest, options);
    if (kind == "csv") return ReadCsvTrace(rest, options);
    if (kind == "jsonl") return ReadJsonlTrace(rest, options);
    if (kind == "pollux") return ReadPolluxWorkload(rest, "", options);
    if (kind == "gavel") return ReadGavelTrace(rest, options);
  }
  if (kind == "synthetic" && colon != std::string::npos) {
    // synthetic:N or synthetic:N:RATE (Poisson arrivals per hour).
    const size_t colon2 = rest.find(':');
    const std::string count = rest.substr(0, colon2);
    int64_t n = 0;
    if (!ParseInt(count, &n) || n < 1 || n > kMaxSyntheticJobs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trace '", spec, "': synthetic:N needs N a whole number in 1..", kMaxSyntheticJobs));
    }
    SyntheticTraceOptions synthetic;
    synthetic.jobs = n;
    synthetic.seed = options.seed;
    if (colon2 != std::string::npos) {
      double rate = 0;
      if (!absl::SimpleAtod(rest.substr(colon2 + 1), &rate) || !(rate > 0) || rate > 1e9) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trace '", spec, "': synthetic:N:RATE needs RATE arrivals per hour in (0, 1e9]"));
      }
      synthetic.arrivals_per_hour = rate;
    }
    return SyntheticTrace(synthetic, options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("trace '", spec,
                   "': expected KIND:PATH with KIND one of philly, openb, csv, jsonl, pollux, "
                   "gavel, or synthetic:N[:RATE]"));
}

}  // namespace meridian::sim
