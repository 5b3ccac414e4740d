#include "agent/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace meridian::agent {

namespace {

namespace fs = std::filesystem;

constexpr uint32_t kMaxId = 0x7ffffffe;  // (uid_t)-1 and 2^31-1 mean "no id" to some tools
constexpr uint32_t kNobody = 65534;

std::string ErrnoText(int err) { return strerror(err); }

// FNV-1a: a stable hash, the same on every node and every build.
uint64_t StableHash(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The directory's mode as `ls -l` shows it ("drwx------").
std::string ModeText(mode_t mode) {
  std::string out = S_ISDIR(mode) ? "d" : S_ISLNK(mode) ? "l" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) out += (mode & (0400 >> i)) ? rwx[i] : '-';
  if (mode & S_ISGID) out[6] = (mode & S_IXGRP) ? 's' : 'S';
  return out;
}

// The permission bits that apply to uid/gid (no supplementary groups).
mode_t Applicable(const struct stat& st, uid_t uid, gid_t gid) {
  if (st.st_uid == uid) return (st.st_mode >> 6) & 7;
  if (st.st_gid == gid) return (st.st_mode >> 3) & 7;
  return st.st_mode & 7;
}

}  // namespace

absl::StatusOr<IdRange> ParseIdRange(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '-');
  IdRange r;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &r.first) ||
      !absl::SimpleAtoi(parts[1], &r.last))
    return absl::InvalidArgumentError(
        absl::StrCat("id range '", text, "': write FIRST-LAST, e.g. 70000-70999"));
  if (r.first == 0 || r.first > r.last || r.last > kMaxId)
    return absl::InvalidArgumentError(
        absl::StrCat("id range '", text, "': need 1 <= FIRST <= LAST <= ", kMaxId, " (0 is root)"));
  if (r.Contains(kNobody))
    return absl::InvalidArgumentError(
        absl::StrCat("id range '", text, "' holds 65534 (nobody), which other services use"));
  return r;
}

std::string FormatIdRange(const IdRange& range) {
  return absl::StrCat(range.first, "-", range.last);
}

bool TenantNameValid(absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64 || tenant[0] == '.') return false;
  return std::all_of(tenant.begin(), tenant.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

TenantGroups::TenantGroups(IdRange gids, std::string record_path, std::string shared_dir)
    : gids_(gids), record_path_(std::move(record_path)), shared_dir_(std::move(shared_dir)) {}

absl::Status TenantGroups::Init() {
  gid_of_.clear();
  std::ifstream in(record_path_);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.empty()) continue;
    gid_t gid = 0;
    if (f.size() != 2 || !TenantNameValid(f[0]) || !absl::SimpleAtoi(f[1], &gid))
      return absl::FailedPreconditionError(
          absl::StrCat(record_path_, ":", number, ": expected 'TENANT GID', got '", line, "'"));
    gid_of_[std::string(f[0])] = gid;
  }
  if (shared_dir_.empty()) return absl::OkStatus();
  std::error_code ec;
  fs::create_directories(shared_dir_, ec);
  if (ec || !fs::is_directory(shared_dir_, ec))
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the shared directory ", shared_dir_, ": ", ec ? ec.message() : "not a dir"));
  // Traversable, not listable: a tenant learns no other tenant's name here.
  if (::geteuid() == 0 && ::chmod(shared_dir_.c_str(), 0711) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("chmod 0711 ", shared_dir_, ": ", ErrnoText(errno)));
  return absl::OkStatus();
}

absl::Status TenantGroups::Save() const {
  std::string text;
  for (const auto& [tenant, gid] : gid_of_) absl::StrAppend(&text, tenant, " ", gid, "\n");
  std::string tmp = record_path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", ErrnoText(errno)));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), record_path_.c_str()) != 0)
    return absl::InternalError(absl::StrCat(record_path_, ": ", ErrnoText(ok ? errno : err)));
  return absl::OkStatus();
}

absl::StatusOr<gid_t> TenantGroups::GidOf(const std::string& tenant) {
  if (!TenantNameValid(tenant))
    return absl::InvalidArgumentError(absl::StrCat("tenant '", tenant, "': not a valid name"));
  // Agents sharing the shared directory assign new tenants one at a time.
  int lock = -1;
  if (!shared_dir_.empty()) {
    std::string lock_path = shared_dir_ + "/.tenants.lock";
    lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
      int err = errno;
      if (lock >= 0) ::close(lock);
      return absl::FailedPreconditionError(absl::StrCat(lock_path, ": ", ErrnoText(err)));
    }
  }
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);  // releases the flock
    }
  } unlock{lock};

  auto other_holder = [&](gid_t gid) -> std::string {
    for (const auto& [t, g] : gid_of_)
      if (g == gid && t != tenant) return t;
    return "";
  };
  // The shared directory, where it exists, is what other agents agree on.
  if (!shared_dir_.empty()) {
    std::string dir = absl::StrCat(shared_dir_, "/", tenant);
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
      if (gids_.Contains(st.st_gid)) {
        if (std::string other = other_holder(st.st_gid); !other.empty())
          return absl::FailedPreconditionError(absl::StrCat(dir, " has group ", st.st_gid,
                                                            ", which ", record_path_,
                                                            " gives tenant '", other, "'"));
        auto [it, added] = gid_of_.insert_or_assign(tenant, st.st_gid);
        (void)it;
        if (absl::Status s = Save(); !s.ok()) return s;
        return st.st_gid;
      }
      // Made by someone else (or an agent not running as root): assign a gid below.
    }
  }
  if (auto it = gid_of_.find(tenant); it != gid_of_.end()) {
    if (!gids_.Contains(it->second))
      return absl::FailedPreconditionError(
          absl::StrCat(record_path_, " gives tenant '", tenant, "' gid ", it->second,
                       ", outside the tenant gid range ", FormatIdRange(gids_)));
    return it->second;
  }
  std::set<gid_t> taken;
  for (const auto& [t, g] : gid_of_) taken.insert(g);
  if (!shared_dir_.empty()) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(shared_dir_, ec)) {
      struct stat st;
      if (::stat(e.path().c_str(), &st) == 0 && S_ISDIR(st.st_mode)) taken.insert(st.st_gid);
    }
  }
  uint32_t start = static_cast<uint32_t>(StableHash(tenant) % gids_.size());
  for (uint32_t i = 0; i < gids_.size(); ++i) {
    gid_t gid = gids_.first + (start + i) % gids_.size();
    if (taken.contains(gid)) continue;
    gid_of_[tenant] = gid;
    if (absl::Status s = Save(); !s.ok()) {
      gid_of_.erase(tenant);
      return s;
    }
    return gid;
  }
  return absl::ResourceExhaustedError(absl::StrCat("tenant '", tenant, "': all ", gids_.size(),
                                                   " gids of ", FormatIdRange(gids_),
                                                   " are taken by other tenants"));
}

absl::StatusOr<std::string> TenantGroups::SharedDir(const std::string& tenant,
                                                    std::optional<gid_t> gid) {
  if (shared_dir_.empty()) return std::string();
  if (!TenantNameValid(tenant))
    return absl::InvalidArgumentError(absl::StrCat("tenant '", tenant, "': not a valid name"));
  std::string dir = absl::StrCat(shared_dir_, "/", tenant);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", dir, ": ", ErrnoText(errno)));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  if (!gid) return dir;
  // Runs of the tenant share it through the group; the setgid bit gives what
  // they create there the tenant's group too.
  if ((st.st_uid != 0 || st.st_gid != *gid) && ::chown(dir.c_str(), 0, *gid) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("chown root:", *gid, " ", dir, ": ", ErrnoText(errno)));
  if ((st.st_mode & 07777) != 02770 && ::chmod(dir.c_str(), 02770) != 0)
    return absl::FailedPreconditionError(absl::StrCat("chmod 02770 ", dir, ": ", ErrnoText(errno)));
  return dir;
}

std::string UnreachableReason(const std::string& path, uid_t uid, gid_t gid, int need) {
  if (path.empty() || path[0] != '/') return absl::StrCat("'", path, "' is not an absolute path");
  std::string prefix;
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  auto describe = [](const std::string& p, const struct stat& st) {
    return absl::StrFormat("'%s' (%s, owner %d, group %d)", p, ModeText(st.st_mode),
                           static_cast<int>(st.st_uid), static_cast<int>(st.st_gid));
  };
  struct stat st;
  if (::stat("/", &st) == 0 && !(Applicable(st, uid, gid) & 1))
    return absl::StrCat(describe("/", st), " cannot be searched");
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::StrAppend(&prefix, "/", parts[i]);
    if (::stat(prefix.c_str(), &st) != 0) return absl::StrCat("'", prefix, "': ", ErrnoText(errno));
    mode_t bits = Applicable(st, uid, gid);
    bool last = i + 1 == parts.size();
    if (!last && !(bits & 1)) return absl::StrCat(describe(prefix, st), " cannot be searched");
    if (last) {
      mode_t want = ((need & R_OK) ? 4 : 0) | ((need & W_OK) ? 2 : 0) | ((need & X_OK) ? 1 : 0);
      if ((bits & want) != want)
        return absl::StrCat(describe(prefix, st), " lacks ", (want & 4) ? "r" : "",
                            (want & 2) ? "w" : "", (want & 1) ? "x" : "", " for it");
    }
  }
  return "";
}

}  // namespace meridian::agent
