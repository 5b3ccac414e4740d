#include "spec/quantities.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace meridian::spec::internal {

namespace {

constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() > kMax) return absl::StrCat("'", text.substr(0, kMax), "...'");
  return absl::StrCat("'", text, "'");
}

bool IsNumberChar(char c) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.' ||
         c == 'e' || c == 'E';
}

}  // namespace

absl::StatusOr<double> ParseNumber(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t.empty()) return absl::InvalidArgumentError("expected a number, got an empty value");
  std::string lower = absl::AsciiStrToLower(t);
  if (lower.find("nan") != std::string::npos || lower.find("inf") != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("expected a finite number, got ", Quote(t)));
  bool has_digit = false;
  for (char c : t) {
    if (!IsNumberChar(c))
      return absl::InvalidArgumentError(absl::StrCat("expected a number, got ", Quote(t)));
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) has_digit = true;
  }
  double v = 0;
  if (!has_digit || !absl::SimpleAtod(t, &v))
    return absl::InvalidArgumentError(absl::StrCat("expected a number, got ", Quote(t)));
  if (!std::isfinite(v))
    return absl::InvalidArgumentError(absl::StrCat("number ", Quote(t), " is out of range"));
  return v;
}

absl::StatusOr<int64_t> ParseInteger(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  bool plain = !t.empty();
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    bool sign = (c == '+' || c == '-') && i == 0;
    if (!sign && !absl::ascii_isdigit(static_cast<unsigned char>(c))) plain = false;
  }
  if (plain) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(t, &v))
      return absl::InvalidArgumentError(absl::StrCat("integer ", Quote(t), " is out of range"));
    return v;
  }
  absl::StatusOr<double> d = ParseNumber(t);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("expected an integer, got ", Quote(t)));
  }
  if (std::fabs(*d) > kMaxExactInteger)
    return absl::InvalidArgumentError(absl::StrCat("integer ", Quote(t), " is out of range"));
  if (std::floor(*d) != *d)
    return absl::InvalidArgumentError(absl::StrCat("expected an integer, got ", Quote(t)));
  return static_cast<int64_t>(*d);
}

absl::StatusOr<int64_t> ParseCpuMilli(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (!t.empty() && t.back() == 'm') {
    absl::StatusOr<int64_t> milli = ParseInteger(t.substr(0, t.size() - 1));
    if (!milli.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("expected CPU as cores (4, 0.5) or milli-cores (500m), got ", Quote(t)));
    if (*milli > kMaxCpuCores * 1000 || *milli < -kMaxCpuCores * 1000)
      return absl::InvalidArgumentError(
          absl::StrCat("cpu ", Quote(t), " is too large (at most ", kMaxCpuCores, " cores)"));
    return *milli;
  }
  absl::StatusOr<double> cores = ParseNumber(t);
  if (!cores.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("expected CPU as cores (4, 0.5) or milli-cores (500m), got ", Quote(t)));
  if (std::fabs(*cores) > kMaxCpuCores)
    return absl::InvalidArgumentError(
        absl::StrCat("cpu ", Quote(t), " is too large (at most ", kMaxCpuCores, " cores)"));
  return std::llround(*cores * 1000.0);
}

absl::StatusOr<int64_t> ParseMemoryMib(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  size_t split = t.size();
  while (split > 0 && absl::ascii_isalpha(static_cast<unsigned char>(t[split - 1]))) --split;
  absl::string_view number = absl::StripAsciiWhitespace(t.substr(0, split));
  absl::string_view suffix = t.substr(split);
  double mult = 0;
  if (suffix.empty() || suffix == "Mi" || suffix == "M" || suffix == "MiB") {
    mult = 1;
  } else if (suffix == "Gi" || suffix == "G" || suffix == "GiB") {
    mult = 1024;
  } else if (suffix == "Ti" || suffix == "T" || suffix == "TiB") {
    mult = 1024.0 * 1024.0;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected memory as MiB (4096) or with a unit Mi, Gi or Ti (64Gi), got ", Quote(t)));
  }
  absl::StatusOr<double> v = ParseNumber(number);
  if (!v.ok())
    return absl::InvalidArgumentError(absl::StrCat(
        "expected memory as MiB (4096) or with a unit Mi, Gi or Ti (64Gi), got ", Quote(t)));
  if (suffix.empty() && std::floor(*v) != *v)
    return absl::InvalidArgumentError(
        absl::StrCat("memory without a unit is whole MiB, got ", Quote(t)));
  double mib = *v * mult;
  if (std::fabs(mib) > static_cast<double>(kMaxMemoryMib))
    return absl::InvalidArgumentError(
        absl::StrCat("memory ", Quote(t), " is too large (at most 2^40 MiB)"));
  return std::llround(mib);
}

absl::StatusOr<double> ParseDurationSeconds(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a duration in seconds (90) or with units s, m, h, d (30m, 1h30m), got ",
        Quote(t)));
  };
  double total = 0;
  if (absl::StatusOr<double> plain = ParseNumber(t); plain.ok()) {
    total = *plain;
  } else {
    if (t.empty()) return bad();
    size_t i = 0;
    while (i < t.size()) {
      size_t start = i;
      while (i < t.size() && (absl::ascii_isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.'))
        ++i;
      if (i == start || i == t.size()) return bad();
      absl::StatusOr<double> v = ParseNumber(t.substr(start, i - start));
      if (!v.ok()) return bad();
      double unit = 0;
      switch (t[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        default:
          return bad();
      }
      ++i;
      total += *v * unit;
      if (total > kMaxDurationSeconds) break;
    }
  }
  if (std::fabs(total) > kMaxDurationSeconds)
    return absl::InvalidArgumentError(
        absl::StrCat("duration ", Quote(t), " is too long (at most 1e9 seconds)"));
  return total;
}

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace meridian::spec::internal
