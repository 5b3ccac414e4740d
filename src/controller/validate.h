// Validation of what clients send the controller, before any handler acts.
//
// ValidateRequest walks a request by protobuf reflection (nested messages,
// repeated fields and maps included) and refuses, with INVALID_ARGUMENT
// naming the field (`loads[2].in_flight: ...`) and quoting the value
// (spec::QuoteInput), anything a handler should never see:
//   - text (every string and bytes field, except the few binary ones such
//     as LogChunk.data) that is not valid UTF-8, holds a NUL, or is longer
//     than its limit: kMaxSpecBytes for the `spec` documents, kMaxTextBytes
//     for everything else (names, file names, streams);
//   - a double or float that is NaN or infinite, or outside the field's
//     range (EndpointLoad.in_flight: 0..kMaxInFlight);
//   - a repeated field (or map) with more than kMaxRepeated entries;
//   - nesting deeper than kMaxDepth.
// The request messages' user-supplied text fields are `bytes` in
// meridian.proto (the C++ type stays std::string and the wire format is the
// same as `string`), so bad UTF-8 reaches this check instead of failing
// deserialization with INTERNAL.
//
// CheckSharedPaths is the file-system half of the spec path rules (the
// lexical half is in the spec parser): no path a spec names may leave
// <shared>/<tenant> through a symlink that exists now.
//
// Pure functions (CheckSharedPaths reads the file system); thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "spec/quote.h"
#include "spec/spec.h"

namespace google::protobuf {
class Message;
}

namespace meridian::controller {

using spec::QuoteInput;

inline constexpr size_t kMaxSpecBytes = size_t{4} << 20;  // as rpc::kMaxRequestBytes
inline constexpr size_t kMaxTextBytes = 4096;
inline constexpr int kMaxRepeated = 10000;
inline constexpr int kMaxDepth = 32;
inline constexpr double kMaxInFlight = 1e9;

// OK, or INVALID_ARGUMENT "FIELD: reason, got VALUE" for the first problem.
absl::Status ValidateRequest(const google::protobuf::Message& request);

// For each path: realpath() of the longest prefix of
// <shared_dir>/<tenant>/<path> that exists must lie in
// <shared_dir>/<tenant> (which must not itself be a symlink). Paths are
// already lexically valid (spec::SharedPath). OK when shared_dir is empty
// (no check) or does not exist. Otherwise INVALID_ARGUMENT
// "FILE:LINE:COL: field: 'path' leads out of the tenant's shared directory
// through a symlink".
absl::Status CheckSharedPaths(std::string_view shared_dir, std::string_view tenant,
                              const std::vector<spec::SharedPath>& paths,
                              std::string_view filename);

}  // namespace meridian::controller
