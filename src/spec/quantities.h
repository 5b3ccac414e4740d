// Scalar parsers for spec quantities: numbers, CPU, memory and durations.
//
// These work on the raw text of a YAML/JSON scalar, never on yaml-cpp's
// as<T>(), so that overflow, NaN and infinity are reported instead of
// silently wrapped. Each returns InvalidArgument with a short reason (no
// file/position: the caller attaches those). The limits below are the
// "absurd value" bounds of the spec format. Pure functions; thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace meridian::spec::internal {

inline constexpr double kMaxCpuCores = 1e6;
inline constexpr int64_t kMaxMemoryMib = int64_t{1} << 40;
inline constexpr double kMaxDurationSeconds = 1e9;  // ~31 years

// A finite decimal number ("4", "-0.5", "1e3"). Rejects NaN, infinities,
// hex, empty text and numbers that overflow a double.
absl::StatusOr<double> ParseNumber(absl::string_view text);

// An exact integer that fits int64 ("8", "-3"; "1e3" and "8.0" are accepted
// when integral and below 2^53). Overflow is an error, never wraps.
absl::StatusOr<int64_t> ParseInteger(absl::string_view text);

// CPU: cores as a number ("4", "0.5") or milli-cores ("500m").
// Result in milli-cores; |cores| <= kMaxCpuCores. Sign is not checked.
absl::StatusOr<int64_t> ParseCpuMilli(absl::string_view text);

// Memory: MiB as an integer ("4096") or a number with a binary suffix
// Mi/Gi/Ti (M/G/T and MiB/GiB/TiB mean the same). Result in MiB, rounded to
// the nearest MiB; |result| <= kMaxMemoryMib. Sign is not checked.
absl::StatusOr<int64_t> ParseMemoryMib(absl::string_view text);

// Duration: seconds as a number ("90", "1.5"), or one or more
// <number><unit> terms with unit s, m, h or d ("90s", "30m", "1h30m").
// Result in seconds; |result| <= kMaxDurationSeconds. Sign is not checked.
absl::StatusOr<double> ParseDurationSeconds(absl::string_view text);

// Levenshtein distance, for "did you mean" suggestions.
int EditDistance(absl::string_view a, absl::string_view b);

}  // namespace meridian::spec::internal
