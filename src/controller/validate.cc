#include "controller/validate.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace meridian::controller {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Fields that carry bytes, not text.
// Binary fields: log bytes, and secret values (IdentityManager checks their
// size, and refuses NUL, itself).
bool IsBinary(const FieldDescriptor& f) {
  return f.full_name() == "meridian.v1.LogChunk.data" ||
         f.full_name() == "meridian.v1.CreateSecretRequest.value";
}

size_t TextLimit(const FieldDescriptor& f) {
  const std::string& n = f.full_name();
  if (n == "meridian.v1.SubmitJobRequest.spec" || n == "meridian.v1.ApplyEndpointRequest.spec" ||
      n == "meridian.v1.Job.spec" || n == "meridian.v1.Endpoint.spec")
    return kMaxSpecBytes;
  if (n == "meridian.v1.RunReport.message" || n == "meridian.v1.Job.message" ||
      n == "meridian.v1.Endpoint.message" || n == "meridian.v1.Replica.message")
    return 64 * 1024;
  return kMaxTextBytes;
}

struct NumberRange {
  double lo, hi;
};
bool RangeOf(const FieldDescriptor& f, NumberRange* r) {
  if (f.full_name() == "meridian.v1.EndpointLoad.in_flight") {
    *r = {0, kMaxInFlight};
    return true;
  }
  return false;
}

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckText(const FieldDescriptor& f, const std::string& field, const std::string& v) {
  if (IsBinary(f)) return absl::OkStatus();
  size_t limit = TextLimit(f);
  if (v.size() > limit)
    return Bad(field, absl::StrCat("longer than ", limit, " bytes, got ", QuoteInput(v, 64)));
  size_t bad = 0;
  if (!spec::IsValidUtf8(v, &bad))
    return Bad(field, absl::StrCat("not valid UTF-8 (byte ", bad, "), got ", QuoteInput(v, 64)));
  if (v.find('\0') != std::string::npos)
    return Bad(field, absl::StrCat("contains a NUL byte, got ", QuoteInput(v, 64)));
  return absl::OkStatus();
}

absl::Status CheckNumber(const FieldDescriptor& f, const std::string& field, double v) {
  if (!std::isfinite(v)) return Bad(field, absl::StrCat("must be a finite number, got ", v));
  NumberRange r;
  if (RangeOf(f, &r) && (v < r.lo || v > r.hi))
    return Bad(field, absl::StrCat("must be in [", r.lo, ", ", r.hi, "], got ", v));
  return absl::OkStatus();
}

absl::Status Walk(const Message& m, const std::string& prefix, int depth);

absl::Status CheckValue(const Message& m, const Reflection& r, const FieldDescriptor& f,
                        const std::string& field, int index, int depth) {
  const bool rep = f.is_repeated();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& v = rep ? r.GetRepeatedStringReference(m, &f, index, &scratch)
                                 : r.GetStringReference(m, &f, &scratch);
      return CheckText(f, field, v);
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return CheckNumber(f, field, rep ? r.GetRepeatedDouble(m, &f, index) : r.GetDouble(m, &f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return CheckNumber(f, field, rep ? r.GetRepeatedFloat(m, &f, index) : r.GetFloat(m, &f));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return Walk(rep ? r.GetRepeatedMessage(m, &f, index) : r.GetMessage(m, &f), field, depth + 1);
    default:
      return absl::OkStatus();  // integers, bools, enums: handlers check their ranges
  }
}

absl::Status Walk(const Message& m, const std::string& prefix, int depth) {
  if (depth > kMaxDepth) return Bad(prefix, absl::StrCat("nested deeper than ", kMaxDepth));
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);  // set fields only; unknown fields are ignored
  for (const FieldDescriptor* f : fields) {
    std::string name = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (!f->is_repeated()) {
      if (absl::Status st = CheckValue(m, *r, *f, name, 0, depth); !st.ok()) return st;
      continue;
    }
    int n = r->FieldSize(m, f);
    if (n > kMaxRepeated)
      return Bad(name, absl::StrCat("at most ", kMaxRepeated, " entries, got ", n));
    for (int i = 0; i < n; ++i) {
      std::string item = absl::StrCat(name, "[", i, "]");
      if (absl::Status st = CheckValue(m, *r, *f, item, i, depth); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

// realpath(), or "" when it fails.
std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) return "";
  return buf;
}

bool Within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

absl::Status ValidateRequest(const Message& request) { return Walk(request, "", 0); }

absl::Status CheckSharedPaths(std::string_view shared_dir, std::string_view tenant,
                              const std::vector<spec::SharedPath>& paths,
                              std::string_view filename) {
  if (shared_dir.empty() || paths.empty()) return absl::OkStatus();
  std::string root = RealPath(std::string(shared_dir));
  if (root.empty()) return absl::OkStatus();  // nothing on disk yet, so no symlink either
  std::string file = filename.empty() ? "spec" : std::string(filename);
  auto refuse = [&](const spec::SharedPath& p) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", p.line, ":", p.column, ": ", p.field, ": ", QuoteInput(p.path, 64),
                     " leads out of the tenant's shared directory through a symlink"));
  };
  const std::string base = absl::StrCat(root, "/", std::string(tenant));
  struct stat st;
  if (::lstat(base.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();  // no tenant directory: nothing to follow
    return absl::InvalidArgumentError(absl::StrCat("the shared directory of tenant ",
                                                   QuoteInput(tenant, 64),
                                                   " cannot be read: ", std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode) || RealPath(base) != base) {
    if (!paths.empty()) return refuse(paths.front());
  }
  for (const spec::SharedPath& p : paths) {
    // The longest prefix that exists (lstat: a dangling symlink exists too).
    std::string at = base;
    for (absl::string_view part : absl::StrSplit(p.path, '/')) {
      if (part.empty() || part == ".") continue;
      std::string next = absl::StrCat(at, "/", part);
      if (::lstat(next.c_str(), &st) != 0) break;
      at = std::move(next);
      if (S_ISLNK(st.st_mode)) {
        // Where it leads must exist and stay inside; a dangling link is refused.
        std::string real = RealPath(at);
        if (real.empty() || !Within(real, base)) return refuse(p);
      }
    }
    std::string real = RealPath(at);
    if (real.empty() || !Within(real, base)) return refuse(p);
  }
  return absl::OkStatus();
}

}  // namespace meridian::controller
