// Who a workload runs as: an unprivileged uid of its own, the group of its
// tenant, and the tenant's shared directory.
//
// The process driver hands each run a uid from a configured range (see
// ProcessDriverOptions); this file holds the parts that are not about
// processes: id ranges, tenant names, the tenant -> gid mapping and the
// tenants' shared directories, and a check that a path is reachable by an
// unprivileged uid (to explain a workload's EACCES before it happens).
//
// A tenant's gid is derived from its name (a hash into the gid range, the
// next free gid on a collision) and recorded in a file of the agent's state
// dir, so it survives restarts. Agents that share a shared directory agree
// through it: `<shared>/<tenant>` is owned by root and the tenant's group
// (mode 02770), and an agent that finds it takes its group as the tenant's
// gid; new tenants are assigned under an flock on `<shared>/.tenants.lock`.
//
// Thread-compatible: the driver calls it from the agent's one loop thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace meridian::agent {

// An inclusive range of uids or gids; never contains 0.
struct IdRange {
  uint32_t first = 0;
  uint32_t last = 0;
  uint32_t size() const { return last - first + 1; }
  bool Contains(uint32_t id) const { return id >= first && id <= last; }
};

// "FIRST-LAST" (1 <= FIRST <= LAST < 2^31 - 1; 65534 'nobody' excluded).
absl::StatusOr<IdRange> ParseIdRange(absl::string_view text);
std::string FormatIdRange(const IdRange& range);

// The tenant of an assignment that names none.
inline constexpr char kDefaultTenant[] = "default";

// 1 to 64 of A-Z a-z 0-9 '.' '_' '-', not starting with '.' (it names a directory).
bool TenantNameValid(absl::string_view tenant);

class TenantGroups {
 public:
  // `record_path`: the tenant -> gid record (created). `shared_dir`: where the
  // tenants' shared directories live; empty: none.
  TenantGroups(IdRange gids, std::string record_path, std::string shared_dir);

  // Reads the record and creates `shared_dir` (root-owned, 0711: it cannot be
  // listed by workloads). Call once before use.
  absl::Status Init();

  // The tenant's gid, assigned and recorded on first use; ResourceExhausted
  // when the range is full, FailedPrecondition when the shared directory
  // contradicts the record.
  absl::StatusOr<gid_t> GidOf(const std::string& tenant);

  // `<shared_dir>/<tenant>`, created or repaired: owner root, group `gid`,
  // mode 02770 when `gid` is given (isolated runs); 0700 of the agent when
  // not. Empty when there is no shared directory.
  absl::StatusOr<std::string> SharedDir(const std::string& tenant, std::optional<gid_t> gid);

  const std::string& shared_dir() const { return shared_dir_; }

 private:
  absl::Status Save() const;

  IdRange gids_;
  std::string record_path_;
  std::string shared_dir_;
  std::map<std::string, gid_t> gid_of_;
};

// Why `uid`/`gid` (no supplementary groups) cannot reach `path`: a directory
// on the way it may not search, or the file itself lacking `need` (R_OK,
// X_OK, W_OK bits, checked against the owner/group/other bits). Empty when
// it can. Symlinks are followed (stat), so a link is judged by its target.
std::string UnreachableReason(const std::string& path, uid_t uid, gid_t gid, int need);

}  // namespace meridian::agent
