// ProcessDriver: runs replicas as supervised child processes on one node.
//
// Each replica gets a directory `<root>/<key>/` holding its stdout.log,
// stderr.log and a small record (`record`: monitor pid, the monitor's start
// time from /proc/<pid>/stat so that a recycled pid is not taken for it, and
// the child's pid = process group) so that a restarted agent can find what it
// had launched.
//
// Launch() forks a *monitor* process that detaches (setsid), ignores
// SIGTERM/SIGINT/SIGHUP/SIGPIPE, closes every descriptor of the agent, forks
// the workload child (own process group, default signal dispositions, its
// stdout/stderr redirected to the log files, environment = the agent's
// environment plus LaunchSpec::env, moved into the replica's cgroups when
// limits are enforced) and waits for it; when the child ends the monitor
// writes its exit status atomically to `<dir>/exit` ("exited N" or
// "signaled N") and exits. Because the monitor is not the agent's child
// once the agent restarts, the agent reads the exit file, not waitpid()
// (it does reap the monitors that are its own children).
// The monitor survives a kill -9 of the agent, so work keeps running and its
// outcome is still recorded.
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

namespace meridian::agent {

struct LaunchSpec {
  // Unique, filesystem-safe name of this run ("j42-r1-a0"); the directory name.
  std::string key;
  // argv[0] is looked up in PATH when it has no '/'. Must not be empty.
  std::vector<std::string> argv;
  // Added to (and overriding) the agent's own environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Working directory of the child; empty = the replica directory.
  std::string cwd;
  int64_t cpu_milli = 0;   // CPU limit in milli-cores; 0 = none
  int64_t memory_mib = 0;  // memory limit; 0 = none
  // NAME, CONTENT: written into the run directory before the process starts,
  // for the caller to read back after a restart (ReadRunFile). Names are
  // plain file names other than the driver's own (record, exit, *.log).
  std::vector<std::pair<std::string, std::string>> files;
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

  // Starts a run. AlreadyExists if `key` has a directory already (a key is
  // never launched twice, even across agent restarts); InvalidArgument for an
  // empty argv or a bad key; Internal when fork/exec setup fails (an exec
  // failure of the command itself is reported as exit code 127 with the
  // reason in stderr.log, like a shell); FailedPrecondition, naming the file,
  // when limits are enforced but the run's cgroup cannot be set up. These
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

  // Drops a finished run from memory and removes its cgroups; keeps logs (so
  // a later Recover() finds the directory again).
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

  ProcessDriverOptions options_;
  std::string limits_status_;
  bool limits_enforced_ = false;
  int cgroup_version_ = 0;                 // 1 or 2 when limits are enforced
  std::vector<std::string> cgroup_bases_;  // <...>/<cgroup_parent> per controller
  std::map<std::string, std::unique_ptr<Run>> runs_;
  // Monitors of forgotten runs that are still our children, reaped later so
  // that they do not linger as zombies.
  std::vector<pid_t> forgotten_children_;
};

}  // namespace meridian::agent
