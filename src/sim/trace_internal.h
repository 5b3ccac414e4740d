// Shared pieces of the trace readers (trace.cc, trace_meridian.cc): line and
// field splitting over an in-memory file, strict number parsing, the
// strict/lenient error policy and the final sort/limit step.
//
// Internal to meridian_sim_io; not part of the public API. Every function is
// pure or works only on the objects passed in; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sim/trace.h"

namespace meridian::sim::internal {

// Walks the lines of `text`: strips a trailing '\r' and a leading UTF-8 BOM on
// the first line. Line numbers are 1-based.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text);
  // Sets `*line` to the next line; false at the end of the text.
  bool Next(std::string_view* line);
  int64_t line_number() const { return line_number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int64_t line_number_ = 0;
};

// Splits on ',' with no quoting (philly and openb never quote).
void SplitPlain(std::string_view line, std::vector<std::string_view>* out);

// Splits on ',' honouring "double ""quoted"" fields". Unescaped quoted fields
// are stored in `*storage` (cleared first), which must outlive `*out`.
// False with `*error` set on an unterminated quote.
bool SplitQuoted(std::string_view line, std::vector<std::string_view>* out,
                 std::vector<std::string>* storage, std::string* error);

std::string_view Trim(std::string_view s);
bool IsBlank(std::string_view s);

// Whole-string parses (no surrounding spaces); false on garbage, overflow,
// or (doubles) a non-finite value.
bool ParseDouble(std::string_view s, double* out);
bool ParseInt(std::string_view s, int64_t* out);

// Index of each wanted column in a header row; -1 when absent.
std::vector<int> MapHeader(const std::vector<std::string_view>& header,
                           const std::vector<std::string_view>& wanted);

// Applies TraceOptions::lenient to bad lines of one file.
class Rejector {
 public:
  Rejector(std::string file, const TraceOptions& options, Trace* trace)
      : file_(std::move(file)), lenient_(options.lenient), trace_(trace) {}
  // Strict: InvalidArgument "FILE:LINE: reason". Lenient: counts the line in
  // Trace::skipped, keeps the first few messages and returns OK.
  absl::Status Reject(int64_t line, std::string_view reason);
  // Counts a line that is skipped in both modes (not an error), keeping the message.
  void Skip(int64_t line, std::string_view reason);
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  bool lenient_;
  Trace* trace_;
};

// A Philly-style job of `total_gpus` GPUs: one replica up to gpus_per_replica,
// else ceil(total / gpus_per_replica) replicas of gpus_per_replica GPUs.
// CPU and memory scale with the GPUs per replica. Precondition: total_gpus >= 0.
void GangShape(int64_t total_gpus, const TraceOptions& options, TraceJob* job);

// Reads a small CSV file with a header row into rows of trimmed fields
// (blank lines skipped). `lines` (optional) gets each row's 1-based line
// number. Errors: the file cannot be read, or it is empty (names the path).
absl::StatusOr<std::vector<std::vector<std::string>>> ReadCsvRows(
    const std::string& path, std::vector<std::string>* header,
    std::vector<int64_t>* lines = nullptr);
// Index of `name` in a header row; -1 when absent.
int ColumnIndex(const std::vector<std::string>& header, const std::string& name);

// The Pollux profiles' validation-<global batch>.csv files in `dir`, by
// batch size (other files ignored). NotFound naming `dir` when unreadable.
absl::StatusOr<std::map<int64_t, std::string>> ValidationFiles(const std::string& dir);

// Final step shared by the readers: fails when there are no jobs, sorts by
// submit time when `sort` (stable), then applies options.limit.
absl::Status FinishTrace(const std::string& file, const TraceOptions& options, bool sort,
                         Trace* trace);

}  // namespace meridian::sim::internal
