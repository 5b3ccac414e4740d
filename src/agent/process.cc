#include "agent/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace meridian::agent {

namespace {

bool KeyValid(const std::string& key) {
  if (key.empty() || key.size() > 128 || key == "." || key == "..") return false;
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

std::string ReadSmall(const std::string& path, bool* ok) {
  std::ifstream in(path);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteSmall(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  return ok;
}

// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot; 0 if gone.
uint64_t StartTime(int pid) {
  bool ok = false;
  std::string s = ReadSmall(absl::StrCat("/proc/", pid, "/stat"), &ok);
  if (!ok) return 0;
  size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string f;
  for (int i = 3; i <= 22 && rest >> f; ++i)
    if (i == 22) return std::strtoull(f.c_str(), nullptr, 10);
  return 0;
}

// Async-signal-safe helpers for the forked processes.
void SafeWrite(int fd, const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  while (n > 0) {
    ssize_t w = ::write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// Writes a non-negative integer into buf (at least 24 bytes); returns buf.
char* FormatInt(long long v, char* buf) {
  char tmp[24];
  int n = 0;
  bool neg = v < 0;
  unsigned long long u = neg ? static_cast<unsigned long long>(-v) : static_cast<unsigned long long>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u > 0);
  int i = 0;
  if (neg) buf[i++] = '-';
  while (n > 0) buf[i++] = tmp[--n];
  buf[i] = '\0';
  return buf;
}

}  // namespace

struct ProcessDriver::Run {
  std::string key;
  int monitor_pid = 0;
  int child_pid = 0;
  uint64_t monitor_start = 0;
  bool our_child = false;   // the monitor is our direct child (launched by this process)
  bool reaped = false;
  bool lost_record = false; // directory without a usable record
};

ProcessDriver::ProcessDriver(ProcessDriverOptions options) : options_(std::move(options)) {}

ProcessDriver::~ProcessDriver() {
  for (auto& [key, run] : runs_) delete run;
}

absl::Status ProcessDriver::Init() {
  std::error_code ec;
  if (::mkdir(options_.root_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    // Create parents too.
    std::string path;
    for (const std::string& part : [&] {
           std::vector<std::string> parts;
           std::stringstream ss(options_.root_dir);
           std::string p;
           while (std::getline(ss, p, '/')) parts.push_back(p);
           return parts;
         }()) {
      path += part + "/";
      if (part.empty()) continue;
      ::mkdir(path.c_str(), 0755);
    }
  }
  struct stat st;
  if (::stat(options_.root_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::UnavailableError(
        absl::StrCat("cannot create run directory ", options_.root_dir, ": ", strerror(errno)));
  if (!options_.enforce_limits) {
    limits_status_ = "limits not enforced: disabled by --no-limits";
    return absl::OkStatus();
  }
  const std::string& root = options_.cgroup_root;
  // cgroup v2: a unified hierarchy with cpu and memory controllers.
  bool v2_ok = false;
  std::string v2_controllers = ReadSmall(root + "/cgroup.controllers", &v2_ok);
  if (v2_ok && v2_controllers.find("cpu") != std::string::npos &&
      v2_controllers.find("memory") != std::string::npos) {
    std::string dir = root;
    bool ok = true;
    std::stringstream parts(options_.cgroup_parent);
    std::string p;
    while (ok && std::getline(parts, p, '/')) {
      dir += "/" + p;
      ok = ::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST;
    }
    if (ok) {
      (void)WriteSmall(root + "/cgroup.subtree_control", "+cpu +memory");
      cgroup_version_ = 2;
      limits_enforced_ = true;
      limits_status_ = absl::StrCat("cgroup v2: cpu and memory limits enforced under ", dir);
      return absl::OkStatus();
    }
    limits_status_ = absl::StrCat("limits not enforced: ", dir, ": ", strerror(errno));
    return absl::OkStatus();
  }
  // cgroup v1: separate cpu and memory hierarchies.
  std::string problem;
  for (const char* ctl : {"cpu", "memory"}) {
    std::string dir = absl::StrCat(root, "/", ctl);
    struct stat cs;
    if (::stat(dir.c_str(), &cs) != 0) {
      problem = absl::StrCat(dir, ": ", strerror(errno));
      break;
    }
    std::stringstream parts(options_.cgroup_parent);
    std::string p;
    while (std::getline(parts, p, '/')) {
      dir += "/" + p;
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        problem = absl::StrCat(dir, ": ", strerror(errno));
        break;
      }
    }
    if (!problem.empty()) break;
  }
  if (!problem.empty()) {
    limits_status_ = absl::StrCat("limits not enforced: ", problem);
    return absl::OkStatus();
  }
  cgroup_version_ = 1;
  limits_enforced_ = true;
  limits_status_ = absl::StrCat("cgroup v1: cpu and memory limits enforced under ", root,
                                "/{cpu,memory}/", options_.cgroup_parent);
  return absl::OkStatus();
}

std::string ProcessDriver::LogPath(const std::string& key, const std::string& stream) const {
  return absl::StrCat(options_.root_dir, "/", key, "/", stream, ".log");
}

ProcessDriver::Run* ProcessDriver::Find(const std::string& key) {
  for (auto& [k, r] : runs_)
    if (k == key) return r;
  return nullptr;
}

std::vector<std::string> ProcessDriver::CgroupDirs(const std::string& key) const {
  std::vector<std::string> out;
  if (cgroup_version_ == 2) {
    out.push_back(absl::StrCat(options_.cgroup_root, "/", options_.cgroup_parent, "/", key));
  } else if (cgroup_version_ == 1) {
    for (const char* ctl : {"cpu", "memory"})
      out.push_back(absl::StrCat(options_.cgroup_root, "/", ctl, "/", options_.cgroup_parent, "/", key));
  }
  return out;
}

absl::Status ProcessDriver::Launch(const LaunchSpec& spec) {
  if (!KeyValid(spec.key))
    return absl::InvalidArgumentError(
        absl::StrCat("run key '", spec.key, "': 1-128 letters, digits, '-', '_' or '.'"));
  if (spec.argv.empty() || spec.argv[0].empty())
    return absl::InvalidArgumentError(absl::StrCat("run ", spec.key, ": empty command"));
  std::string dir = absl::StrCat(options_.root_dir, "/", spec.key);
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno == EEXIST)
      return absl::AlreadyExistsError(absl::StrCat("run ", spec.key, " was launched before"));
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", strerror(errno)));
  }
  // Limits: create the run's cgroups and write the limits now (not after fork).
  std::vector<std::string> procs_files;
  if (limits_enforced_ && (spec.cpu_milli > 0 || spec.memory_mib > 0)) {
    for (const std::string& cg : CgroupDirs(spec.key)) {
      if (::mkdir(cg.c_str(), 0755) != 0 && errno != EEXIST)
        return absl::FailedPreconditionError(absl::StrCat("cannot create cgroup ", cg, ": ", strerror(errno)));
      bool ok = true;
      if (cgroup_version_ == 2) {
        if (spec.cpu_milli > 0) ok &= WriteSmall(cg + "/cpu.max", absl::StrCat(spec.cpu_milli * 100, " 100000"));
        if (spec.memory_mib > 0) ok &= WriteSmall(cg + "/memory.max", absl::StrCat(spec.memory_mib << 20));
      } else if (cg.find("/cpu/") != std::string::npos) {
        if (spec.cpu_milli > 0) {
          ok &= WriteSmall(cg + "/cpu.cfs_period_us", "100000");
          ok &= WriteSmall(cg + "/cpu.cfs_quota_us", absl::StrCat(spec.cpu_milli * 100));
        }
      } else if (spec.memory_mib > 0) {
        ok &= WriteSmall(cg + "/memory.limit_in_bytes", absl::StrCat(spec.memory_mib << 20));
      }
      if (!ok)
        return absl::FailedPreconditionError(absl::StrCat("cannot set limits in ", cg, ": ", strerror(errno)));
      procs_files.push_back(cg + "/cgroup.procs");
    }
  }
  // Everything the forked processes need, prepared before fork.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = strchr(*e, '=');
    if (eq == nullptr) continue;
    env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : spec.env) env[k] = v;
  std::vector<std::string> env_s;
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_s = spec.argv;
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  // Resolve the program: PATH candidates in order.
  std::vector<std::string> candidates;
  if (spec.argv[0].find('/') != std::string::npos) {
    candidates.push_back(spec.argv[0]);
  } else {
    std::string path = env.contains("PATH") ? env["PATH"] : "/usr/local/bin:/usr/bin:/bin";
    std::stringstream ss(path);
    std::string d;
    while (std::getline(ss, d, ':')) candidates.push_back((d.empty() ? "." : d) + "/" + spec.argv[0]);
  }
  std::string out_path = dir + "/stdout.log", err_path = dir + "/stderr.log";
  std::string cwd = spec.cwd.empty() ? dir : spec.cwd;
  std::string exit_tmp = dir + "/exit.tmp", exit_path = dir + "/exit";
  std::string exec_error = absl::StrCat("meridian: cannot run '", spec.argv[0], "': ");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));

  pid_t monitor = ::fork();
  if (monitor < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (monitor == 0) {
    // ---- monitor: only async-signal-safe calls from here on.
    ::close(pipefd[0]);
    ::setsid();
    struct sigaction ign = {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGTERM, &ign, nullptr);
    ::sigaction(SIGINT, &ign, nullptr);
    ::sigaction(SIGHUP, &ign, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    pid_t child = ::fork();
    if (child == 0) {
      // ---- workload
      ::setpgid(0, 0);
      struct sigaction dfl = {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGTERM, &dfl, nullptr);
      ::sigaction(SIGINT, &dfl, nullptr);
      ::sigaction(SIGHUP, &dfl, nullptr);
      ::sigaction(SIGPIPE, &dfl, nullptr);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (in >= 0) ::dup2(in, 0);
      if (out >= 0) ::dup2(out, 1);
      if (err >= 0) ::dup2(err, 2);
      for (const std::string& f : procs_files) {
        int fd = ::open(f.c_str(), O_WRONLY);
        if (fd >= 0) {
          SafeWrite(fd, "0\n");
          ::close(fd);
        }
      }
      if (::chdir(cwd.c_str()) != 0) {
        SafeWrite(2, "meridian: cannot enter working directory\n");
        ::_exit(127);
      }
      int last_errno = ENOENT;
      for (const std::string& c : candidates) {
        ::execve(c.c_str(), argv.data(), envp.data());
        if (errno != ENOENT && errno != ENOTDIR) last_errno = errno;
      }
      SafeWrite(2, exec_error.c_str());
      SafeWrite(2, strerror(last_errno));  // glibc strerror reads a static table
      SafeWrite(2, "\n");
      ::_exit(127);
    }
    char buf[24];
    FormatInt(child, buf);
    SafeWrite(pipefd[1], buf);
    ::close(pipefd[1]);
    if (child < 0) ::_exit(1);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    int fd = ::open(exit_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      char num[24];
      if (WIFSIGNALED(status)) {
        SafeWrite(fd, "signaled ");
        SafeWrite(fd, FormatInt(WTERMSIG(status), num));
      } else {
        SafeWrite(fd, "exited ");
        SafeWrite(fd, FormatInt(WEXITSTATUS(status), num));
      }
      SafeWrite(fd, "\n");
      ::fsync(fd);
      ::close(fd);
      ::rename(exit_tmp.c_str(), exit_path.c_str());
    }
    ::_exit(0);
  }
  // ---- agent
  ::close(pipefd[1]);
  std::string pid_text;
  char buf[32];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) pid_text.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int child = std::atoi(pid_text.c_str());
  Run* run = new Run();
  run->key = spec.key;
  run->monitor_pid = monitor;
  run->child_pid = child;
  run->monitor_start = StartTime(monitor);
  run->our_child = true;
  if (child <= 0) run->lost_record = true;
  (void)WriteSmall(dir + "/record",
                   absl::StrCat(monitor, " ", child, " ", run->monitor_start, "\n"));
  runs_.push_back({spec.key, run});
  return absl::OkStatus();
}

absl::StatusOr<RunStatus> ProcessDriver::Poll(const std::string& key) {
  Run* run = Find(key);
  if (run == nullptr) return absl::NotFoundError(absl::StrCat("run ", key, " unknown"));
  std::string dir = absl::StrCat(options_.root_dir, "/", key);
  if (run->our_child && !run->reaped) {
    int status = 0;
    pid_t r = ::waitpid(run->monitor_pid, &status, WNOHANG);
    if (r == run->monitor_pid || (r < 0 && errno == ECHILD)) run->reaped = true;
  }
  RunStatus out;
  bool ok = false;
  std::string exit_text = ReadSmall(dir + "/exit", &ok);
  if (ok && !exit_text.empty()) {
    out.state = RunState::kExited;
    int v = 0;
    if (std::sscanf(exit_text.c_str(), "signaled %d", &v) == 1) {
      out.term_signal = v;
      out.exit_code = 128 + v;
    } else if (std::sscanf(exit_text.c_str(), "exited %d", &v) == 1) {
      out.exit_code = v;
    }
    return out;
  }
  if (run->lost_record) {
    out.state = RunState::kLost;
    out.message = "launch did not complete (no run record)";
    return out;
  }
  bool alive = run->our_child ? !run->reaped
                              : (::kill(run->monitor_pid, 0) == 0 &&
                                 StartTime(run->monitor_pid) == run->monitor_start);
  if (alive) {
    out.state = RunState::kRunning;
    return out;
  }
  // The monitor may have written the exit file between our two checks.
  exit_text = ReadSmall(dir + "/exit", &ok);
  if (ok && !exit_text.empty()) return Poll(key);
  out.state = RunState::kLost;
  out.message = "monitor gone without an exit record";
  return out;
}

absl::Status ProcessDriver::Signal(const std::string& key, int sig) {
  absl::StatusOr<RunStatus> s = Poll(key);
  if (!s.ok()) return s.status();
  if (s->state != RunState::kRunning) return absl::OkStatus();
  Run* run = Find(key);
  if (run->child_pid > 0 && ::kill(-run->child_pid, sig) != 0 && errno != ESRCH)
    return absl::InternalError(absl::StrCat("kill run ", key, ": ", strerror(errno)));
  return absl::OkStatus();
}

std::vector<std::string> ProcessDriver::Recover() {
  std::vector<std::string> keys;
  DIR* d = ::opendir(options_.root_dir.c_str());
  if (d == nullptr) return keys;
  while (dirent* e = ::readdir(d)) {
    std::string key = e->d_name;
    if (!KeyValid(key) || key == "." || key == "..") continue;
    std::string dir = absl::StrCat(options_.root_dir, "/", key);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (Find(key) != nullptr) {
      keys.push_back(key);
      continue;
    }
    Run* run = new Run();
    run->key = key;
    bool ok = false;
    std::string rec = ReadSmall(dir + "/record", &ok);
    unsigned long long start = 0;
    if (!ok || std::sscanf(rec.c_str(), "%d %d %llu", &run->monitor_pid, &run->child_pid, &start) != 3) {
      run->lost_record = true;
    }
    run->monitor_start = start;
    runs_.push_back({key, run});
    keys.push_back(key);
  }
  ::closedir(d);
  std::sort(keys.begin(), keys.end());
  return keys;
}

void ProcessDriver::Forget(const std::string& key) {
  for (const std::string& cg : CgroupDirs(key)) ::rmdir(cg.c_str());
  for (auto it = runs_.begin(); it != runs_.end(); ++it) {
    if (it->first == key) {
      delete it->second;
      runs_.erase(it);
      return;
    }
  }
}

}  // namespace meridian::agent
