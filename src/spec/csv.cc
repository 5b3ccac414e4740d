#include "spec/csv.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/quantities.h"
#include "spec/spec.h"

namespace meridian::spec::internal {

namespace {

// Splits one line into fields. False on an unterminated quote.
bool SplitLine(absl::string_view line, std::vector<std::string>* out) {
  out->clear();
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == '"' && field.empty() && !was_quoted) {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      out->push_back(std::move(field));
      field.clear();
      was_quoted = false;
    } else {
      field.push_back(c);
    }
  }
  if (quoted) return false;
  out->push_back(std::move(field));
  return true;
}

}  // namespace

absl::StatusOr<CsvTable> CsvTable::Parse(absl::string_view text, std::string file) {
  CsvTable t;
  t.file_ = std::move(file);
  int line_no = 0;
  size_t pos = 0;
  std::vector<std::string> fields;
  bool have_header = false;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (!SplitLine(line, &fields))
      return absl::InvalidArgumentError(
          absl::StrCat(t.file_, ":", line_no, ": unterminated quoted field"));
    if (!have_header) {
      t.header_ = fields;
      have_header = true;
      continue;
    }
    if (fields.size() != t.header_.size())
      return absl::InvalidArgumentError(absl::StrCat(
          t.file_, ":", line_no, ": expected ", t.header_.size(), " fields, got ", fields.size()));
    t.rows_.push_back(fields);
    t.lines_.push_back(line_no);
  }
  if (!have_header)
    return absl::InvalidArgumentError(absl::StrCat(t.file_, ": empty file (no header row)"));
  return t;
}

absl::StatusOr<CsvTable> CsvTable::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

absl::StatusOr<size_t> CsvTable::Column(absl::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return i;
  return absl::InvalidArgumentError(absl::StrCat(file_, ":1: missing column '", name,
                                                 "' (header: ", absl::StrJoin(header_, ","), ")"));
}

absl::Status CsvTable::RowError(size_t row, absl::string_view message) const {
  return absl::InvalidArgumentError(absl::StrCat(file_, ":", lines_[row], ": ", message));
}

absl::StatusOr<double> CsvTable::Number(size_t row, size_t col) const {
  absl::StatusOr<double> v = ParseNumber(rows_[row][col]);
  if (!v.ok()) return RowError(row, absl::StrCat(header_[col], ": ", v.status().message()));
  return *v;
}

absl::StatusOr<int64_t> CsvTable::Integer(size_t row, size_t col) const {
  absl::StatusOr<int64_t> v = ParseInteger(rows_[row][col]);
  if (!v.ok()) return RowError(row, absl::StrCat(header_[col], ": ", v.status().message()));
  return *v;
}

}  // namespace meridian::spec::internal
