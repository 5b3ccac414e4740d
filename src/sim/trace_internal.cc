// Shared helpers of the trace readers; see trace_internal.h.
#include "sim/trace_internal.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "spec/spec.h"

namespace meridian::sim::internal {

namespace {
constexpr size_t kMaxSkippedExamples = 5;
}  // namespace

LineCursor::LineCursor(std::string_view text) : text_(text) {
  if (text_.size() >= 3 && text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
}

bool LineCursor::Next(std::string_view* line) {
  if (pos_ >= text_.size()) return false;
  size_t end = text_.find('\n', pos_);
  if (end == std::string_view::npos) end = text_.size();
  std::string_view l = text_.substr(pos_, end - pos_);
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  *line = l;
  pos_ = end + 1;
  ++line_number_;
  return true;
}

void SplitPlain(std::string_view line, std::vector<std::string_view>* out) {
  out->clear();
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out->push_back(line.substr(start));
      return;
    }
    out->push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

bool SplitQuoted(std::string_view line, std::vector<std::string_view>* out,
                 std::vector<std::string>* storage, std::string* error) {
  if (line.find('"') == std::string_view::npos) {
    SplitPlain(line, out);
    return true;
  }
  out->clear();
  storage->clear();
  // Reserve so that views into storage stay valid while it grows.
  storage->reserve(line.size() + 1);
  size_t i = 0;
  while (true) {
    size_t field_start = i;
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size() && line[i] == '"') {
      std::string value;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            value.push_back('"');
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        value.push_back(line[i++]);
      }
      if (!closed) {
        *error = "unterminated quoted field";
        return false;
      }
      while (i < line.size() && line[i] == ' ') ++i;
      if (i < line.size() && line[i] != ',') {
        *error = "unexpected text after a quoted field";
        return false;
      }
      storage->push_back(std::move(value));
      out->push_back(storage->back());
    } else {
      size_t comma = line.find(',', field_start);
      if (comma == std::string_view::npos) comma = line.size();
      out->push_back(line.substr(field_start, comma - field_start));
      i = comma;
    }
    if (i >= line.size()) return true;
    ++i;  // the comma
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsBlank(std::string_view s) { return Trim(s).empty(); }

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  if (*begin == '+') ++begin;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end;
}

std::vector<int> MapHeader(const std::vector<std::string_view>& header,
                           const std::vector<std::string_view>& wanted) {
  std::vector<int> index(wanted.size(), -1);
  for (size_t w = 0; w < wanted.size(); ++w) {
    for (size_t h = 0; h < header.size(); ++h) {
      if (Trim(header[h]) == wanted[w]) {
        index[w] = static_cast<int>(h);
        break;
      }
    }
  }
  return index;
}

absl::Status Rejector::Reject(int64_t line, std::string_view reason) {
  std::string message = absl::StrCat(file_, ":", line, ": ", std::string(reason));
  if (!lenient_) return absl::InvalidArgumentError(message);
  ++trace_->skipped;
  if (trace_->skipped_examples.size() < kMaxSkippedExamples) {
    trace_->skipped_examples.push_back(std::move(message));
  }
  return absl::OkStatus();
}

void Rejector::Skip(int64_t line, std::string_view reason) {
  ++trace_->skipped;
  if (trace_->skipped_examples.size() < kMaxSkippedExamples) {
    trace_->skipped_examples.push_back(absl::StrCat(file_, ":", line, ": ", std::string(reason)));
  }
}

void GangShape(int64_t total_gpus, const TraceOptions& options, TraceJob* job) {
  const int64_t per = std::max<int64_t>(1, options.gpus_per_replica);
  int64_t gpus = total_gpus;
  int64_t replicas = 1;
  if (total_gpus > per) {
    replicas = (total_gpus + per - 1) / per;
    gpus = per;
  }
  job->replicas = static_cast<int32_t>(replicas);
  job->shape.gpus = static_cast<int32_t>(gpus);
  job->shape.gpu_milli = 1000;
  job->shape.cpu_milli = gpus > 0 ? options.cpu_milli_per_gpu * gpus : 1000;
  job->shape.memory_mib = gpus > 0 ? options.memory_mib_per_gpu * gpus : 4096;
}

absl::Status FinishTrace(const std::string& file, const TraceOptions& options, bool sort,
                         Trace* trace) {
  if (trace->jobs.empty()) {
    std::string message = absl::StrCat(file, ": trace has no jobs");
    if (trace->skipped > 0) {
      absl::StrAppend(&message, " (", trace->skipped, " lines skipped");
      if (!trace->skipped_examples.empty()) {
        absl::StrAppend(&message, "; first: ", trace->skipped_examples.front());
      }
      absl::StrAppend(&message, ")");
    }
    return absl::InvalidArgumentError(message);
  }
  if (sort) {
    std::stable_sort(trace->jobs.begin(), trace->jobs.end(),
                     [](const TraceJob& a, const TraceJob& b) { return a.submit_s < b.submit_s; });
  }
  if (options.limit > 0 && static_cast<int64_t>(trace->jobs.size()) > options.limit) {
    trace->jobs.resize(static_cast<size_t>(options.limit));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<std::string>>> ReadCsvRows(const std::string& path,
                                                                  std::vector<std::string>* header,
                                                                  std::vector<int64_t>* lines) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  LineCursor cursor(*text);
  std::string_view line;
  std::vector<std::string_view> f;
  std::vector<std::vector<std::string>> rows;
  bool first = true;
  while (cursor.Next(&line)) {
    if (IsBlank(line)) continue;
    SplitPlain(line, &f);
    std::vector<std::string> row;
    for (std::string_view x : f) row.emplace_back(Trim(x));
    if (first) {
      *header = std::move(row);
      first = false;
    } else {
      rows.push_back(std::move(row));
      if (lines) lines->push_back(cursor.line_number());
    }
  }
  if (first) return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
  return rows;
}

int ColumnIndex(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

absl::StatusOr<std::map<int64_t, std::string>> ValidationFiles(const std::string& dir) {
  std::map<int64_t, std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("validation-", 0) != 0 || entry.path().extension() != ".csv") continue;
    int64_t bsz = 0;
    if (!ParseInt(name.substr(11, name.size() - 15), &bsz) || bsz <= 0) continue;
    out[bsz] = entry.path().string();
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", dir, ": ", ec.message()));
  return out;
}

}  // namespace meridian::sim::internal
