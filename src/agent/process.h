// ProcessDriver: runs replicas as supervised child processes on one node.
//
// Each replica gets a directory `<root>/<key>/` holding its stdout.log,
// stderr.log, a small record (`record`: monitor pid, the monitor's start
// time from /proc/<pid>/stat so that a recycled pid is not taken for it, and
// the child's pid = process group) so that a restarted agent can find what it
// had launched, the identity it runs as (`identity`: uid, gid, tenant) and
// its working directory `work/`.
//
// Launch() forks a *monitor* process that detaches (setsid), ignores
// SIGTERM/SIGINT/SIGHUP/SIGPIPE, closes every descriptor of the agent, forks
// the workload child (own process group, default signal dispositions, its
// stdout/stderr redirected to the log files, moved into the replica's
// cgroups when limits are enforced) and waits for it; when the child ends the
// monitor writes its exit status atomically to `<dir>/exit` ("exited N" or
// "signaled N") and exits. Because the monitor is not the agent's child
// once the agent restarts, the agent reads the exit file, not waitpid()
// (it does reap the monitors that are its own children).
// The monitor survives a kill -9 of the agent, so work keeps running and its
// outcome is still recorded.
//
// Workloads are not root. When the driver runs as root (and is not told to
// run work as its own uid), each run gets a uid of its own from `run_uids`
// (never one a known run holds, nor one any live process has) and its
// tenant's gid (TenantGroups), no supplementary groups, PR_SET_NO_NEW_PRIVS
// and umask 007, set in the child after it joined its cgroups and checked
// before exec. The monitor stays root: it opens the logs (root, 0600; the
// workload writes through the descriptors it inherits) and writes `exit`.
// The run directory is root's (0711) with root-only files (0600); `work/`
// (the working directory, HOME, TMPDIR=work/tmp) is the run's (0700); the
// runs root is 0711, so no run can list it or enter another run's work/.
// The uid is held until Forget(). A driver that is not root runs work as its
// own uid, as before, and isolation_status() says so.
//
// The environment is fresh, not the driver's: PATH, HOME, USER, LOGNAME,
// TMPDIR, MERIDIAN_SHARED_DIR (the tenant's shared directory), LANG, LC_ALL,
// TZ and the `pass_env` names when the driver's environment has them, then
// LaunchSpec::env. MERIDIAN_TOKEN and MERIDIAN_TOKEN_FILE are never passed.
//
// Limits: cgroup v1 (cpu.cfs_quota_us / memory.limit_in_bytes under
// /sys/fs/cgroup/{cpu,memory}/<cgroup_parent>/<key>) or cgroup v2
// (cpu.max / memory.max) when the hierarchy is writable; otherwise the
// work runs without limits and limits_status() says why.
//
// Thread-compatible: the agent calls it from its one loop thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/identity.h"

namespace meridian::agent {

struct LaunchSpec {
  // Unique, filesystem-safe name of this run ("j42-r1-a0"); the directory name.
  std::string key;
  // argv[0] is looked up in PATH when it has no '/'. Must not be empty.
  std::vector<std::string> argv;
  // Added to (and overriding) the fresh environment the driver makes (not
  // MERIDIAN_SHARED_DIR, which is the tenant's; MERIDIAN_TOKEN and
  // MERIDIAN_TOKEN_FILE are dropped).
  std::vector<std::pair<std::string, std::string>> env;
  // Working directory of the child; empty = `work/` in the replica directory.
  std::string cwd;
  // Whose run it is: picks its group and its shared directory. Empty: "default".
  std::string tenant;
  int64_t cpu_milli = 0;   // CPU limit in milli-cores; 0 = none
  int64_t memory_mib = 0;  // memory limit; 0 = none
  // NAME, CONTENT: written into the run directory before the process starts,
  // for the caller to read back after a restart (ReadRunFile). Names are
  // plain file names other than the driver's own (record, exit, identity,
  // work, *.log). Root-only (0600).
  std::vector<std::pair<std::string, std::string>> files;
  // The run's own controller credential (a job with `service_account:`):
  // written to `credentials/token` in the run directory, readable only by
  // the run's uid, and named by MERIDIAN_TOKEN_FILE; `controller_ca_pem`
  // beside it as `credentials/ca.crt` (MERIDIAN_CA_FILE). Empty: neither.
  std::string controller_token;
  std::string controller_ca_pem;
};

enum class RunState { kRunning, kExited, kLost };

struct RunStatus {
  RunState state = RunState::kRunning;
  int exit_code = 0;    // kExited: exit status, or 128 + signal when killed by a signal
  int term_signal = 0;  // kExited by a signal: that signal; 0 otherwise
  std::string message;  // kLost: why ("monitor gone without an exit record")
};

struct ProcessDriverOptions {
  std::string root_dir;                        // replica directories live here (created)
  std::string cgroup_parent = "meridian";      // e.g. "meridian/<node-name>"
  bool enforce_limits = true;                  // false: never touch cgroups
  std::string cgroup_root = "/sys/fs/cgroup";  // tests may point elsewhere

  // Workload identity (see above). Uids 65536-99999 are used by neither
  // Debian's account ranges (users to 59999, system 60000-64999), nor
  // systemd (dynamic users 61184-65519, nspawn from 524288), nor the usual
  // /etc/subuid ranges (from 100000). Agents sharing a machine need
  // disjoint `run_uids`; a shared `tenant_gids` range is fine.
  IdRange run_uids = {70000, 70999};
  IdRange tenant_gids = {71000, 71999};
  bool run_as_agent_uid = false;  // true: work runs as the driver's uid even when root
  // The tenant -> gid record; empty: `tenant-gids` beside root_dir.
  std::string tenant_record;
  // Tenants' shared directories live here (`<shared_dir>/<tenant>`); empty:
  // none, and MERIDIAN_SHARED_DIR is not set.
  std::string shared_dir;
  // PATH of workloads.
  std::string run_path = "/usr/local/bin:/usr/bin:/bin";
  // Variables of the driver's environment passed on when set (besides
  // LANG, LC_ALL, TZ); MERIDIAN_TOKEN and MERIDIAN_TOKEN_FILE never are.
  std::vector<std::string> pass_env = {"MERIDIAN_DATA", "MERIDIAN_WAN_RTT_MS", "MERIDIAN_WAN_MBPS"};
};

class ProcessDriver {
 public:
  explicit ProcessDriver(ProcessDriverOptions options);
  ~ProcessDriver();

  // Creates root_dir and probes cgroups. Must be called once before use.
  absl::Status Init();

  // "cgroup v1: cpu, memory limits enforced" / "not enforced: <reason>".
  const std::string& limits_status() const { return limits_status_; }
  bool limits_enforced() const { return limits_enforced_; }
  // "workloads run as uids 70000-70999, tenant gids 71000-71999" or
  // "workloads run as the agent's uid (<why>)".
  const std::string& isolation_status() const { return isolation_status_; }
  bool isolated() const { return isolated_; }

  // Starts a run. AlreadyExists if `key` has a directory already (a key is
  // never launched twice, even across agent restarts); InvalidArgument for an
  // empty argv or a bad key; Internal when fork/exec setup fails (an exec
  // failure of the command itself is reported as exit code 127 with the
  // reason in stderr.log, like a shell); FailedPrecondition, naming the file,
  // when limits are enforced but the run's cgroup cannot be set up. These
  // ResourceExhausted when every uid of the range is held; InvalidArgument
  // for a bad tenant name. These
  // errors come before anything runs and leave no directory, so the key can
  // be tried again (except when the record cannot be written: the workload
  // that had just started is killed and its directory stays).
  absl::Status Launch(const LaunchSpec& spec);

  // Non-blocking state of a run known to this driver (launched or recovered).
  // NotFound for an unknown key.
  absl::StatusOr<RunStatus> Poll(const std::string& key);

  // Sends `sig` to the run's process group (no-op once exited;
  // FailedPrecondition for a lost run, whose processes are unknown).
  absl::Status Signal(const std::string& key, int sig);

  // Scans root_dir after a restart: every replica directory becomes known
  // again, running (monitor alive), exited (exit record) or lost. Returns the keys.
  std::vector<std::string> Recover();

  // Drops a finished run from memory, frees its uid and removes its cgroups;
  // keeps logs (so a later Recover() finds the directory again).
  void Forget(const std::string& key);

  // A file LaunchSpec::files wrote; NotFound when there is none.
  absl::StatusOr<std::string> ReadRunFile(const std::string& key, const std::string& name) const;

  // Paths of the run's logs ("stdout" / "stderr").
  std::string LogPath(const std::string& key, const std::string& stream) const;

 private:
  struct Run;  // one launched or recovered run; defined in process.cc

  std::string RunDir(const std::string& key) const;
  // The run's cgroup directories (one per v1 controller, one for v2); empty when
  // limits are not enforced.
  std::vector<std::string> CgroupDirs(const std::string& key) const;
  absl::Status ProbeCgroupV2();
  absl::Status ProbeCgroupV1();
  // Creates the run's cgroups and writes its limits; returns the cgroup.procs
  // files the child joins.
  absl::StatusOr<std::vector<std::string>> SetUpCgroups(const LaunchSpec& spec);
  RunStatus Evaluate(Run& run);
  bool MonitorAlive(Run& run);
  // Kills what is left of a run whose monitor died without an exit record
  // (someone killed it): otherwise its processes would go on, unsupervised,
  // holding GPUs the agent hands out again. Reaches the processes in the
  // run's cgroups and its process group while the group's leader is provably
  // the workload. True when a signal was sent.
  bool KillOrphanedWorkload(const Run& run);
  void ReapForgotten();
  // A uid of the range that no known run holds and no live process has.
  absl::StatusOr<uid_t> PickUid();

  ProcessDriverOptions options_;
  std::string limits_status_;
  bool limits_enforced_ = false;
  std::string isolation_status_;
  bool isolated_ = false;
  std::unique_ptr<TenantGroups> tenants_;
  uint32_t next_uid_offset_ = 0;           // PickUid() starts here (round robin over run_uids)
  int cgroup_version_ = 0;                 // 1 or 2 when limits are enforced
  std::vector<std::string> cgroup_bases_;  // <...>/<cgroup_parent> per controller
  std::map<std::string, std::unique_ptr<Run>> runs_;
  // Monitors of forgotten runs that are still our children, reaped later so
  // that they do not linger as zombies.
  std::vector<pid_t> forgotten_children_;
};

}  // namespace meridian::agent
