// Diagnostics formatting, file reading and document classification.
#include "spec/spec.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/document.h"

namespace meridian::spec {

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (line > 0) absl::StrAppend(&out, ":", line, ":", column);
  absl::StrAppend(&out, ": ");
  if (!path.empty()) absl::StrAppend(&out, path, ": ");
  absl::StrAppend(&out, message);
  return out;
}

namespace {

constexpr size_t kMaxFileBytes = size_t{256} << 20;

std::string ErrnoText(int err) { return err == 0 ? "read error" : std::strerror(err); }

absl::StatusOr<std::string> ReadGzip(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ErrnoText(errno)));
  }
  std::unique_ptr<gzFile_s, decltype(&gzclose)> closer(f, &gzclose);
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      return absl::DataLossError(
          absl::StrCat("cannot read ", path, ": ", msg != nullptr ? msg : "gzip error"));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes)
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", path, ": larger than 256 MiB uncompressed"));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  if (absl::EndsWith(path, ".gz")) return ReadGzip(path);
  errno = 0;
  std::unique_ptr<FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ErrnoText(errno)));
  }
  std::string out;
  char buf[1 << 16];
  while (true) {
    size_t n = std::fread(buf, 1, sizeof(buf), f.get());
    if (n > 0) out.append(buf, n);
    if (out.size() > kMaxFileBytes)
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", path, ": file larger than 256 MiB"));
    if (n < sizeof(buf)) {
      if (std::ferror(f.get()))
        return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", ErrnoText(errno)));
      break;
    }
  }
  return out;
}

DocumentKind DetectKind(std::string_view text_in, std::string_view filename_in) {
  absl::string_view text = internal::ToAbsl(text_in);
  absl::string_view filename = internal::ToAbsl(filename_in);
  try {
    internal::DiagnosticSink sink(filename);
    std::optional<YAML::Node> root = internal::LoadDocument(text, filename, &sink);
    if (!root || !root->IsMap()) return DocumentKind::kUnknown;
    YAML::Node kind;
    bool fleet_keys = false, workload_keys = false;
    for (const auto& kv : *root) {
      if (!kv.first.IsScalar()) continue;
      const std::string& key = kv.first.Scalar();
      if (key == "kind" && kv.second.IsScalar()) {
        std::string k = absl::AsciiStrToLower(kv.second.Scalar());
        if (k == "fleet") return DocumentKind::kFleet;
        if (k == "workload") return DocumentKind::kWorkload;
        if (k == "job" || k == "training") return DocumentKind::kJob;
        if (k == "endpoint") return DocumentKind::kEndpoint;
        return DocumentKind::kUnknown;
      }
      if (key == "regions" || key == "node_groups") fleet_keys = true;
      if (key == "jobs" || key == "tenants") workload_keys = true;
    }
    if (fleet_keys == workload_keys) return DocumentKind::kUnknown;
    return fleet_keys ? DocumentKind::kFleet : DocumentKind::kWorkload;
  } catch (const std::exception&) {
    return DocumentKind::kUnknown;
  } catch (...) {
    return DocumentKind::kUnknown;
  }
}

namespace {
absl::Status ReadError(const std::string& path, const absl::Status& status,
                       std::vector<Diagnostic>* diags) {
  if (diags != nullptr) {
    std::string message(status.message());
    std::string prefix = absl::StrCat("cannot read ", path, ": ");
    if (absl::StartsWith(message, prefix))
      message = absl::StrCat("cannot read file: ", message.substr(prefix.size()));
    diags->push_back(Diagnostic{path, 0, 0, "", message});
  }
  return status;
}
}  // namespace

absl::StatusOr<Fleet> LoadFleet(const std::string& path, std::vector<Diagnostic>* diags) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return ReadError(path, text.status(), diags);
  return ParseFleet(*text, path, diags);
}

absl::StatusOr<Workload> LoadWorkload(const std::string& path, const Fleet* fleet,
                                      std::vector<Diagnostic>* diags) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return ReadError(path, text.status(), diags);
  return ParseWorkload(*text, path, fleet, diags);
}

}  // namespace meridian::spec
