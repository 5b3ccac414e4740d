// CsvTable: a small reader for the comma-separated data sets the importers
// use (header row, no embedded newlines; "double ""quoted"" fields" and
// CRLF line ends are handled). Every error names FILE:LINE. The table owns
// its cells. Not thread-safe; pure otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace meridian::spec::internal {

class CsvTable {
 public:
  // Parses `text` read from `file` (the name is used in messages only).
  // Rows must have as many fields as the header; blank lines are skipped.
  static absl::StatusOr<CsvTable> Parse(absl::string_view text, std::string file);
  // Reads the file (gunzipping *.gz) and parses it.
  static absl::StatusOr<CsvTable> Load(const std::string& path);

  // Index of a header column, or "FILE:1: missing column 'name'".
  absl::StatusOr<size_t> Column(absl::string_view name) const;

  size_t rows() const { return rows_.size(); }
  const std::string& cell(size_t row, size_t col) const { return rows_[row][col]; }
  int line(size_t row) const { return lines_[row]; }
  const std::string& file() const { return file_; }

  // InvalidArgument "FILE:LINE: message" for a row.
  absl::Status RowError(size_t row, absl::string_view message) const;
  // Typed cells; errors name the file, line and column.
  absl::StatusOr<double> Number(size_t row, size_t col) const;
  absl::StatusOr<int64_t> Integer(size_t row, size_t col) const;

 private:
  std::string file_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<int> lines_;
};

}  // namespace meridian::spec::internal
