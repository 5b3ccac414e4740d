// Spec documents: loading YAML/JSON text into a yaml-cpp node tree and
// reading typed, position-tagged fields from it.
//
// DiagnosticSink collects every problem of one document (file name, 1-based
// line/column, dotted path, reason). LoadDocument guards against malformed
// and pathological input (strict JSON, nesting depth, alias blow-up, several
// documents) and never lets a yaml-cpp exception escape. MapReader checks a
// mapping for unknown and duplicate keys once, then hands out typed fields;
// every read reports its own problems and returns nullopt on failure so that
// callers keep going and collect all problems. Internal to spec/; objects
// are single-threaded, functions are pure.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spec/quote.h"
#include "spec/spec.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/yaml.h"

namespace meridian::spec::internal {

// The public API takes std::string_view; this abseil build has its own
// absl::string_view, so internal code converts once at the boundary.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// spec::QuoteInput (spec/quote.h) for this build's absl::string_view.
inline std::string QuoteInput(absl::string_view s, size_t max = 200) {
  return spec::QuoteInput(std::string_view(s.data(), s.size()), max);
}

inline constexpr int kMaxNestingDepth = 64;
inline constexpr int64_t kMaxNodeVisits = 2'000'000;  // bounds alias expansion
inline constexpr size_t kMaxDocumentBytes = size_t{256} << 20;
inline constexpr size_t kMaxDiagnostics = 1000;  // more are counted, not kept

class DiagnosticSink {
 public:
  explicit DiagnosticSink(absl::string_view file) : file_(file) {}

  // At a yaml-cpp mark (0-based; converted to 1-based here).
  void Add(const YAML::Mark& mark, std::string path, std::string message);
  void AddAt(int line, int column, std::string path, std::string message);
  // No position: whole-document problems.
  void AddDocument(std::string message);

  bool empty() const { return diags_.empty(); }
  const std::string& file() const { return file_; }

  // Sorts by position (a "too many problems" note last) and moves everything
  // to `out` (may be null); returns
  // InvalidArgument(first.ToString()), or OK when there is nothing.
  absl::Status Finish(std::vector<Diagnostic>* out);

 private:
  std::string file_;
  std::vector<Diagnostic> diags_;
  int64_t dropped_ = 0;  // beyond kMaxDiagnostics
};

// True when `filename` ends in .json (or .json.gz) or the text starts with
// '{' or '['.
bool LooksLikeJson(absl::string_view text, absl::string_view filename);

// Parses one document. On failure reports why and returns nullopt. An empty
// document is reported as such.
std::optional<YAML::Node> LoadDocument(absl::string_view text, absl::string_view filename,
                                       DiagnosticSink* sink);

// "a mapping", "a sequence", "null", "'text'".
std::string Describe(const YAML::Node& node);
// A mapping key as it appears in a field path: itself when short and
// printable, else QuoteInput(key, 64).
std::string PathKey(absl::string_view key);
// "a.b" / "b" when a is empty.
std::string JoinPath(absl::string_view parent, absl::string_view key);
inline std::string IndexPath(absl::string_view parent, size_t i) {
  return absl::StrCat(parent, "[", i, "]");
}
// "unknown region 'x'; known: a, b, c" with a "did you mean" when close.
std::string UnknownName(absl::string_view what, absl::string_view name,
                        const std::vector<std::string>& known);
// Closest of `known` to `name`, or "" when nothing is close.
std::string Suggest(absl::string_view name, const std::vector<std::string>& known);

// Lower/upper bounds for a number. Bounds are inclusive unless *_open.
struct Range {
  double lo;
  double hi;
  bool lo_open = false;
  bool hi_open = false;
};
inline constexpr Range kNonNegative{0, 1e9};
inline constexpr Range kPositive{0, 1e9, true};
inline constexpr Range kPrice{0, 1e6};

// Typed value readers. Each reports a problem at the node and returns nullopt.
std::optional<std::string> ReadString(DiagnosticSink* s, const YAML::Node& n,
                                      const std::string& path);
// A non-empty string without control characters.
std::optional<std::string> ReadName(DiagnosticSink* s, const YAML::Node& n,
                                    const std::string& path);
std::optional<int64_t> ReadInt(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                               int64_t lo, int64_t hi);
std::optional<double> ReadNumber(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                 Range range);
std::optional<bool> ReadBool(DiagnosticSink* s, const YAML::Node& n, const std::string& path);
// Milli-cores; > 0, or >= 0 with allow_zero.
std::optional<int64_t> ReadCpu(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                               bool allow_zero);
std::optional<int64_t> ReadMemory(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                  bool allow_zero);
std::optional<double> ReadDuration(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                   bool allow_zero);
// A sequence (reports otherwise).
bool CheckSequence(DiagnosticSink* s, const YAML::Node& n, const std::string& path);
// A sequence of distinct names; positions kept for later reference errors.
struct NameAt {
  std::string name;
  YAML::Mark mark;
  std::string path;
};
std::optional<std::vector<NameAt>> ReadNameList(DiagnosticSink* s, const YAML::Node& n,
                                                const std::string& path);

// Why `p` is not a valid SharedPath (see spec.h), or "" when it is.
std::string SharedPathProblem(absl::string_view p);
// A string that is a valid SharedPath; on success appends it, with `path`
// and the node's position, to `out` (may be null).
std::optional<std::string> ReadSharedPath(DiagnosticSink* s, const YAML::Node& n,
                                          const std::string& path, std::vector<SharedPath>* out);
// A tenant name (ReadName) that is also one directory name: no '/', not '.'
// or '..' (tenants get <shared>/<tenant>).
std::optional<std::string> ReadTenant(DiagnosticSink* s, const YAML::Node& n,
                                      const std::string& path);
// True for a one-key mapping `{secret: ...}`.
bool IsSecretRef(const YAML::Node& n);
// `{secret: NAME}` -> NAME (IsSecretName), reported otherwise.
std::optional<std::string> ReadSecretRef(DiagnosticSink* s, const YAML::Node& n,
                                         const std::string& path);

enum class Need { kOptional, kRequired };

// A mapping checked against its known fields. Unknown keys (with a
// suggestion), duplicate keys and non-string keys are reported at
// construction. A field whose value is null counts as absent when optional.
class MapReader {
 public:
  MapReader(DiagnosticSink* sink, const YAML::Node& node, std::string path,
            std::initializer_list<absl::string_view> known);

  bool ok() const { return ok_; }
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  std::string Path(absl::string_view key) const { return JoinPath(path_, key); }
  bool Has(absl::string_view key) const;
  YAML::Mark KeyMark(absl::string_view key) const;

  // The value node, or nullopt when absent/null (then reported if required).
  std::optional<YAML::Node> Get(absl::string_view key, Need need);

  std::optional<std::string> String(absl::string_view key, Need need);
  std::optional<std::string> Name(absl::string_view key, Need need);
  std::optional<int64_t> Int(absl::string_view key, Need need, int64_t lo, int64_t hi);
  std::optional<double> Number(absl::string_view key, Need need, Range range);
  std::optional<bool> Bool(absl::string_view key, Need need);
  std::optional<int64_t> Cpu(absl::string_view key, Need need, bool allow_zero);
  std::optional<int64_t> Memory(absl::string_view key, Need need, bool allow_zero);
  std::optional<double> Duration(absl::string_view key, Need need, bool allow_zero);
  std::optional<std::vector<NameAt>> NameList(absl::string_view key, Need need);

  // Reports `message` at the field's value (or at the mapping when absent).
  void Error(absl::string_view key, std::string message);

 private:
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
  };
  const Entry* Find(absl::string_view key) const;

  DiagnosticSink* sink_;
  YAML::Node node_;
  std::string path_;
  bool ok_ = false;
  std::vector<Entry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // key -> entries_ index
};

// Reads the top-level `kind:` and reports a mismatch with `expected`.
void CheckKind(MapReader* top, absl::string_view expected);

}  // namespace meridian::spec::internal
