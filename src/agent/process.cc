#include "agent/process.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/check.h"

namespace meridian::agent {

// One run known to the driver: launched by it, or found by Recover().
struct ProcessDriver::Run {
  std::string dir;
  bool has_record = false;  // false: the launch never finished writing `record`
  pid_t monitor_pid = 0;
  uint64_t monitor_start = 0;  // /proc/<pid>/stat field 22, tells a recycled pid apart
  pid_t child_pid = 0;         // also the workload's process group id
  uint64_t child_start = 0;    // its start time; 0: unknown (it ended at once, or an old record)
  bool our_child = false;      // the monitor is this process's unreaped child
  bool monitor_gone = false;
  std::optional<uid_t> uid;        // the uid it runs as, when isolated: held until Forget()
  std::optional<RunStatus> final;  // set once the run has ended (exited, or lost for good)
};

namespace {

namespace fs = std::filesystem;

// In the monitor, the pipe to the agent sits on this descriptor.
constexpr int kPipeFd = 3;
// The largest limits whose conversion to cgroup units cannot overflow.
constexpr int64_t kMaxCpuMilli = INT64_MAX / 100;
constexpr int64_t kMaxMemoryMib = INT64_MAX >> 20;

std::string ErrnoText(int err) { return strerror(err); }

bool KeyValid(absl::string_view key) {
  if (key.empty() || key.size() > 128 || key == "." || key == "..") return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool HasNul(absl::string_view s) { return s.find('\0') != absl::string_view::npos; }

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Writes `content` to an existing file (a cgroup control file) in one write().
absl::Status WriteControlFile(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat(path, ": ", ErrnoText(errno)));
  ssize_t n = ::write(fd, content.data(), content.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(content.size()))
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": writing '", content, "': ", ErrnoText(n < 0 ? err : EIO)));
  return absl::OkStatus();
}

// Writes `path` (root-only, 0600) through a temporary file and rename(), so
// readers see the old content or the whole new one.
absl::Status WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", ErrnoText(errno)));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    return absl::InternalError(absl::StrCat(path, ": ", ErrnoText(err)));
  }
  return absl::OkStatus();
}

struct ProcStat {
  char state = '?';
  pid_t parent = 0;
  uint64_t start_time = 0;
};

// Parses /proc/<pid>/stat; false when the process does not exist.
bool ReadProcStat(pid_t pid, ProcStat* out) {
  std::string text;
  if (!ReadFile(absl::StrCat("/proc/", pid, "/stat"), &text)) return false;
  // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), fields[1] field 4 (ppid); field 22 (starttime) is fields[19].
  if (fields.size() < 20 || fields[0].size() != 1) return false;
  out->state = fields[0][0];
  return absl::SimpleAtoi(fields[1], &out->parent) &&
         absl::SimpleAtoi(fields[19], &out->start_time);
}

// The `exit` file written by the monitor, or nullopt while there is none.
std::optional<RunStatus> ReadExitRecord(const std::string& dir) {
  std::string text;
  if (!ReadFile(dir + "/exit", &text)) return std::nullopt;
  RunStatus s;
  s.state = RunState::kExited;
  std::vector<absl::string_view> f =
      absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  int value = 0;
  if (f.size() == 2 && absl::SimpleAtoi(f[1], &value) && value >= 0) {
    if (f[0] == "exited") {
      s.exit_code = value;
      return s;
    }
    if (f[0] == "signaled") {
      s.exit_code = 128 + value;
      s.term_signal = value;
      return s;
    }
  }
  s.state = RunState::kLost;
  s.message = absl::StrCat("unreadable exit record in ", dir, ": '", text, "'");
  return s;
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Moves a close-on-exec descriptor above 0..2, so that the monitor's dup2()
// onto stdin/stdout/stderr never overwrites another descriptor it still needs.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int err = errno;
  ::close(fd);
  errno = err;
  return moved;
}

// ---------------------------------------------------------------------------
// The forked processes. The agent is multi-threaded, so after fork() only
// async-signal-safe calls are allowed: no allocation, no locks, no stdio.
// Everything they need is prepared in a ForkPlan before fork().

struct ForkPlan {
  int devnull = -1, out = -1, err = -1, pipe_w = -1;  // all >= 3, close-on-exec
  long max_fd = 0;  // fallback bound when close_range() is unavailable
  const char* cwd = nullptr;
  const char* program = nullptr;  // argv[0] as given, for messages
  std::vector<const char*> cgroup_procs;
  std::vector<const char*> candidates;  // argv[0] resolved against PATH, in order
  char* const* argv = nullptr;
  char** sh_argv = nullptr;  // {"/bin/sh", <candidate>, argv[1..], nullptr} for ENOEXEC
  char* const* envp = nullptr;
  const char* exit_tmp = nullptr;
  const char* exit_path = nullptr;
  // Isolated runs: the identity the workload takes before exec.
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

void SafeWriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void SafeWrite(int fd, const char* s) { SafeWriteAll(fd, s, ::strlen(s)); }

// Formats a non-negative number into buf (>= 21 bytes); returns buf.
const char* SafeFormat(unsigned long v, char* buf) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  int i = 0;
  while (n > 0) buf[i++] = tmp[--n];
  buf[i] = '\0';
  return buf;
}

// strerrordesc_np() is a lookup in glibc's static table (no locale, no
// allocation), unlike strerror(), so it is safe after fork().
const char* SafeErrnoText(int err) {
  const char* text = ::strerrordesc_np(err);
  return text != nullptr ? text : "unknown error";
}

void SafeResetSignals() {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // fails for KILL, STOP
}

[[noreturn]] void SafeFail(const char* what, const char* subject, int err) {
  SafeWrite(2, "meridian: ");
  SafeWrite(2, what);
  SafeWrite(2, " '");
  SafeWrite(2, subject);
  SafeWrite(2, "': ");
  SafeWrite(2, SafeErrnoText(err));
  SafeWrite(2, "\n");
  ::_exit(127);
}

// After an EACCES on `path` as an unprivileged uid: names the first
// directory on the way that this uid cannot search, so that a repository
// under a 0700 home says so instead of a bare "Permission denied".
void SafeExplainAccess(const char* path, uid_t uid) {
  char buf[4096];
  size_t n = ::strlen(path);
  if (path[0] != '/' || n >= sizeof buf) return;
  ::memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    bool searchable = ::access(buf, X_OK) == 0;
    bool last = saved == '\0';
    if (!searchable && !last) {
      char number[24];
      SafeWrite(2, "meridian: directory '");
      SafeWrite(2, buf);
      SafeWrite(2, "' cannot be searched by uid ");
      SafeWrite(2, SafeFormat(uid, number));
      SafeWrite(2,
                ": workloads run unprivileged, so every directory on the way must be "
                "searchable by others (chmod o+x), or run the agent with --run-as-agent-uid\n");
      return;
    }
    buf[i] = saved;
  }
}

// Takes the run's uid and gid, no supplementary groups, and checks that all
// of it took (a kernel or policy that silently keeps root must not run work).
void SafeDropPrivileges(const ForkPlan& p) {
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) SafeFail("cannot drop groups", "setgroups", errno);
  // Raw system calls: this child has one thread, and glibc's wrappers would
  // try to reach the agent's other threads, which did not survive fork().
  if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0)
    SafeFail("cannot take the tenant's group", "setresgid", errno);
  if (::syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0)
    SafeFail("cannot take the run's user", "setresuid", errno);
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::syscall(SYS_getresuid, &ru, &eu, &su) != 0 ||
      ::syscall(SYS_getresgid, &rg, &eg, &sg) != 0 || ru != p.uid || eu != p.uid || su != p.uid ||
      rg != p.gid || eg != p.gid || sg != p.gid || ::syscall(SYS_getgroups, 0, nullptr) != 0)
    SafeFail("identity did not take", "setresuid", EPERM);
  if (::syscall(SYS_setresuid, 0, 0, 0) == 0) SafeFail("could regain root", "setresuid", EPERM);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    SafeFail("cannot set", "PR_SET_NO_NEW_PRIVS", errno);
}

// The workload: own process group, default signals, cgroups, identity, cwd,
// exec. Descriptors 0..2 are already /dev/null and the logs (set up by the
// monitor).
[[noreturn]] void RunWorkload(const ForkPlan& p) {
  ::setpgid(0, 0);
  SafeResetSignals();
  ::close(kPipeFd);
  for (const char* procs : p.cgroup_procs) {
    int fd = ::open(procs, O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && ::write(fd, "0", 1) == 1;
    int err = errno;
    if (fd >= 0) ::close(fd);
    if (!ok) SafeFail("cannot join cgroup", procs, err);
  }
  if (p.drop) {
    SafeDropPrivileges(p);
    // What it creates in its tenant's shared directory the tenant's other
    // runs (other uids, the same group) can write too.
    ::umask(007);
  }
  if (::chdir(p.cwd) != 0) {
    int err = errno;
    if (p.drop && err == EACCES) SafeExplainAccess(p.cwd, p.uid);
    SafeFail("cannot change to directory", p.cwd, err);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Like execvp(): keep looking on "not here" errors, remember EACCES.
  int err = ENOENT;
  bool saw_eacces = false;
  for (const char* candidate : p.candidates) {
    ::execve(candidate, p.argv, p.envp);
    err = errno;
    if (err == ENOEXEC) {  // no #! line: run it as a shell script, as execvp() does
      p.sh_argv[1] = const_cast<char*>(candidate);
      ::execve("/bin/sh", p.sh_argv, p.envp);
      break;
    }
    if (err == EACCES) {
      saw_eacces = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV &&
               err != ETIMEDOUT) {
      break;
    }
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR)) err = EACCES;
  if (p.drop && err == EACCES)
    for (const char* candidate : p.candidates)
      if (candidate[0] == '/') SafeExplainAccess(candidate, p.uid);
  SafeFail("cannot run", p.program, err);
}

// The monitor: detached, deaf to TERM/INT/HUP, starts the workload, reports
// its pid through the pipe, waits for it and records how it ended.
[[noreturn]] void RunMonitor(const ForkPlan& p) {
  ::setsid();
  ::prctl(PR_SET_NAME, "meridian-mon", 0, 0, 0);
  SafeResetSignals();
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  // SIGPIPE too: if the agent dies before reading the pid, the monitor must
  // live on to supervise the workload.
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(sig, &ign, nullptr);
  // 0, 1, 2: /dev/null and the logs (inherited by the workload); 3: the pipe.
  // Nothing else of the agent stays open: a listening socket held by a
  // long-lived monitor would outlive the agent.
  ::dup2(p.devnull, 0);
  ::dup2(p.out, 1);
  ::dup2(p.err, 2);
  ::dup2(p.pipe_w, kPipeFd);
  if (::close_range(kPipeFd + 1, ~0U, 0) != 0)
    for (long fd = kPipeFd + 1; fd < p.max_fd; ++fd) ::close(static_cast<int>(fd));

  pid_t child = ::fork();
  if (child == 0) RunWorkload(p);
  if (child < 0) {
    int32_t report = -errno;
    SafeWrite(2, "meridian: cannot start the workload: fork: ");
    SafeWrite(2, SafeErrnoText(-report));
    SafeWrite(2, "\n");
    SafeWriteAll(kPipeFd, &report, sizeof report);
    ::_exit(1);
  }
  // Also set here, so the group exists as soon as the agent learns the pid.
  ::setpgid(child, child);
  int32_t report = child;
  SafeWriteAll(kPipeFd, &report, sizeof report);
  ::close(kPipeFd);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // WNOWAIT keeps the child a zombie until the exit record is written: while
  // there is no record, its pid (= the process group) cannot be reused.
  siginfo_t info = {};
  while (::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) ::_exit(1);
  }
  bool signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  char number[24];
  SafeFormat(static_cast<unsigned long>(info.si_status), number);
  int fd = ::open(p.exit_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    SafeWrite(fd, signaled ? "signaled " : "exited ");
    SafeWrite(fd, number);
    SafeWrite(fd, "\n");
    ::fsync(fd);
    ::close(fd);
    ::rename(p.exit_tmp, p.exit_path);
  }
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

struct RunRecord {
  pid_t monitor_pid = 0;
  uint64_t monitor_start = 0;
  pid_t child_pid = 0;
  uint64_t child_start = 0;  // 0: unknown
};

// `record` holds "monitor_pid N", "monitor_start N", "child_pid N" and
// "child_start N" lines (records of earlier versions lack the last).
std::string FormatRunRecord(const RunRecord& r) {
  return absl::StrCat("monitor_pid ", r.monitor_pid, "\nmonitor_start ", r.monitor_start,
                      "\nchild_pid ", r.child_pid, "\nchild_start ", r.child_start, "\n");
}

std::optional<RunRecord> ReadRunRecord(const std::string& dir) {
  std::string text;
  if (!ReadFile(dir + "/record", &text)) return std::nullopt;
  RunRecord r;
  bool have_pid = false, have_start = false, have_child = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    if (kv.first == "monitor_pid") have_pid = absl::SimpleAtoi(kv.second, &r.monitor_pid);
    if (kv.first == "monitor_start") have_start = absl::SimpleAtoi(kv.second, &r.monitor_start);
    if (kv.first == "child_pid") have_child = absl::SimpleAtoi(kv.second, &r.child_pid);
    if (kv.first == "child_start" && !absl::SimpleAtoi(kv.second, &r.child_start))
      r.child_start = 0;
  }
  if (!have_pid || !have_start || !have_child || r.monitor_pid <= 0 || r.child_pid <= 0)
    return std::nullopt;
  return r;
}

// `identity` holds "uid N", "gid N" and "tenant NAME" lines: what an isolated
// run runs as, so that a restarted driver does not hand its uid out again.
struct IdentityRecord {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string tenant;
};

std::string FormatIdentityRecord(const IdentityRecord& r) {
  return absl::StrCat("uid ", r.uid, "\ngid ", r.gid, "\ntenant ", r.tenant, "\n");
}

std::optional<IdentityRecord> ReadIdentityRecord(const std::string& dir) {
  std::string text;
  if (!ReadFile(dir + "/identity", &text)) return std::nullopt;
  IdentityRecord r;
  bool have_uid = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    if (kv.first == "uid") have_uid = absl::SimpleAtoi(kv.second, &r.uid);
    if (kv.first == "gid") (void)absl::SimpleAtoi(kv.second, &r.gid);
    if (kv.first == "tenant") r.tenant = std::string(kv.second);
  }
  if (!have_uid || r.uid == 0) return std::nullopt;
  return r;
}

// Real uids of every live process (from /proc/<pid>/status).
std::set<uid_t> LiveUids() {
  std::set<uid_t> uids;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] < '0' || name[0] > '9') continue;
    std::string status;
    if (!ReadFile(e.path().string() + "/status", &status)) continue;
    size_t at = status.find("\nUid:");
    if (at == std::string::npos) continue;
    std::vector<absl::string_view> f = absl::StrSplit(absl::string_view(status).substr(at + 5, 64),
                                                      absl::ByAnyChar("\t \n"), absl::SkipEmpty());
    uid_t uid = 0;
    if (!f.empty() && absl::SimpleAtoi(f[0], &uid)) uids.insert(uid);
  }
  return uids;
}

// The driver's own user name (USER of work run as its uid), or its number.
std::string AgentUserName() {
  char buf[4096];
  struct passwd pw, *found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) == 0 && found != nullptr)
    return found->pw_name;
  return absl::StrCat(::geteuid());
}

bool IsSecretVariable(absl::string_view name) {
  return name == "MERIDIAN_TOKEN" || name == "MERIDIAN_TOKEN_FILE";
}

absl::Status ValidateSpec(const LaunchSpec& spec) {
  if (!KeyValid(spec.key))
    return absl::InvalidArgumentError(absl::StrCat(
        "run key '", spec.key, "': use 1 to 128 of A-Z a-z 0-9 '.' '_' '-' (not '.' or '..')"));
  if (spec.argv.empty() || spec.argv[0].empty())
    return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": empty command"));
  for (const std::string& arg : spec.argv)
    if (HasNul(arg))
      return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": NUL in an argument"));
  for (const auto& [name, value] : spec.env)
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value))
      return absl::InvalidArgumentError(
          absl::StrCat("run ", spec.key, ": bad environment variable name '", name, "'"));
  if (HasNul(spec.cwd))
    return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": NUL in cwd"));
  for (const auto& [name, content] : spec.files)
    if (!KeyValid(name) || name == "record" || name == "exit" || name == "exit.tmp" ||
        name == "identity" || name == "work" || name == "credentials" || name.ends_with(".log") || name.ends_with(".tmp"))
      return absl::InvalidArgumentError(
          absl::StrCat("run ", spec.key, ": '", name, "' cannot be a file of the run directory"));
  if (!spec.tenant.empty() && !TenantNameValid(spec.tenant))
    return absl::InvalidArgumentError(
        absl::StrCat("run ", spec.key, ": tenant '", spec.tenant,
                     "': use 1 to 64 of A-Z a-z 0-9 '.' '_' '-', not starting with '.'"));
  if (spec.cpu_milli < 0 || spec.cpu_milli > kMaxCpuMilli || spec.memory_mib < 0 ||
      spec.memory_mib > kMaxMemoryMib)
    return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": limits out of range (cpu ",
                                                   spec.cpu_milli, "m, memory ", spec.memory_mib,
                                                   " MiB)"));
  return absl::OkStatus();
}

// What a workload starts with (see process.h): a fresh environment, not the
// driver's, then `overrides`; the secrets never. `*path` is the PATH it got.
struct EnvironmentBase {
  std::string path, home, user, tmpdir, shared_dir;
  std::string token_file, ca_file;  // the run's own credential; empty: none
  const std::vector<std::string>* pass_env = nullptr;
};

std::vector<std::string> WorkloadEnvironment(
    const EnvironmentBase& base, const std::vector<std::pair<std::string, std::string>>& overrides,
    std::string* path) {
  std::map<std::string, std::string> env = {{"PATH", base.path},
                                            {"HOME", base.home},
                                            {"USER", base.user},
                                            {"LOGNAME", base.user},
                                            {"TMPDIR", base.tmpdir}};
  std::vector<std::string> passed = {"LANG", "LC_ALL", "TZ"};
  passed.insert(passed.end(), base.pass_env->begin(), base.pass_env->end());
  for (const std::string& name : passed)
    if (const char* value = std::getenv(name.c_str()); value != nullptr) env[name] = value;
  for (const auto& [name, value] : overrides) env[name] = value;
  // The tenant's directory, whatever the job asked for.
  env.erase("MERIDIAN_SHARED_DIR");
  if (!base.shared_dir.empty()) env["MERIDIAN_SHARED_DIR"] = base.shared_dir;
  std::erase_if(env, [](const auto& kv) { return IsSecretVariable(kv.first); });
  if (!base.token_file.empty()) env["MERIDIAN_TOKEN_FILE"] = base.token_file;
  if (!base.ca_file.empty()) env["MERIDIAN_CA_FILE"] = base.ca_file;
  *path = env["PATH"];
  std::vector<std::string> out;
  for (const auto& [name, value] : env) out.push_back(absl::StrCat(name, "=", value));
  return out;
}

// Where execve() should look for `program`, in order (execvp() semantics:
// a name with '/' is used as is; an empty PATH entry is the working directory).
std::vector<std::string> ExecCandidates(const std::string& program, const std::string& path) {
  if (program.find('/') != std::string::npos) return {program};
  std::vector<std::string> out;
  for (absl::string_view dir : absl::StrSplit(path, ':'))
    out.push_back(dir.empty() ? program : absl::StrCat(dir, "/", program));
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ProcessDriver::ProcessDriver(ProcessDriverOptions options) : options_(std::move(options)) {}

// Never stops runs: the monitors keep supervising them for the next driver.
ProcessDriver::~ProcessDriver() = default;

std::string ProcessDriver::RunDir(const std::string& key) const {
  return absl::StrCat(options_.root_dir, "/", key);
}

absl::StatusOr<std::string> ProcessDriver::ReadRunFile(const std::string& key,
                                                       const std::string& name) const {
  if (!KeyValid(key) || !KeyValid(name))
    return absl::InvalidArgumentError(absl::StrCat("no run file '", name, "' of '", key, "'"));
  std::string text;
  if (!ReadFile(absl::StrCat(RunDir(key), "/", name), &text))
    return absl::NotFoundError(absl::StrCat("run ", key, " has no file ", name));
  return text;
}

std::string ProcessDriver::LogPath(const std::string& key, const std::string& stream) const {
  return absl::StrCat(RunDir(key), "/", stream, ".log");
}

absl::Status ProcessDriver::Init() {
  if (options_.root_dir.empty()) return absl::InvalidArgumentError("run directory not set");
  std::error_code ec;
  fs::create_directories(options_.root_dir, ec);
  if (ec || !fs::is_directory(options_.root_dir, ec))
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create run directory ", options_.root_dir, ": ", ec ? ec.message() : "not a dir"));
  ProcStat self;
  if (!ReadProcStat(::getpid(), &self))
    return absl::FailedPreconditionError(
        "cannot read /proc/self/stat: the process driver needs /proc to recognise its monitors");

  isolated_ = ::geteuid() == 0 && !options_.run_as_agent_uid;
  if (isolated_) {
    if (options_.run_uids.first == 0 || options_.run_uids.first > options_.run_uids.last ||
        options_.tenant_gids.first == 0 || options_.tenant_gids.first > options_.tenant_gids.last)
      return absl::InvalidArgumentError(
          "run uid and tenant gid ranges must be non-empty, without 0");
    // Agents sharing a machine (and a range, against advice) start their
    // round robin at different uids, so that two launches at one moment
    // rarely pick the same one before either has a live process.
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : options_.root_dir) h = (h ^ c) * 1099511628211ull;
    next_uid_offset_ = static_cast<uint32_t>(h % options_.run_uids.size());
    // Runs may pass through (to their own work/), not list what is here.
    if (::chmod(options_.root_dir.c_str(), 0711) != 0)
      return absl::FailedPreconditionError(
          absl::StrCat("chmod 0711 ", options_.root_dir, ": ", ErrnoText(errno)));
    isolation_status_ = absl::StrCat("workloads run as uids ", FormatIdRange(options_.run_uids),
                                     ", tenant gids ", FormatIdRange(options_.tenant_gids));
  } else {
    isolation_status_ =
        options_.run_as_agent_uid
            ? std::string("workloads run as the agent's uid (by configuration)")
            : absl::StrCat("workloads run as the agent's uid (the agent is not root: uid ",
                           ::geteuid(), " cannot switch users)");
  }
  std::string record = options_.tenant_record;
  if (record.empty()) {
    std::string root = options_.root_dir;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    record = (fs::path(root).parent_path() / "tenant-gids").string();
  }
  tenants_ = std::make_unique<TenantGroups>(options_.tenant_gids, record, options_.shared_dir);
  if (absl::Status st = tenants_->Init(); !st.ok()) return st;

  limits_enforced_ = false;
  cgroup_version_ = 0;
  cgroup_bases_.clear();
  if (!options_.enforce_limits) {
    limits_status_ = "limits not enforced: disabled by configuration";
    return absl::OkStatus();
  }
  std::vector<absl::string_view> parts = absl::StrSplit(options_.cgroup_parent, '/');
  if (!std::all_of(parts.begin(), parts.end(), KeyValid))
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup parent '", options_.cgroup_parent,
                     "': use a relative path of names made of A-Z a-z 0-9 '.' '_' '-'"));
  absl::Status v2 = ProbeCgroupV2();
  if (v2.ok()) return absl::OkStatus();
  if (!absl::IsNotFound(v2)) {
    limits_status_ = absl::StrCat("limits not enforced: ", v2.message());
    return absl::OkStatus();
  }
  absl::Status v1 = ProbeCgroupV1();
  if (!v1.ok())
    limits_status_ = absl::IsNotFound(v1)
                         ? absl::StrCat("limits not enforced: ", v2.message(), "; ", v1.message())
                         : absl::StrCat("limits not enforced: ", v1.message());
  return absl::OkStatus();
}

// NotFound: no usable v2 hierarchy here; other errors: v2 present but not ours to use.
absl::Status ProcessDriver::ProbeCgroupV2() {
  const std::string& root = options_.cgroup_root;
  std::string controllers;
  if (!ReadFile(root + "/cgroup.controllers", &controllers))
    return absl::NotFoundError(absl::StrCat("no cgroup v2 hierarchy at ", root));
  std::vector<absl::string_view> names =
      absl::StrSplit(controllers, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  auto has = [&](absl::string_view c) {
    return std::find(names.begin(), names.end(), c) != names.end();
  };
  if (!has("cpu") || !has("memory"))
    return absl::NotFoundError(
        absl::StrCat("cgroup v2 at ", root, " lacks the cpu and memory controllers"));
  // Each level down to the parent hands cpu and memory to its children.
  std::string dir = root;
  for (absl::string_view part : absl::StrSplit(options_.cgroup_parent, '/')) {
    if (absl::Status st = WriteControlFile(dir + "/cgroup.subtree_control", "+cpu +memory");
        !st.ok())
      return st;
    absl::StrAppend(&dir, "/", part);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return absl::FailedPreconditionError(absl::StrCat(dir, ": ", ErrnoText(errno)));
  }
  if (absl::Status st = WriteControlFile(dir + "/cgroup.subtree_control", "+cpu +memory"); !st.ok())
    return st;
  cgroup_version_ = 2;
  cgroup_bases_ = {dir};
  limits_enforced_ = true;
  limits_status_ = absl::StrCat("cgroup v2: cpu and memory limits enforced under ", dir);
  return absl::OkStatus();
}

absl::Status ProcessDriver::ProbeCgroupV1() {
  const std::string& root = options_.cgroup_root;
  std::vector<std::string> bases;
  for (const char* controller : {"cpu", "memory"}) {
    std::string hierarchy = absl::StrCat(root, "/", controller);
    std::error_code ec;
    if (!fs::exists(hierarchy + "/cgroup.procs", ec))
      return absl::NotFoundError(absl::StrCat("no cgroup v1 hierarchy at ", hierarchy));
    std::string base = absl::StrCat(hierarchy, "/", options_.cgroup_parent);
    fs::create_directories(base, ec);
    if (ec) return absl::FailedPreconditionError(absl::StrCat(base, ": ", ec.message()));
    bases.push_back(std::move(base));
  }
  cgroup_version_ = 1;
  cgroup_bases_ = std::move(bases);
  limits_enforced_ = true;
  limits_status_ = absl::StrCat("cgroup v1: cpu and memory limits enforced under ", root,
                                "/{cpu,memory}/", options_.cgroup_parent);
  return absl::OkStatus();
}

std::vector<std::string> ProcessDriver::CgroupDirs(const std::string& key) const {
  std::vector<std::string> dirs;
  for (const std::string& base : cgroup_bases_) dirs.push_back(absl::StrCat(base, "/", key));
  return dirs;
}

absl::StatusOr<std::vector<std::string>> ProcessDriver::SetUpCgroups(const LaunchSpec& spec) {
  std::vector<std::string> procs;
  std::vector<std::string> dirs = CgroupDirs(spec.key);
  // The kernel's smallest CFS quota is 1 ms per period.
  int64_t quota_us = std::max<int64_t>(spec.cpu_milli * 100, 1000);
  int64_t memory_bytes = spec.memory_mib << 20;
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string& dir = dirs[i];
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return absl::FailedPreconditionError(absl::StrCat(dir, ": ", ErrnoText(errno)));
    absl::Status st;
    bool cpu_here = cgroup_version_ == 2 || i == 0;  // v1 bases: {cpu, memory}
    bool memory_here = cgroup_version_ == 2 || i == 1;
    if (cpu_here && spec.cpu_milli > 0) {
      if (cgroup_version_ == 2) {
        st.Update(WriteControlFile(dir + "/cpu.max", absl::StrCat(quota_us, " 100000")));
      } else {
        st.Update(WriteControlFile(dir + "/cpu.cfs_period_us", "100000"));
        if (st.ok()) st.Update(WriteControlFile(dir + "/cpu.cfs_quota_us", absl::StrCat(quota_us)));
      }
    }
    if (st.ok() && memory_here && spec.memory_mib > 0) {
      st.Update(
          WriteControlFile(dir + (cgroup_version_ == 2 ? "/memory.max" : "/memory.limit_in_bytes"),
                           absl::StrCat(memory_bytes)));
    }
    if (!st.ok()) return st;
    procs.push_back(dir + "/cgroup.procs");
  }
  return procs;
}

absl::Status ProcessDriver::Launch(const LaunchSpec& spec) {
  if (absl::Status st = ValidateSpec(spec); !st.ok()) return st;
  ReapForgotten();
  const std::string dir = RunDir(spec.key);
  auto already = [&] {
    return absl::AlreadyExistsError(
        absl::StrCat("run ", spec.key, " was launched before (", dir, " exists)"));
  };
  if (runs_.contains(spec.key)) return already();
  const std::string tenant = spec.tenant.empty() ? kDefaultTenant : spec.tenant;
  // Who it runs as, decided before anything is created.
  IdentityRecord identity;
  identity.tenant = tenant;
  if (isolated_) {
    absl::StatusOr<uid_t> uid = PickUid();
    if (!uid.ok()) return uid.status();
    absl::StatusOr<gid_t> gid = tenants_->GidOf(tenant);
    if (!gid.ok()) return gid.status();
    identity.uid = *uid;
    identity.gid = *gid;
  } else {
    identity.uid = ::geteuid();
    identity.gid = ::getegid();
  }
  absl::StatusOr<std::string> shared =
      tenants_->SharedDir(tenant, isolated_ ? std::optional<gid_t>(identity.gid) : std::nullopt);
  if (!shared.ok()) return shared.status();
  // mkdir is the claim on the key: it succeeds once, across restarts too.
  if (::mkdir(dir.c_str(), 0711) != 0) {
    if (errno == EEXIST) return already();
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ErrnoText(errno)));
  }
  // Until the monitor has the workload running, a failure undoes everything:
  // nothing ran, so the key may be tried again.
  auto undo = [&](absl::Status st) {
    for (const std::string& cg : CgroupDirs(spec.key)) ::rmdir(cg.c_str());
    std::error_code ec;
    fs::remove_all(dir, ec);
    return st;
  };
  // Whatever the umask: its uid passes through to work/, and no further.
  if (::chmod(dir.c_str(), 0711) != 0)
    return undo(absl::InternalError(absl::StrCat("chmod 0711 ", dir, ": ", ErrnoText(errno))));

  for (const auto& [name, content] : spec.files)
    if (absl::Status st = WriteFileAtomic(absl::StrCat(dir, "/", name), content); !st.ok())
      return undo(st);
  if (absl::Status st = WriteFileAtomic(dir + "/identity", FormatIdentityRecord(identity));
      !st.ok())
    return undo(st);
  // The run's own directory: its working directory, HOME and TMPDIR.
  const std::string work = dir + "/work", tmp = work + "/tmp";
  for (const std::string& d : {work, tmp}) {
    if (::mkdir(d.c_str(), 0700) != 0 ||
        (isolated_ && ::chown(d.c_str(), identity.uid, identity.gid) != 0))
      return undo(absl::InternalError(absl::StrCat("cannot create ", d, ": ", ErrnoText(errno))));
  }
  // The run's controller credential: its uid alone reads it.
  const std::string creds = dir + "/credentials";
  if (!spec.controller_token.empty()) {
    if (::mkdir(creds.c_str(), 0700) != 0)
      return undo(
          absl::InternalError(absl::StrCat("cannot create ", creds, ": ", ErrnoText(errno))));
    std::vector<std::pair<std::string, std::string>> cred_files = {
        {"token", spec.controller_token}};
    if (!spec.controller_ca_pem.empty()) cred_files.emplace_back("ca.crt", spec.controller_ca_pem);
    for (const auto& [name, content] : cred_files) {
      const std::string f = absl::StrCat(creds, "/", name);
      if (absl::Status st = WriteFileAtomic(f, content); !st.ok()) return undo(st);
      if (isolated_ && ::chown(f.c_str(), identity.uid, identity.gid) != 0)
        return undo(absl::InternalError(absl::StrCat("chown ", f, ": ", ErrnoText(errno))));
    }
    if ((isolated_ && ::chown(creds.c_str(), identity.uid, identity.gid) != 0) ||
        ::chmod(creds.c_str(), 0500) != 0)
      return undo(absl::InternalError(absl::StrCat("chown ", creds, ": ", ErrnoText(errno))));
  }

  std::vector<std::string> cgroup_procs;
  if (limits_enforced_) {
    absl::StatusOr<std::vector<std::string>> procs = SetUpCgroups(spec);
    if (!procs.ok())
      return undo(absl::FailedPreconditionError(
          absl::StrCat("run ", spec.key, ": cannot apply limits: ", procs.status().message())));
    cgroup_procs = *std::move(procs);
  }

  // Everything the forked processes use, prepared now.
  std::string path;
  EnvironmentBase base;
  base.path = options_.run_path;
  base.home = work;
  base.user = isolated_ ? absl::StrCat("meridian-run-", identity.uid) : AgentUserName();
  base.tmpdir = tmp;
  base.shared_dir = *shared;
  base.pass_env = &options_.pass_env;
  if (!spec.controller_token.empty()) {
    base.token_file = creds + "/token";
    if (!spec.controller_ca_pem.empty()) base.ca_file = creds + "/ca.crt";
  }
  std::vector<std::string> env_strings = WorkloadEnvironment(base, spec.env, &path);
  std::vector<char*> envp = CStrings(env_strings);
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<std::string> sh_strings = {"/bin/sh", ""};
  sh_strings.insert(sh_strings.end(), spec.argv.begin() + 1, spec.argv.end());
  std::vector<char*> sh_argv = CStrings(sh_strings);
  std::vector<std::string> candidates = ExecCandidates(spec.argv[0], path);
  const std::string cwd = spec.cwd.empty() ? work : spec.cwd;
  const std::string exit_tmp = dir + "/exit.tmp", exit_path = dir + "/exit";

  ForkPlan plan;
  plan.max_fd = ::sysconf(_SC_OPEN_MAX) > 0 ? ::sysconf(_SC_OPEN_MAX) : 1024;
  plan.cwd = cwd.c_str();
  plan.program = spec.argv[0].c_str();
  for (const std::string& p : cgroup_procs) plan.cgroup_procs.push_back(p.c_str());
  for (const std::string& c : candidates) plan.candidates.push_back(c.c_str());
  plan.argv = argv.data();
  plan.sh_argv = sh_argv.data();
  plan.envp = envp.data();
  plan.exit_tmp = exit_tmp.c_str();
  plan.exit_path = exit_path.c_str();
  plan.drop = isolated_;
  plan.uid = identity.uid;
  plan.gid = identity.gid;

  const int log_flags = O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC;
  UniqueFd devnull(AboveStdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (devnull.get() < 0)
    return undo(absl::InternalError(absl::StrCat("/dev/null: ", ErrnoText(errno))));
  UniqueFd out(AboveStdio(::open(LogPath(spec.key, "stdout").c_str(), log_flags, 0600)));
  if (out.get() < 0)
    return undo(
        absl::InternalError(absl::StrCat(LogPath(spec.key, "stdout"), ": ", ErrnoText(errno))));
  UniqueFd err(AboveStdio(::open(LogPath(spec.key, "stderr").c_str(), log_flags, 0600)));
  if (err.get() < 0)
    return undo(
        absl::InternalError(absl::StrCat(LogPath(spec.key, "stderr"), ": ", ErrnoText(errno))));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return undo(absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno))));
  UniqueFd pipe_r(AboveStdio(pipe_fds[0]));
  UniqueFd pipe_w(AboveStdio(pipe_fds[1]));
  if (pipe_r.get() < 0 || pipe_w.get() < 0)
    return undo(absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno))));
  plan.devnull = devnull.get();
  plan.out = out.get();
  plan.err = err.get();
  plan.pipe_w = pipe_w.get();

  // Signals stay blocked across fork() so that no agent handler runs in the
  // monitor before it has reset them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t monitor = ::fork();
  if (monitor == 0) RunMonitor(plan);
  int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (monitor < 0)
    return undo(
        absl::InternalError(absl::StrCat("run ", spec.key, ": fork: ", ErrnoText(fork_errno))));
  pipe_w.Reset();
  devnull.Reset();
  out.Reset();
  err.Reset();

  // Read to EOF: once the monitor has closed its end, it holds nothing of ours.
  int32_t report = 0;
  size_t got = 0;
  for (;;) {
    char buf[16];
    ssize_t n = ::read(pipe_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t take = std::min(static_cast<size_t>(n), sizeof report - got);
    std::memcpy(reinterpret_cast<char*>(&report) + got, buf, take);
    got += take;
  }
  pipe_r.Reset();
  if (got != sizeof report || report <= 0) {
    while (::waitpid(monitor, nullptr, 0) < 0 && errno == EINTR) {
    }
    std::string why = got == sizeof report
                          ? absl::StrCat("fork: ", ErrnoText(-report))
                          : std::string("the monitor process died before starting it");
    return undo(
        absl::InternalError(absl::StrCat("run ", spec.key, ": cannot start the workload: ", why)));
  }

  auto run = std::make_unique<Run>();
  run->dir = dir;
  run->has_record = true;
  run->monitor_pid = monitor;
  run->child_pid = report;
  run->our_child = true;
  if (isolated_) run->uid = identity.uid;
  ProcStat stat;
  // The monitor is our unreaped child: its /proc entry cannot have gone.
  MERIDIAN_CHECK(ReadProcStat(monitor, &stat), "cannot read /proc/<monitor>/stat");
  run->monitor_start = stat.start_time;
  // The workload's start time, to know it again should its monitor die: read
  // only while it is still the monitor's child (it may have ended already).
  ProcStat child;
  if (ReadProcStat(report, &child) && child.parent == monitor) run->child_start = child.start_time;
  absl::Status recorded = WriteFileAtomic(
      dir + "/record", FormatRunRecord({monitor, run->monitor_start, report, run->child_start}));
  if (!recorded.ok()) {
    // Work that a restarted agent could not find must not run.
    ::kill(-report, SIGKILL);
    forgotten_children_.push_back(monitor);
    return absl::InternalError(
        absl::StrCat("run ", spec.key, ": cannot write its record: ", recorded.message()));
  }
  runs_.emplace(spec.key, std::move(run));
  return absl::OkStatus();
}

bool ProcessDriver::KillOrphanedWorkload(const Run& run) {
  bool killed = false;
  // Where limits are enforced the run has cgroups of its own: whatever is in
  // them is the run's, its leader gone or not.
  if (limits_enforced_) {
    for (const std::string& dir : CgroupDirs(fs::path(run.dir).filename().string())) {
      std::string procs;
      if (!ReadFile(dir + "/cgroup.procs", &procs)) continue;
      for (absl::string_view line : absl::StrSplit(procs, '\n', absl::SkipEmpty())) {
        pid_t pid = 0;
        if (absl::SimpleAtoi(line, &pid) && pid > 1 && ::kill(pid, SIGKILL) == 0) killed = true;
      }
    }
  }
  // The process group, only while its leader is provably the workload: a
  // group whose leader has gone may hold anybody once its id has been reused
  // (a daemon that double-forks leaves exactly such a group), so it is left
  // alone, as is a workload whose start time was not recorded. (A zombie
  // leader still holds the id: what is left in its group is the run's.)
  ProcStat stat;
  if (run.child_pid > 0 && run.child_start != 0 && ReadProcStat(run.child_pid, &stat) &&
      stat.start_time == run.child_start && ::kill(-run.child_pid, SIGKILL) == 0)
    killed = true;
  return killed;
}

bool ProcessDriver::MonitorAlive(Run& run) {
  if (!run.has_record || run.monitor_gone) return false;
  ProcStat stat;
  if (!ReadProcStat(run.monitor_pid, &stat) || stat.start_time != run.monitor_start) {
    run.monitor_gone = true;  // gone, or its pid now names another process
    run.our_child = false;
    return false;
  }
  // It is our monitor (maybe a zombie). Reap it if it is our child; after an
  // agent restart it is not (ECHILD) and its new parent reaps it.
  pid_t waited = ::waitpid(run.monitor_pid, nullptr, WNOHANG);
  if (waited == run.monitor_pid) {
    run.monitor_gone = true;
    run.our_child = false;
    return false;
  }
  if (waited == 0) {
    run.our_child = true;
    return true;
  }
  run.our_child = false;
  if (stat.state == 'Z' || stat.state == 'X') {
    run.monitor_gone = true;
    return false;
  }
  return true;
}

RunStatus ProcessDriver::Evaluate(Run& run) {
  if (run.final) {
    (void)MonitorAlive(run);  // reaps a monitor that exited after writing its record
    return *run.final;
  }
  if (std::optional<RunStatus> ended = ReadExitRecord(run.dir)) {
    run.final = ended;
    (void)MonitorAlive(run);
    return *ended;
  }
  RunStatus s;
  if (!run.has_record) {
    // Not final: the monitor may have started and still write its exit record.
    s.state = RunState::kLost;
    s.message = "launch did not finish (no record): the agent stopped while launching";
    return s;
  }
  if (MonitorAlive(run)) return s;  // kRunning
  // The monitor may have written the record between the first read and now.
  if (std::optional<RunStatus> ended = ReadExitRecord(run.dir)) {
    run.final = ended;
    return *ended;
  }
  s.state = RunState::kLost;
  s.message = absl::StrCat("monitor process ", run.monitor_pid, " gone without an exit record");
  if (KillOrphanedWorkload(run))
    absl::StrAppend(&s.message, "; what was left of its workload (process group ", run.child_pid,
                    ") was sent SIGKILL");
  run.final = s;
  return s;
}

absl::StatusOr<RunStatus> ProcessDriver::Poll(const std::string& key) {
  auto it = runs_.find(key);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("unknown run ", key));
  return Evaluate(*it->second);
}

absl::Status ProcessDriver::Signal(const std::string& key, int sig) {
  auto it = runs_.find(key);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("unknown run ", key));
  if (sig < 0 || sig >= NSIG)
    return absl::InvalidArgumentError(absl::StrCat("run ", key, ": bad signal ", sig));
  Run& run = *it->second;
  RunStatus s = Evaluate(run);
  if (s.state == RunState::kExited) return absl::OkStatus();
  if (s.state == RunState::kLost)
    return absl::FailedPreconditionError(absl::StrCat("run ", key, " is lost: ", s.message));
  // Running: no exit record yet, so the child is alive or an unreaped zombie
  // and its process group id cannot name anyone else.
  if (::kill(-run.child_pid, sig) != 0 && errno != ESRCH)
    return absl::InternalError(absl::StrCat("run ", key, ": kill: ", ErrnoText(errno)));
  return absl::OkStatus();
}

std::vector<std::string> ProcessDriver::Recover() {
  ReapForgotten();
  std::vector<std::string> keys;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.root_dir, ec)) {
    std::string key = entry.path().filename().string();
    std::error_code type_ec;
    if (!KeyValid(key) || !entry.is_directory(type_ec)) continue;
    keys.push_back(key);
    if (runs_.contains(key)) continue;
    auto run = std::make_unique<Run>();
    run->dir = RunDir(key);
    if (std::optional<RunRecord> record = ReadRunRecord(run->dir)) {
      run->has_record = true;
      run->monitor_pid = record->monitor_pid;
      run->monitor_start = record->monitor_start;
      run->child_pid = record->child_pid;
      run->child_start = record->child_start;
    }
    if (std::optional<IdentityRecord> identity = ReadIdentityRecord(run->dir);
        identity && options_.run_uids.Contains(identity->uid))
      run->uid = identity->uid;
    runs_.emplace(key, std::move(run));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

void ProcessDriver::Forget(const std::string& key) {
  ReapForgotten();
  if (auto it = runs_.find(key); it != runs_.end()) {
    Run& run = *it->second;
    bool exited = Evaluate(run).state == RunState::kExited;
    if (MonitorAlive(run) && run.our_child) {
      if (exited) {
        // It has written the exit record: all it has left to do is exit.
        while (::waitpid(run.monitor_pid, nullptr, 0) < 0 && errno == EINTR) {
        }
      } else {
        forgotten_children_.push_back(run.monitor_pid);
      }
    }
    runs_.erase(it);
  }
  // Fails (EBUSY) while processes remain inside; a finished run has none.
  for (const std::string& dir : CgroupDirs(key)) ::rmdir(dir.c_str());
}

absl::StatusOr<uid_t> ProcessDriver::PickUid() {
  std::set<uid_t> held;
  for (const auto& [key, run] : runs_)
    if (run->uid) held.insert(*run->uid);
  // A uid with live processes belongs to a run this driver forgot (a
  // workload that escaped its group) or to another agent's run.
  std::set<uid_t> live = LiveUids();
  const IdRange& r = options_.run_uids;
  for (uint32_t i = 0; i < r.size(); ++i) {
    // Round robin from after the last one handed out: a freed uid is reused late.
    uid_t uid = r.first + (next_uid_offset_ + i) % r.size();
    if (held.contains(uid) || live.contains(uid)) continue;
    next_uid_offset_ = (uid - r.first + 1) % r.size();
    return uid;
  }
  return absl::ResourceExhaustedError(absl::StrCat("every run uid of ", FormatIdRange(r),
                                                   " is held by a run of this node or a live "
                                                   "process; widen --run-uids"));
}

void ProcessDriver::ReapForgotten() {
  std::erase_if(forgotten_children_,
                [](pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) != 0; });
}

}  // namespace meridian::agent
