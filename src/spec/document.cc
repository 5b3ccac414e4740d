#include "spec/document.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spec/quantities.h"
#include "spec/quote.h"
#include "yaml-cpp/eventhandler.h"

namespace meridian::spec::internal {

// ---------------------------------------------------------------------------
// DiagnosticSink

void DiagnosticSink::Add(const YAML::Mark& mark, std::string path, std::string message) {
  if (mark.line < 0 || mark.column < 0) {
    AddAt(0, 0, std::move(path), std::move(message));
  } else {
    AddAt(mark.line + 1, mark.column + 1, std::move(path), std::move(message));
  }
}

void DiagnosticSink::AddAt(int line, int column, std::string path, std::string message) {
  if (diags_.size() >= kMaxDiagnostics) {
    ++dropped_;
    return;
  }
  diags_.push_back(Diagnostic{file_, line, column, std::move(path), std::move(message)});
}

void DiagnosticSink::AddDocument(std::string message) { AddAt(0, 0, "", std::move(message)); }

absl::Status DiagnosticSink::Finish(std::vector<Diagnostic>* out) {
  if (diags_.empty()) return absl::OkStatus();
  std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  if (dropped_ > 0) {
    diags_.push_back(Diagnostic{file_, 0, 0, "",
                                absl::StrCat("too many problems; ", dropped_, " more not shown")});
    dropped_ = 0;
  }
  absl::Status status = absl::InvalidArgumentError(diags_.front().ToString());
  if (out != nullptr) {
    for (Diagnostic& d : diags_) out->push_back(std::move(d));
  }
  diags_.clear();
  return status;
}

// ---------------------------------------------------------------------------
// Loading

namespace {

// Strict JSON check without building a DOM: tracks depth, records the first
// syntax error (nlohmann reports a 1-based byte offset).
class JsonChecker : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Push(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Pop(); }
  bool start_array(std::size_t) override { return Push(); }
  bool end_array() override { return Pop(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_position = position;
    std::string what = ex.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 7: reason"
    size_t colon = what.find(": ");
    error = colon == std::string::npos ? what : what.substr(colon + 2);
    return false;
  }

  size_t error_position = 0;  // 1-based byte offset; 0 = no error
  std::string error;
  bool too_deep = false;
  size_t too_deep_position = 0;
  size_t consumed_guess = 0;

 private:
  bool Push() {
    if (++depth_ > kMaxNestingDepth) {
      too_deep = true;
      return false;
    }
    return true;
  }
  bool Pop() {
    --depth_;
    return true;
  }
  int depth_ = 0;
};

// Counts documents (and where the second starts) without building nodes.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second_start = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  int documents = 0;
  YAML::Mark second_start;
};

// Line/column (1-based) of byte `offset` (0-based) of `text`.
std::pair<int, int> LineColumn(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  int line = 1, column = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// Flow collections ([ { ) nested deeper than the limit, found by a cheap
// scan before yaml-cpp (which recurses) sees the text. Quotes are ignored:
// a false alarm needs > 64 unmatched brackets inside strings.
std::optional<size_t> TooDeepFlow(absl::string_view text) {
  int depth = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (comment) {
      if (c == '\n') comment = false;
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) {
      comment = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

// Depth and size of the loaded tree, iteratively (aliases share subtrees,
// so a visit budget bounds "billion laughs" documents).
bool CheckTree(const YAML::Node& root, DiagnosticSink* sink) {
  struct Item {
    YAML::Node node;
    int depth;
  };
  std::vector<Item> stack{{root, 1}};
  int64_t visits = 0;
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (++visits > kMaxNodeVisits) {
      sink->AddDocument("document too large (too many nodes after expanding aliases)");
      return false;
    }
    if (item.depth > kMaxNestingDepth) {
      sink->Add(item.node.Mark(), "",
                absl::StrCat("document nested deeper than ", kMaxNestingDepth, " levels"));
      return false;
    }
    if (item.node.IsSequence()) {
      for (const YAML::Node& child : item.node) stack.push_back({child, item.depth + 1});
    } else if (item.node.IsMap()) {
      for (const auto& kv : item.node) {
        stack.push_back({kv.first, item.depth + 1});
        stack.push_back({kv.second, item.depth + 1});
      }
    }
  }
  return true;
}

}  // namespace

bool LooksLikeJson(absl::string_view text, absl::string_view filename) {
  std::string lower = absl::AsciiStrToLower(filename);
  if (absl::EndsWith(lower, ".json") || absl::EndsWith(lower, ".json.gz")) return true;
  absl::string_view t = absl::StripLeadingAsciiWhitespace(text);
  return !t.empty() && (t.front() == '{' || t.front() == '[');
}

std::optional<YAML::Node> LoadDocument(absl::string_view text, absl::string_view filename,
                                       DiagnosticSink* sink) {
  if (text.size() > kMaxDocumentBytes) {
    sink->AddDocument("document larger than 256 MiB");
    return std::nullopt;
  }
  if (LooksLikeJson(text, filename)) {
    JsonChecker checker;
    bool ok = false;
    try {
      ok = nlohmann::json::sax_parse(text, &checker, nlohmann::json::input_format_t::json,
                                     /*strict=*/true);
    } catch (const std::exception& e) {
      checker.error = e.what();
    }
    if (checker.too_deep) {
      sink->AddDocument(absl::StrCat("document nested deeper than ", kMaxNestingDepth, " levels"));
      return std::nullopt;
    }
    if (!ok) {
      auto [line, column] =
          LineColumn(text, checker.error_position > 0 ? checker.error_position - 1 : 0);
      sink->AddAt(line, column, "", absl::StrCat("invalid JSON: ", checker.error));
      return std::nullopt;
    }
  }
  if (std::optional<size_t> at = TooDeepFlow(text)) {
    auto [line, column] = LineColumn(text, *at);
    sink->AddAt(line, column, "",
                absl::StrCat("document nested deeper than ", kMaxNestingDepth, " levels"));
    return std::nullopt;
  }
  // yaml-cpp's LoadAll loops forever on some inputs (a stray ',' outside a
  // flow collection yields endless empty documents), so documents are
  // counted with a bounded parser loop and the first one is loaded alone.
  YAML::Node root;
  try {
    std::stringstream stream{std::string(text)};
    YAML::Parser parser(stream);
    DocumentCounter counter;
    for (int calls = 0; calls < 2 && parser.HandleNextDocument(counter); ++calls) {
    }
    if (counter.documents > 1) {
      sink->Add(counter.second_start, "", "expected one YAML document; a second one starts here");
      return std::nullopt;
    }
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    sink->Add(e.mark, "",
              absl::StrCat("document nested deeper than ", kMaxNestingDepth, " levels"));
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    sink->Add(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
    return std::nullopt;
  } catch (const std::exception& e) {
    sink->AddDocument(absl::StrCat("invalid YAML: ", e.what()));
    return std::nullopt;
  }
  if (root.IsNull()) {
    sink->AddDocument("document is empty");
    return std::nullopt;
  }
  if (!CheckTree(root, sink)) return std::nullopt;
  return root;
}

// ---------------------------------------------------------------------------
// Helpers

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "null";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      return QuoteInput(node.Scalar(), 40);
    }
  }
  return "?";
}

std::string PathKey(absl::string_view key) {
  bool plain = !key.empty() && key.size() <= 64;
  for (char c : key) plain &= c > ' ' && c < 127 && c != '\'' && c != '\\';
  return plain ? std::string(key) : QuoteInput(key, 64);
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

std::string Suggest(absl::string_view name, const std::vector<std::string>& known) {
  if (name.size() > 64) return "";
  std::string best;
  int best_distance = std::numeric_limits<int>::max();
  for (const std::string& k : known) {
    if (k.size() > 64) continue;
    int d = EditDistance(absl::AsciiStrToLower(name), absl::AsciiStrToLower(k));
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  int allowed = std::max<int>(2, static_cast<int>(name.size()) / 3);
  return best_distance <= allowed ? best : "";
}

std::string UnknownName(absl::string_view what, absl::string_view name,
                        const std::vector<std::string>& known) {
  std::string msg = absl::StrCat("unknown ", what, " ", QuoteInput(name, 64));
  std::string suggestion = Suggest(name, known);
  if (!suggestion.empty()) absl::StrAppend(&msg, "; did you mean '", suggestion, "'?");
  if (known.empty()) {
    absl::StrAppend(&msg, "; none are defined");
  } else {
    constexpr size_t kShow = 12;
    std::vector<std::string> first(known.begin(), known.begin() + std::min(known.size(), kShow));
    absl::StrAppend(&msg, "; known: ", absl::StrJoin(first, ", "));
    if (known.size() > kShow) absl::StrAppend(&msg, ", ... (", known.size() - kShow, " more)");
  }
  return msg;
}

// ---------------------------------------------------------------------------
// Value readers

namespace {

// Scalar text of a number-like value; reports a non-scalar or quoted string.
std::optional<std::string> NumericText(DiagnosticSink* s, const YAML::Node& n,
                                       const std::string& path, absl::string_view expected) {
  if (!n.IsScalar()) {
    s->Add(n.Mark(), path, absl::StrCat("expected ", expected, ", got ", Describe(n)));
    return std::nullopt;
  }
  if (n.Tag() == "!") {
    s->Add(n.Mark(), path, absl::StrCat("expected ", expected, ", got the string ", Describe(n)));
    return std::nullopt;
  }
  return n.Scalar();
}

// Scalar text for a quantity, which may also be written as a string ("64Gi").
std::optional<std::string> QuantityText(DiagnosticSink* s, const YAML::Node& n,
                                        const std::string& path, absl::string_view expected) {
  if (!n.IsScalar()) {
    s->Add(n.Mark(), path, absl::StrCat("expected ", expected, ", got ", Describe(n)));
    return std::nullopt;
  }
  return n.Scalar();
}

std::string FormatBound(double v) { return absl::StrCat(v); }

}  // namespace

std::optional<std::string> ReadString(DiagnosticSink* s, const YAML::Node& n,
                                      const std::string& path) {
  if (!n.IsScalar()) {
    s->Add(n.Mark(), path, absl::StrCat("expected a string, got ", Describe(n)));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> ReadName(DiagnosticSink* s, const YAML::Node& n,
                                    const std::string& path) {
  std::optional<std::string> v = ReadString(s, n, path);
  if (!v) return std::nullopt;
  if (v->empty()) {
    s->Add(n.Mark(), path, "name must not be empty");
    return std::nullopt;
  }
  if (v->size() > 253) {
    s->Add(n.Mark(), path, "name longer than 253 characters");
    return std::nullopt;
  }
  for (char c : *v) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      s->Add(n.Mark(), path, "name contains a control character");
      return std::nullopt;
    }
  }
  return v;
}

std::optional<int64_t> ReadInt(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                               int64_t lo, int64_t hi) {
  std::optional<std::string> text = NumericText(s, n, path, "an integer");
  if (!text) return std::nullopt;
  absl::StatusOr<int64_t> v = ParseInteger(*text);
  if (!v.ok()) {
    s->Add(n.Mark(), path, std::string(v.status().message()));
    return std::nullopt;
  }
  if (*v < lo) {
    s->Add(n.Mark(), path,
           lo == 0   ? absl::StrCat("must not be negative, got ", *v)
           : lo == 1 ? absl::StrCat("must be positive, got ", *v)
                     : absl::StrCat("must be at least ", lo, ", got ", *v));
    return std::nullopt;
  }
  if (*v > hi) {
    s->Add(n.Mark(), path, absl::StrCat(*v, " is too large (at most ", hi, ")"));
    return std::nullopt;
  }
  return *v;
}

std::optional<double> ReadNumber(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                 Range range) {
  std::optional<std::string> text = NumericText(s, n, path, "a number");
  if (!text) return std::nullopt;
  absl::StatusOr<double> v = ParseNumber(*text);
  if (!v.ok()) {
    s->Add(n.Mark(), path, std::string(v.status().message()));
    return std::nullopt;
  }
  bool below = range.lo_open ? !(*v > range.lo) : !(*v >= range.lo);
  bool above = range.hi_open ? !(*v < range.hi) : !(*v <= range.hi);
  if (below || above) {
    std::string msg;
    if (range.lo == 0 && range.hi >= 1000 && below) {
      msg = range.lo_open ? "must be positive" : "must not be negative";
    } else if (range.hi >= 1000 && above) {
      msg = absl::StrCat("is too large (at most ", FormatBound(range.hi), ")");
    } else {
      msg = absl::StrCat("must be in ", range.lo_open ? "(" : "[", FormatBound(range.lo), ", ",
                         FormatBound(range.hi), range.hi_open ? ")" : "]");
    }
    s->Add(n.Mark(), path, absl::StrCat(msg, ", got ", *text));
    return std::nullopt;
  }
  return *v;
}

std::optional<bool> ReadBool(DiagnosticSink* s, const YAML::Node& n, const std::string& path) {
  std::optional<std::string> text = NumericText(s, n, path, "true or false");
  if (!text) return std::nullopt;
  std::string t = absl::AsciiStrToLower(*text);
  if (t == "true" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "no" || t == "off") return false;
  s->Add(n.Mark(), path, absl::StrCat("expected true or false, got ", Describe(n)));
  return std::nullopt;
}

namespace {
template <typename T>
std::optional<T> CheckSign(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                           absl::StatusOr<T> v, bool allow_zero) {
  if (!v.ok()) {
    s->Add(n.Mark(), path, std::string(v.status().message()));
    return std::nullopt;
  }
  if (*v < 0 || (*v == 0 && !allow_zero)) {
    s->Add(n.Mark(), path,
           absl::StrCat(allow_zero ? "must not be negative" : "must be positive", ", got ",
                        Describe(n)));
    return std::nullopt;
  }
  return *v;
}
}  // namespace

std::optional<int64_t> ReadCpu(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                               bool allow_zero) {
  std::optional<std::string> text = QuantityText(s, n, path, "a CPU quantity");
  if (!text) return std::nullopt;
  return CheckSign(s, n, path, ParseCpuMilli(*text), allow_zero);
}

std::optional<int64_t> ReadMemory(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                  bool allow_zero) {
  std::optional<std::string> text = QuantityText(s, n, path, "a memory quantity");
  if (!text) return std::nullopt;
  return CheckSign(s, n, path, ParseMemoryMib(*text), allow_zero);
}

std::optional<double> ReadDuration(DiagnosticSink* s, const YAML::Node& n, const std::string& path,
                                   bool allow_zero) {
  std::optional<std::string> text = QuantityText(s, n, path, "a duration");
  if (!text) return std::nullopt;
  return CheckSign(s, n, path, ParseDurationSeconds(*text), allow_zero);
}

bool CheckSequence(DiagnosticSink* s, const YAML::Node& n, const std::string& path) {
  if (n.IsSequence()) return true;
  s->Add(n.Mark(), path, absl::StrCat("expected a sequence, got ", Describe(n)));
  return false;
}

std::optional<std::vector<NameAt>> ReadNameList(DiagnosticSink* s, const YAML::Node& n,
                                                const std::string& path) {
  if (!CheckSequence(s, n, path)) return std::nullopt;
  std::vector<NameAt> out;
  bool ok = true;
  size_t i = 0;
  for (const YAML::Node& item : n) {
    std::string item_path = IndexPath(path, i++);
    std::optional<std::string> name = ReadName(s, item, item_path);
    if (!name) {
      ok = false;
      continue;
    }
    auto dup =
        std::find_if(out.begin(), out.end(), [&](const NameAt& o) { return o.name == *name; });
    if (dup != out.end()) {
      s->Add(item.Mark(), item_path, absl::StrCat("duplicate entry ", QuoteInput(*name, 64)));
      ok = false;
      continue;
    }
    out.push_back(NameAt{*name, item.Mark(), item_path});
  }
  if (!ok) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------
// MapReader

MapReader::MapReader(DiagnosticSink* sink, const YAML::Node& node, std::string path,
                     std::initializer_list<absl::string_view> known)
    : sink_(sink), node_(node), path_(std::move(path)) {
  if (!node.IsMap()) {
    sink_->Add(node.Mark(), path_, absl::StrCat("expected a mapping, got ", Describe(node)));
    return;
  }
  ok_ = true;
  std::vector<std::string> known_names(known.begin(), known.end());
  for (const auto& kv : node) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      sink_->Add(key.Mark(), path_,
                 absl::StrCat("mapping keys must be strings, got ", Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    std::string shown = PathKey(name);
    if (const Entry* first = Find(name)) {
      sink_->Add(key.Mark(), Path(shown),
                 absl::StrCat("duplicate key ", QuoteInput(name, 64), " (first at line ",
                              first->key_node.Mark().line + 1, ")"));
      continue;
    }
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string msg = absl::StrCat("unknown field ", QuoteInput(name, 64));
      std::string suggestion = Suggest(name, known_names);
      if (!suggestion.empty()) {
        absl::StrAppend(&msg, "; did you mean '", suggestion, "'?");
      } else {
        absl::StrAppend(&msg, "; known fields: ", absl::StrJoin(known_names, ", "));
      }
      sink_->Add(key.Mark(), Path(shown), std::move(msg));
      // Remembered anyway: a repeated unknown key is then reported as a duplicate.
    }
    index_.emplace(name, entries_.size());
    entries_.push_back(Entry{name, key, kv.second});
  }
}

const MapReader::Entry* MapReader::Find(absl::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

bool MapReader::Has(absl::string_view key) const {
  const Entry* e = Find(key);
  return e != nullptr && !e->value.IsNull();
}

YAML::Mark MapReader::KeyMark(absl::string_view key) const {
  const Entry* e = Find(key);
  return e != nullptr ? e->key_node.Mark() : node_.Mark();
}

std::optional<YAML::Node> MapReader::Get(absl::string_view key, Need need) {
  if (!ok_) return std::nullopt;
  const Entry* e = Find(key);
  if (e == nullptr) {
    if (need == Need::kRequired)
      sink_->Add(node_.Mark(), Path(key), absl::StrCat("missing required field '", key, "'"));
    return std::nullopt;
  }
  if (e->value.IsNull()) {
    if (need == Need::kRequired)
      sink_->Add(e->key_node.Mark(), Path(key), absl::StrCat("field '", key, "' has no value"));
    return std::nullopt;
  }
  return e->value;
}

void MapReader::Error(absl::string_view key, std::string message) {
  const Entry* e = Find(key);
  YAML::Mark mark = node_.Mark();
  if (e != nullptr) mark = e->value.IsNull() ? e->key_node.Mark() : e->value.Mark();
  sink_->Add(mark, Path(key), std::move(message));
}

std::optional<std::string> MapReader::String(absl::string_view key, Need need) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadString(sink_, *n, Path(key)) : std::nullopt;
}
std::optional<std::string> MapReader::Name(absl::string_view key, Need need) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadName(sink_, *n, Path(key)) : std::nullopt;
}
std::optional<int64_t> MapReader::Int(absl::string_view key, Need need, int64_t lo, int64_t hi) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadInt(sink_, *n, Path(key), lo, hi) : std::nullopt;
}
std::optional<double> MapReader::Number(absl::string_view key, Need need, Range range) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadNumber(sink_, *n, Path(key), range) : std::nullopt;
}
std::optional<bool> MapReader::Bool(absl::string_view key, Need need) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadBool(sink_, *n, Path(key)) : std::nullopt;
}
std::optional<int64_t> MapReader::Cpu(absl::string_view key, Need need, bool allow_zero) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadCpu(sink_, *n, Path(key), allow_zero) : std::nullopt;
}
std::optional<int64_t> MapReader::Memory(absl::string_view key, Need need, bool allow_zero) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadMemory(sink_, *n, Path(key), allow_zero) : std::nullopt;
}
std::optional<double> MapReader::Duration(absl::string_view key, Need need, bool allow_zero) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadDuration(sink_, *n, Path(key), allow_zero) : std::nullopt;
}
std::optional<std::vector<NameAt>> MapReader::NameList(absl::string_view key, Need need) {
  std::optional<YAML::Node> n = Get(key, need);
  return n ? ReadNameList(sink_, *n, Path(key)) : std::nullopt;
}

// ---------------------------------------------------------------------------
// Shared paths, tenants, secrets

std::string SharedPathProblem(absl::string_view p) {
  if (p.empty()) return "must not be empty";
  if (p.size() > kMaxPathBytes)
    return absl::StrCat("longer than ", kMaxPathBytes, " bytes (", p.size(), ")");
  for (char c : p) {
    if (c == '\0') return "contains a NUL byte";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "contains a control character";
  }
  if (p[0] == '/')
    return "must be relative: it names a file in the tenant's shared directory "
           "(<shared>/<tenant>/PATH), not an absolute path";
  if (p[0] == '~') return "must be relative to the tenant's shared directory; '~' is not expanded";
  for (absl::string_view part : absl::StrSplit(p, '/'))
    if (part == "..") return "must not contain '..': it would leave the tenant's shared directory";
  return "";
}

std::optional<std::string> ReadSharedPath(DiagnosticSink* s, const YAML::Node& n,
                                          const std::string& path, std::vector<SharedPath>* out) {
  std::optional<std::string> v = ReadString(s, n, path);
  if (!v) return std::nullopt;
  if (std::string why = SharedPathProblem(*v); !why.empty()) {
    s->Add(n.Mark(), path, absl::StrCat(QuoteInput(*v, 64), ": ", why));
    return std::nullopt;
  }
  if (out != nullptr) {
    const YAML::Mark m = n.Mark();
    out->push_back(
        SharedPath{path, *v, m.line < 0 ? 0 : m.line + 1, m.column < 0 ? 0 : m.column + 1});
  }
  return v;
}

std::optional<std::string> ReadTenant(DiagnosticSink* s, const YAML::Node& n,
                                      const std::string& path) {
  std::optional<std::string> v = ReadName(s, n, path);
  if (!v) return std::nullopt;
  if (*v == "." || *v == ".." || absl::StrContains(*v, '/')) {
    s->Add(n.Mark(), path,
           absl::StrCat("tenant ", QuoteInput(*v, 64),
                        " is not usable as a directory name (no '/', not '.' or '..')"));
    return std::nullopt;
  }
  return v;
}

bool IsSecretRef(const YAML::Node& n) { return n.IsMap() && n.size() == 1 && n["secret"]; }

std::optional<std::string> ReadSecretRef(DiagnosticSink* s, const YAML::Node& n,
                                         const std::string& path) {
  MapReader m(s, n, path, {"secret"});
  if (!m.ok()) return std::nullopt;
  std::optional<std::string> name = m.String("secret", Need::kRequired);
  if (!name) return std::nullopt;
  if (!IsSecretName(*name)) {
    m.Error("secret", absl::StrCat("secret name ", QuoteInput(*name, 64),
                                   " must be 1 to 63 lowercase letters, digits and '-', "
                                   "starting with a letter or digit"));
    return std::nullopt;
  }
  return name;
}

void CheckKind(MapReader* top, absl::string_view expected) {
  std::optional<std::string> kind = top->String("kind", Need::kOptional);
  if (!kind) return;
  std::string k = absl::AsciiStrToLower(*kind);
  if (k == expected) return;
  if (k == "fleet" || k == "workload" || k == "job" || k == "training" || k == "endpoint") {
    top->Error("kind", absl::StrCat("this is a ", k, " document; expected kind '", expected, "'"));
  } else {
    top->Error("kind",
               absl::StrCat("unknown kind ", QuoteInput(*kind, 64), "; expected '", expected, "'"));
  }
}

}  // namespace meridian::spec::internal

namespace meridian::spec {

bool IsSecretName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
    if (!ok) return false;
  }
  return true;
}

}  // namespace meridian::spec
