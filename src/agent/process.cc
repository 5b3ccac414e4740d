#include "agent/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
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

// Writes `path` through a temporary file and rename(), so readers see the old
// content or the whole new one.
absl::Status WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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

// The workload: own process group, default signals, cgroups, cwd, exec.
// Descriptors 0..2 are already /dev/null and the logs (set up by the monitor).
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
  if (::chdir(p.cwd) != 0) SafeFail("cannot change to directory", p.cwd, errno);
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
  int fd = ::open(p.exit_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
        name.ends_with(".log") || name.ends_with(".tmp"))
      return absl::InvalidArgumentError(
          absl::StrCat("run ", spec.key, ": '", name, "' cannot be a file of the run directory"));
  if (spec.cpu_milli < 0 || spec.cpu_milli > kMaxCpuMilli || spec.memory_mib < 0 ||
      spec.memory_mib > kMaxMemoryMib)
    return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": limits out of range (cpu ",
                                                   spec.cpu_milli, "m, memory ", spec.memory_mib,
                                                   " MiB)"));
  return absl::OkStatus();
}

// The agent's environment with `overrides` added or replacing, as "K=V".
std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides, std::string* path) {
  std::vector<std::string> env;
  std::map<std::string, size_t, std::less<>> index;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos || index.contains(kv.substr(0, eq))) continue;
    index.emplace(std::string(kv.substr(0, eq)), env.size());
    env.emplace_back(kv);
  }
  for (const auto& [name, value] : overrides) {
    std::string kv = absl::StrCat(name, "=", value);
    auto [it, added] = index.emplace(name, env.size());
    if (added) {
      env.push_back(std::move(kv));
    } else {
      env[it->second] = std::move(kv);
    }
  }
  auto it = index.find("PATH");
  *path = it != index.end() ? env[it->second].substr(5) : "/usr/local/bin:/usr/bin:/bin";
  return env;
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
  // mkdir is the claim on the key: it succeeds once, across restarts too.
  if (::mkdir(dir.c_str(), 0755) != 0) {
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

  for (const auto& [name, content] : spec.files)
    if (absl::Status st = WriteFileAtomic(absl::StrCat(dir, "/", name), content); !st.ok())
      return undo(st);

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
  std::vector<std::string> env_strings = MergedEnvironment(spec.env, &path);
  std::vector<char*> envp = CStrings(env_strings);
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<std::string> sh_strings = {"/bin/sh", ""};
  sh_strings.insert(sh_strings.end(), spec.argv.begin() + 1, spec.argv.end());
  std::vector<char*> sh_argv = CStrings(sh_strings);
  std::vector<std::string> candidates = ExecCandidates(spec.argv[0], path);
  const std::string cwd = spec.cwd.empty() ? dir : spec.cwd;
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

  const int log_flags = O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC;
  UniqueFd devnull(AboveStdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (devnull.get() < 0)
    return undo(absl::InternalError(absl::StrCat("/dev/null: ", ErrnoText(errno))));
  UniqueFd out(AboveStdio(::open(LogPath(spec.key, "stdout").c_str(), log_flags, 0644)));
  if (out.get() < 0)
    return undo(
        absl::InternalError(absl::StrCat(LogPath(spec.key, "stdout"), ": ", ErrnoText(errno))));
  UniqueFd err(AboveStdio(::open(LogPath(spec.key, "stderr").c_str(), log_flags, 0644)));
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

void ProcessDriver::ReapForgotten() {
  std::erase_if(forgotten_children_,
                [](pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) != 0; });
}

}  // namespace meridian::agent
