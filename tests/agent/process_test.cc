// ProcessDriver against real processes: small shell commands in a fresh
// directory per test. Waits poll with a 10 s deadline and never assert timings.
#include "agent/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace meridian::agent {
namespace {

namespace fs = std::filesystem;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename Pred>
bool WaitUntil(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Fields of /proc/<pid>/stat after the command name: [0] is field 3 (state).
std::vector<std::string> ProcStatFields(pid_t pid) {
  std::string text = ReadText(absl::StrCat("/proc/", pid, "/stat"));
  size_t close = text.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(text.substr(close + 2), ' ', absl::SkipEmpty());
}

pid_t ParentOf(pid_t pid) {
  std::vector<std::string> f = ProcStatFields(pid);
  int ppid = 0;
  return f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) ? ppid : 0;
}

// "SigIgn:" or "SigBlk:" of /proc/<pid>/status as a mask (bit sig-1).
uint64_t SignalMask(pid_t pid, const std::string& field) {
  for (absl::string_view line :
       absl::StrSplit(ReadText(absl::StrCat("/proc/", pid, "/status")), '\n')) {
    if (!absl::StartsWith(line, field + ":")) continue;
    uint64_t mask = 0;
    std::string hex(absl::StripAsciiWhitespace(line.substr(field.size() + 1)));
    return absl::SimpleHexAtoi(hex, &mask) ? mask : ~uint64_t{0};
  }
  return ~uint64_t{0};
}

LaunchSpec Spec(std::string key, std::vector<std::string> argv, int64_t cpu_milli = 0,
                int64_t memory_mib = 0) {
  LaunchSpec spec;
  spec.key = std::move(key);
  spec.argv = std::move(argv);
  spec.cpu_milli = cpu_milli;
  spec.memory_mib = memory_mib;
  return spec;
}

bool Has(uint64_t mask, int sig) { return (mask >> (sig - 1)) & 1; }

std::set<int> OpenFds(pid_t pid) {
  std::set<int> fds;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec)) {
    int fd = 0;
    if (absl::SimpleAtoi(e.path().filename().string(), &fd)) fds.insert(fd);
  }
  return fds;
}

class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = absl::StrCat(::testing::TempDir(), "/process_test_", ::getpid(), "_", info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  void TearDown() override {
    if (driver_ != nullptr) {
      for (const std::string& key : driver_->Recover()) {
        absl::StatusOr<RunStatus> s = driver_->Poll(key);
        if (s.ok() && s->state == RunState::kRunning) {
          (void)driver_->Signal(key, SIGKILL);
          WaitEnded(key);
        }
        driver_->Forget(key);
      }
      driver_.reset();
    }
    for (pid_t group : stray_groups_) ::kill(-group, SIGKILL);
    // Helpers exit once the monitors they adopted are gone.
    for (pid_t reaper : reapers_) {
      if (!WaitUntil([&] { return ::waitpid(reaper, nullptr, WNOHANG) != 0; })) {
        ADD_FAILURE() << "reaper " << reaper << " did not finish";
        ::kill(reaper, SIGKILL);
        ::waitpid(reaper, nullptr, 0);
      }
    }
    if (subreaper_) ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    for (const std::string& cgroup : cgroups_to_remove_) ::rmdir(cgroup.c_str());
    fs::remove_all(dir_);
  }

  ProcessDriverOptions Options() const {
    ProcessDriverOptions o;
    o.root_dir = dir_ + "/runs";
    o.enforce_limits = false;
    return o;
  }

  // Replaces the fixture's driver (the old one is dropped without stopping
  // anything, as an agent restart would).
  ProcessDriver& StartDriver(ProcessDriverOptions options) {
    driver_ = std::make_unique<ProcessDriver>(std::move(options));
    absl::Status st = driver_->Init();
    EXPECT_TRUE(st.ok()) << st;
    return *driver_;
  }
  ProcessDriver& StartDriver() { return StartDriver(Options()); }

  absl::Status Launch(const std::string& key, std::vector<std::string> argv) {
    return driver_->Launch(Spec(key, std::move(argv)));
  }

  // Polls until the run is no longer running; a failure after 10 s.
  RunStatus WaitEnded(const std::string& key, ProcessDriver* driver = nullptr) {
    if (driver == nullptr) driver = driver_.get();
    RunStatus last;
    bool ended = WaitUntil([&] {
      absl::StatusOr<RunStatus> s = driver->Poll(key);
      if (!s.ok()) {
        ADD_FAILURE() << s.status();
        return true;
      }
      last = *s;
      return s->state != RunState::kRunning;
    });
    if (!ended) ADD_FAILURE() << "run " << key << " still running after 10 s";
    return last;
  }

  std::string Log(const std::string& key, const std::string& stream) const {
    return ReadText(driver_->LogPath(key, stream));
  }

  // Waits for the first line a workload prints (its pid, or "ready").
  std::string WaitFirstLine(const std::string& key) {
    std::string line;
    EXPECT_TRUE(WaitUntil([&] {
      std::string out = Log(key, "stdout");
      size_t nl = out.find('\n');
      if (nl == std::string::npos) return false;
      line = out.substr(0, nl);
      return true;
    })) << "no output from "
        << key;
    return line;
  }

  // Options of a driver that enforces limits, in cgroups of this test's own.
  ProcessDriverOptions LimitsOptions() const {
    ProcessDriverOptions o = Options();
    o.enforce_limits = true;
    o.cgroup_parent = absl::StrCat("meridian-test-", ::getpid());
    return o;
  }

  // The parent cgroups of a started driver's runs (one per v1 controller,
  // one for v2), removed after the test, once the runs' own are gone.
  std::vector<std::string> CgroupBases(const ProcessDriverOptions& o) {
    std::vector<std::string> bases;
    if (absl::StartsWith(driver_->limits_status(), "cgroup v1")) {
      bases = {o.cgroup_root + "/cpu/" + o.cgroup_parent,
               o.cgroup_root + "/memory/" + o.cgroup_parent};
    } else {
      bases = {o.cgroup_root + "/" + o.cgroup_parent};
    }
    cgroups_to_remove_ = bases;
    return bases;
  }

  // Launches `key`, a shell that prints its pid and sleeps, with this
  // process made a child subreaper so that the workload comes here to be
  // reaped once its monitor is gone (PID 1 on this VM leaves zombies for a
  // while). Returns the workload's pid (0 on failure).
  pid_t LaunchSleeperToAdopt(const std::string& key) {
    EXPECT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    subreaper_ = true;
    StartDriver();
    EXPECT_TRUE(Launch(key, {"sh", "-c", "echo $$; exec sleep 60"}).ok());
    int child = 0;
    if (!absl::SimpleAtoi(WaitFirstLine(key), &child) || child <= 1) return 0;
    stray_groups_.push_back(child);
    return child;
  }

  // SIGKILLs the monitor of `child` (its parent); false when it has none.
  bool KillMonitorOf(pid_t child) {
    pid_t monitor = ParentOf(child);
    return monitor > 1 && ::kill(monitor, SIGKILL) == 0;
  }

  std::string dir_;
  std::unique_ptr<ProcessDriver> driver_;
  std::vector<pid_t> stray_groups_;  // process groups to SIGKILL
  std::vector<pid_t> reapers_;       // helper processes to wait for
  bool subreaper_ = false;           // this process was made a child subreaper
  std::vector<std::string> cgroups_to_remove_;
};

TEST_F(ProcessDriverTest, ReportsExitCodes) {
  StartDriver();
  ASSERT_TRUE(Launch("ok", {"true"}).ok());
  ASSERT_TRUE(Launch("three", {"sh", "-c", "exit 3"}).ok());
  RunStatus ok = WaitEnded("ok");
  EXPECT_EQ(ok.state, RunState::kExited);
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.term_signal, 0);
  RunStatus three = WaitEnded("three");
  EXPECT_EQ(three.state, RunState::kExited);
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_EQ(three.term_signal, 0);
  EXPECT_EQ(ReadText(dir_ + "/runs/three/exit"), "exited 3\n");
}

TEST_F(ProcessDriverTest, CapturesStdoutAndStderr) {
  StartDriver();
  ASSERT_TRUE(Launch("logs", {"sh", "-c", "echo to-out; echo to-err >&2; cat"}).ok());
  EXPECT_EQ(WaitEnded("logs").exit_code, 0);  // `cat` ends at once: stdin is /dev/null
  EXPECT_EQ(Log("logs", "stdout"), "to-out\n");
  EXPECT_EQ(Log("logs", "stderr"), "to-err\n");
  EXPECT_EQ(driver_->LogPath("logs", "stdout"), dir_ + "/runs/logs/stdout.log");
}

TEST_F(ProcessDriverTest, PassesSpecEnvironmentNotTheAgents) {
  ::setenv("MERIDIAN_TEST_INHERITED", "from-agent", 1);
  ::setenv("MERIDIAN_TEST_OVERRIDDEN", "from-agent", 1);
  StartDriver();
  LaunchSpec spec;
  spec.key = "env";
  spec.argv = {"sh", "-c",
               "echo \"$FOO|$MERIDIAN_TEST_INHERITED|$MERIDIAN_TEST_OVERRIDDEN|$EMPTY\""};
  spec.env = {{"FOO", "bar baz"}, {"MERIDIAN_TEST_OVERRIDDEN", "from-spec"}, {"EMPTY", ""}};
  ASSERT_TRUE(driver_->Launch(spec).ok());
  ::unsetenv("MERIDIAN_TEST_INHERITED");
  ::unsetenv("MERIDIAN_TEST_OVERRIDDEN");
  EXPECT_EQ(WaitEnded("env").exit_code, 0);
  EXPECT_EQ(Log("env", "stdout"), "bar baz||from-spec|\n");
}

TEST_F(ProcessDriverTest, WorkingDirectoryDefaultsToTheRunsWorkDirectory) {
  StartDriver();
  ASSERT_TRUE(Launch("here", {"pwd", "-P"}).ok());
  LaunchSpec spec;
  spec.key = "there";
  spec.argv = {"pwd", "-P"};
  spec.cwd = dir_;
  ASSERT_TRUE(driver_->Launch(spec).ok());
  EXPECT_EQ(WaitEnded("here").exit_code, 0);
  EXPECT_EQ(WaitEnded("there").exit_code, 0);
  EXPECT_EQ(Log("here", "stdout"), fs::canonical(dir_ + "/runs/here/work").string() + "\n");
  EXPECT_EQ(Log("there", "stdout"), fs::canonical(dir_).string() + "\n");
}

TEST_F(ProcessDriverTest, ExecFailureIs127WithTheReason) {
  StartDriver();
  ASSERT_TRUE(Launch("abs", {"/nonexistent/prog", "x"}).ok());
  ASSERT_TRUE(Launch("path", {"meridian-no-such-command"}).ok());
  std::string not_executable = dir_ + "/data.txt";
  std::ofstream(not_executable) << "just data\n";
  ASSERT_TRUE(Launch("noexec", {not_executable}).ok());
  LaunchSpec spec;
  spec.key = "nocwd";
  spec.argv = {"true"};
  spec.cwd = dir_ + "/missing";
  ASSERT_TRUE(driver_->Launch(spec).ok());

  for (const char* key : {"abs", "path", "noexec", "nocwd"}) {
    RunStatus s = WaitEnded(key);
    EXPECT_EQ(s.state, RunState::kExited) << key;
    EXPECT_EQ(s.exit_code, 127) << key;
  }
  EXPECT_EQ(Log("abs", "stderr"),
            "meridian: cannot run '/nonexistent/prog': No such file or directory\n");
  EXPECT_EQ(Log("path", "stderr"),
            "meridian: cannot run 'meridian-no-such-command': No such file or directory\n");
  EXPECT_EQ(Log("noexec", "stderr"),
            absl::StrCat("meridian: cannot run '", not_executable, "': Permission denied\n"));
  EXPECT_EQ(Log("nocwd", "stderr"), absl::StrCat("meridian: cannot change to directory '", dir_,
                                                 "/missing': No such file or directory\n"));
}

TEST_F(ProcessDriverTest, ScriptWithoutInterpreterLineRunsUnderSh) {
  StartDriver();
  std::string script = dir_ + "/script";
  std::ofstream(script) << "echo \"script got $1\"\n";
  // Readable and executable by the run's uid, which is not this process's.
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  ASSERT_TRUE(Launch("script", {script, "arg1"}).ok());
  EXPECT_EQ(WaitEnded("script").exit_code, 0);
  EXPECT_EQ(Log("script", "stdout"), "script got arg1\n");
}

TEST_F(ProcessDriverTest, SigtermStopsSleep) {
  StartDriver();
  ASSERT_TRUE(Launch("sleeper", {"sleep", "60"}).ok());
  absl::StatusOr<RunStatus> s = driver_->Poll("sleeper");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, RunState::kRunning);
  ASSERT_TRUE(driver_->Signal("sleeper", SIGTERM).ok());
  RunStatus ended = WaitEnded("sleeper");
  EXPECT_EQ(ended.state, RunState::kExited);
  EXPECT_EQ(ended.exit_code, 128 + SIGTERM);
  EXPECT_EQ(ended.term_signal, SIGTERM);
  EXPECT_EQ(ReadText(dir_ + "/runs/sleeper/exit"), "signaled 15\n");
  // Signalling a finished run is a no-op.
  EXPECT_TRUE(driver_->Signal("sleeper", SIGTERM).ok());
}

TEST_F(ProcessDriverTest, TrappedSigtermNeedsSigkill) {
  StartDriver();
  // `trap "" TERM` makes TERM ignored, and `sleep` inherits that through exec.
  ASSERT_TRUE(Launch("stubborn", {"sh", "-c", "trap '' TERM; echo ready; exec sleep 60"}).ok());
  EXPECT_EQ(WaitFirstLine("stubborn"), "ready");
  ASSERT_TRUE(driver_->Signal("stubborn", SIGTERM).ok());
  // An ignored signal is dropped when sent: if TERM were not ignored it would
  // end the run within moments. Give it that chance.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  absl::StatusOr<RunStatus> s = driver_->Poll("stubborn");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, RunState::kRunning);
  ASSERT_TRUE(driver_->Signal("stubborn", SIGKILL).ok());
  RunStatus ended = WaitEnded("stubborn");
  EXPECT_EQ(ended.state, RunState::kExited);
  EXPECT_EQ(ended.exit_code, 128 + SIGKILL);
  EXPECT_EQ(ended.term_signal, SIGKILL);
}

TEST_F(ProcessDriverTest, MonitorIsDetachedAndWorkloadClean) {
  // A descriptor the agent leaks (no close-on-exec) must reach neither process.
  std::string marker = dir_ + "/leaked-descriptor";
  int leaked = ::open(marker.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(leaked, 3);
  // Nor an ignored or blocked signal of the agent's.
  struct sigaction ignore = {}, old_usr1 = {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGUSR1, &ignore, &old_usr1);
  sigset_t usr2, old_mask;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ::sigprocmask(SIG_BLOCK, &usr2, &old_mask);
  StartDriver();
  ASSERT_TRUE(Launch("clean", {"sh", "-c", "echo $$; exec sleep 60"}).ok());
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ::close(leaked);
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(WaitFirstLine("clean"), &child));
  pid_t monitor = ParentOf(child);
  ASSERT_GT(monitor, 1);

  std::vector<std::string> m = ProcStatFields(monitor);
  std::vector<std::string> c = ProcStatFields(child);
  ASSERT_GT(m.size(), 4u);
  ASSERT_GT(c.size(), 4u);
  EXPECT_EQ(m[3], absl::StrCat(monitor)) << "monitor leads its own session";
  EXPECT_EQ(m[2], absl::StrCat(monitor)) << "monitor leads its own process group";
  EXPECT_EQ(c[2], absl::StrCat(child)) << "workload leads its own process group";
  EXPECT_EQ(c[3], absl::StrCat(monitor)) << "workload stays in the monitor's session";

  uint64_t monitor_ignored = SignalMask(monitor, "SigIgn");
  EXPECT_TRUE(Has(monitor_ignored, SIGTERM) && Has(monitor_ignored, SIGINT) &&
              Has(monitor_ignored, SIGHUP) && Has(monitor_ignored, SIGPIPE));
  EXPECT_FALSE(Has(monitor_ignored, SIGUSR1));
  EXPECT_EQ(SignalMask(child, "SigIgn"), 0u);
  EXPECT_EQ(SignalMask(child, "SigBlk"), 0u);
  // The monitor holds only /dev/null and the logs. The workload may briefly
  // open files of its own while starting, so it is checked by target.
  EXPECT_EQ(OpenFds(monitor), (std::set<int>{0, 1, 2}));
  for (int fd : OpenFds(child)) {
    std::error_code ec;
    std::string target = fs::read_symlink(absl::StrCat("/proc/", child, "/fd/", fd), ec).string();
    EXPECT_NE(target, marker) << "fd " << fd;
    EXPECT_FALSE(absl::StartsWith(target, "pipe:")) << "fd " << fd << ": " << target;
  }
  std::error_code ec;
  EXPECT_EQ(fs::read_symlink(absl::StrCat("/proc/", child, "/fd/1"), ec),
            fs::path(driver_->LogPath("clean", "stdout")));
}

TEST_F(ProcessDriverTest, KeyIsNeverLaunchedTwice) {
  StartDriver();
  ASSERT_TRUE(Launch("once", {"true"}).ok());
  EXPECT_EQ(Launch("once", {"true"}).code(), absl::StatusCode::kAlreadyExists);
  WaitEnded("once");
  EXPECT_EQ(Launch("once", {"true"}).code(), absl::StatusCode::kAlreadyExists);
  driver_->Forget("once");
  EXPECT_EQ(Launch("once", {"true"}).code(), absl::StatusCode::kAlreadyExists);
  // Nor by a restarted agent.
  StartDriver();
  EXPECT_EQ(Launch("once", {"true"}).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(ProcessDriverTest, RejectsBadKeysAndCommands) {
  StartDriver();
  for (const std::string& key :
       {std::string(), std::string("."), std::string(".."), std::string("a/b"),
        std::string("with space"), std::string("ünï"), std::string(129, 'k')}) {
    EXPECT_EQ(Launch(key, {"true"}).code(), absl::StatusCode::kInvalidArgument) << key;
  }
  EXPECT_EQ(Launch("no-argv", {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Launch("empty-argv0", {""}).code(), absl::StatusCode::kInvalidArgument);
  LaunchSpec spec;
  spec.key = "bad-env";
  spec.argv = {"true"};
  spec.env = {{"A=B", "c"}};
  EXPECT_EQ(driver_->Launch(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.key = "bad-memory";
  spec.env.clear();
  spec.memory_mib = -1;
  EXPECT_EQ(driver_->Launch(spec).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::is_empty(dir_ + "/runs")) << "a rejected launch leaves nothing behind";
  EXPECT_TRUE(Launch(std::string(128, 'k') + "", {"true"}).ok());
  EXPECT_TRUE(Launch("Az09._-", {"true"}).ok());
}

TEST_F(ProcessDriverTest, UnknownKeyIsNotFound) {
  StartDriver();
  EXPECT_EQ(driver_->Poll("nobody").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->Signal("nobody", SIGTERM).code(), absl::StatusCode::kNotFound);
  driver_->Forget("nobody");  // harmless
}

TEST_F(ProcessDriverTest, ForgetDropsTheRunButKeepsLogs) {
  StartDriver();
  ASSERT_TRUE(Launch("done", {"echo", "hello"}).ok());
  EXPECT_EQ(WaitEnded("done").exit_code, 0);
  driver_->Forget("done");
  EXPECT_EQ(driver_->Poll("done").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Log("done", "stdout"), "hello\n");
}

TEST_F(ProcessDriverTest, RecoverAfterDriverRestart) {
  {
    ProcessDriver& first = StartDriver();
    ASSERT_TRUE(Launch("long", {"sleep", "60"}).ok());
    ASSERT_TRUE(Launch("quick", {"true"}).ok());
    EXPECT_EQ(WaitEnded("quick", &first).exit_code, 0);
  }
  // The first driver is dropped without stopping anything.
  ProcessDriver& second = StartDriver();
  EXPECT_EQ(second.Recover(), (std::vector<std::string>{"long", "quick"}));
  absl::StatusOr<RunStatus> long_run = second.Poll("long");
  ASSERT_TRUE(long_run.ok());
  EXPECT_EQ(long_run->state, RunState::kRunning);
  absl::StatusOr<RunStatus> quick = second.Poll("quick");
  ASSERT_TRUE(quick.ok());
  EXPECT_EQ(quick->state, RunState::kExited);
  EXPECT_EQ(quick->exit_code, 0);
  ASSERT_TRUE(second.Signal("long", SIGTERM).ok());
  RunStatus ended = WaitEnded("long");
  EXPECT_EQ(ended.state, RunState::kExited);
  EXPECT_EQ(ended.term_signal, SIGTERM);
}

TEST_F(ProcessDriverTest, RecoverAfterAgentProcessExits) {
  // A separate "agent" process launches two runs and exits. Its monitors are
  // re-parented to a helper subreaper (rather than to PID 1, which on this VM
  // leaves zombies for a while), not
  // to this process, so this driver can only know them through their records.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t reaper = ::fork();
  ASSERT_GE(reaper, 0);
  if (reaper == 0) {
    ::close(ready[0]);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    pid_t agent = ::fork();
    if (agent == 0) {
      ProcessDriver driver(Options());
      bool ok = driver.Init().ok() && driver.Launch(Spec("long", {"sleep", "60"})).ok() &&
                driver.Launch(Spec("quick", {"sh", "-c", "exit 7"})).ok();
      ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    char ok = agent > 0 && ::waitpid(agent, &status, 0) == agent && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0
                  ? 'y'
                  : 'n';
    (void)::write(ready[1], &ok, 1);
    while (::wait(nullptr) > 0 || errno == EINTR) {
    }
    ::_exit(0);
  }
  reapers_.push_back(reaper);
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, 'y');

  ProcessDriver& driver = StartDriver();
  EXPECT_EQ(driver.Recover(), (std::vector<std::string>{"long", "quick"}));
  RunStatus quick = WaitEnded("quick");
  EXPECT_EQ(quick.state, RunState::kExited);
  EXPECT_EQ(quick.exit_code, 7);
  absl::StatusOr<RunStatus> long_run = driver.Poll("long");
  ASSERT_TRUE(long_run.ok());
  EXPECT_EQ(long_run->state, RunState::kRunning);
  ASSERT_TRUE(driver.Signal("long", SIGTERM).ok());
  RunStatus ended = WaitEnded("long");
  EXPECT_EQ(ended.state, RunState::kExited);
  EXPECT_EQ(ended.exit_code, 128 + SIGTERM);
}

TEST_F(ProcessDriverTest, DirectoryWithoutRecordIsLost) {
  StartDriver();
  fs::create_directories(dir_ + "/runs/half");  // the agent died mid-launch
  EXPECT_EQ(driver_->Recover(), (std::vector<std::string>{"half"}));
  absl::StatusOr<RunStatus> s = driver_->Poll("half");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, RunState::kLost);
  EXPECT_FALSE(s->message.empty());
  EXPECT_EQ(driver_->Signal("half", SIGTERM).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Launch("half", {"true"}).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(ProcessDriverTest, KilledMonitorIsLost) {
  pid_t child = LaunchSleeperToAdopt("orphan");
  ASSERT_GT(child, 1);
  ASSERT_TRUE(KillMonitorOf(child));
  ASSERT_EQ(::kill(-child, SIGKILL), 0);
  RunStatus s = WaitEnded("orphan");
  EXPECT_EQ(s.state, RunState::kLost);
  EXPECT_TRUE(absl::StrContains(s.message, "without an exit record")) << s.message;
  EXPECT_FALSE(fs::exists(dir_ + "/runs/orphan/exit"));
  EXPECT_TRUE(WaitUntil([&] { return ::waitpid(child, nullptr, WNOHANG) == child; }));
}

TEST_F(ProcessDriverTest, KilledMonitorsWorkloadIsKilledToo) {
  // Someone kills only the monitor: the workload must not go on unsupervised
  // (a restarted agent would hand its GPUs to the next run).
  pid_t child = LaunchSleeperToAdopt("orphan");
  ASSERT_GT(child, 1);
  ASSERT_TRUE(KillMonitorOf(child));
  RunStatus s = WaitEnded("orphan");
  EXPECT_EQ(s.state, RunState::kLost);
  EXPECT_TRUE(
      absl::StrContains(s.message, absl::StrCat("(process group ", child, ") was sent SIGKILL")))
      << s.message;
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return ::waitpid(child, &status, WNOHANG) == child; }));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST_F(ProcessDriverTest, KilledMonitorsWorkloadIsKilledThroughItsCgroup) {
  // The workload's leader is gone too and its child lives on: only the run's
  // cgroup still tells that child apart.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  subreaper_ = true;
  ProcessDriverOptions o = LimitsOptions();
  ProcessDriver& driver = StartDriver(o);
  if (!driver.limits_enforced()) GTEST_SKIP() << driver.limits_status();
  CgroupBases(o);
  ASSERT_TRUE(
      driver.Launch(Spec("left", {"sh", "-c", "sleep 60 & echo $$ $!; exec sleep 60"}, 500, 64))
          .ok());
  std::vector<std::string> pids = absl::StrSplit(WaitFirstLine("left"), ' ');
  int leader = 0, left = 0;
  ASSERT_TRUE(pids.size() == 2 && absl::SimpleAtoi(pids[0], &leader) &&
              absl::SimpleAtoi(pids[1], &left));
  stray_groups_.push_back(leader);
  ASSERT_TRUE(KillMonitorOf(leader));
  ASSERT_EQ(::kill(leader, SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return ::waitpid(leader, nullptr, WNOHANG) == leader; }));
  RunStatus s = WaitEnded("left");
  EXPECT_EQ(s.state, RunState::kLost);
  EXPECT_TRUE(absl::StrContains(s.message, "was sent SIGKILL")) << s.message;
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return ::waitpid(left, &status, WNOHANG) == left; }));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST_F(ProcessDriverTest, WorkloadOfAnOldRecordIsLeftAlone) {
  // A record without the workload's start time (written by an earlier
  // version) cannot prove the group is still the workload's: nothing is killed.
  pid_t child = LaunchSleeperToAdopt("old");
  ASSERT_GT(child, 1);
  std::string record = ReadText(dir_ + "/runs/old/record");
  ASSERT_TRUE(absl::StrContains(record, "child_start ")) << record;
  record = record.substr(0, record.find("child_start "));
  std::ofstream(dir_ + "/runs/old/record", std::ios::trunc) << record;
  ASSERT_TRUE(KillMonitorOf(child));
  StartDriver();  // a new agent reads the old record
  EXPECT_EQ(driver_->Recover(), (std::vector<std::string>{"old"}));
  RunStatus s = WaitEnded("old");
  EXPECT_EQ(s.state, RunState::kLost);
  EXPECT_FALSE(absl::StrContains(s.message, "SIGKILL")) << s.message;
  EXPECT_EQ(::waitpid(child, nullptr, WNOHANG), 0) << "the workload still runs";
}

TEST_F(ProcessDriverTest, LimitsCanBeTurnedOff) {
  ProcessDriver& driver = StartDriver();
  EXPECT_FALSE(driver.limits_enforced());
  EXPECT_TRUE(absl::StartsWith(driver.limits_status(), "limits not enforced"))
      << driver.limits_status();
}

TEST_F(ProcessDriverTest, NoCgroupHierarchyMeansLimitsNotEnforced) {
  ProcessDriverOptions o = Options();
  o.enforce_limits = true;
  o.cgroup_root = dir_ + "/no-cgroups";
  fs::create_directories(o.cgroup_root);
  ProcessDriver& driver = StartDriver(o);
  EXPECT_FALSE(driver.limits_enforced());
  EXPECT_TRUE(absl::StrContains(driver.limits_status(), o.cgroup_root + "/cpu"))
      << driver.limits_status();
  ASSERT_TRUE(driver.Launch(Spec("unlimited", {"true"}, 500, 64)).ok());
  EXPECT_EQ(WaitEnded("unlimited").exit_code, 0);
}

TEST_F(ProcessDriverTest, LimitThatCannotBeWrittenFailsTheLaunch) {
  // Looks like a v1 hierarchy, but its cgroups get no control files.
  ProcessDriverOptions o = Options();
  o.enforce_limits = true;
  o.cgroup_root = dir_ + "/fake-cgroups";
  for (const char* controller : {"cpu", "memory"}) {
    fs::create_directories(absl::StrCat(o.cgroup_root, "/", controller));
    std::ofstream(absl::StrCat(o.cgroup_root, "/", controller, "/cgroup.procs"));
  }
  ProcessDriver& driver = StartDriver(o);
  ASSERT_TRUE(driver.limits_enforced()) << driver.limits_status();
  absl::Status st = driver.Launch(Spec("limited", {"true"}, 500));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(st.message(), "/cpu/meridian/limited/cpu.cfs_period_us")) << st;
  EXPECT_EQ(driver.Poll("limited").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ + "/runs/limited")) << "nothing ran: the key stays free";
  EXPECT_FALSE(fs::exists(o.cgroup_root + "/cpu/meridian/limited"));
}

TEST_F(ProcessDriverTest, CgroupLimitsApplyToTheWorkload) {
  ProcessDriverOptions o = LimitsOptions();
  ProcessDriver& driver = StartDriver(o);
  if (!driver.limits_enforced()) GTEST_SKIP() << driver.limits_status();
  bool v1 = absl::StartsWith(driver.limits_status(), "cgroup v1");
  std::vector<std::string> bases = CgroupBases(o);

  ASSERT_TRUE(driver
                  .Launch(Spec("cg", {"sh", "-c", "cat /proc/self/cgroup; echo end; exec sleep 60"},
                               500, 64))
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(Log("cg", "stdout"), "end\n"); }))
      << Log("cg", "stdout") << Log("cg", "stderr");
  std::string own = absl::StrCat("/", o.cgroup_parent, "/cg");
  std::set<std::string> placed;  // controllers whose cgroup is the run's
  for (absl::string_view line : absl::StrSplit(Log("cg", "stdout"), '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3 || f[2] != own) continue;
    for (absl::string_view c : absl::StrSplit(f[1], ',')) placed.insert(std::string(c));
  }
  if (v1) {
    EXPECT_TRUE(placed.contains("cpu") && placed.contains("memory")) << Log("cg", "stdout");
    EXPECT_EQ(ReadText(bases[0] + "/cg/cpu.cfs_quota_us"), "50000\n");
    EXPECT_EQ(ReadText(bases[1] + "/cg/memory.limit_in_bytes"), absl::StrCat(64 << 20, "\n"));
  } else {
    EXPECT_TRUE(placed.contains("")) << Log("cg", "stdout");
    EXPECT_EQ(ReadText(bases[0] + "/cg/cpu.max"), "50000 100000\n");
    EXPECT_EQ(ReadText(bases[0] + "/cg/memory.max"), absl::StrCat(64 << 20, "\n"));
  }
  ASSERT_TRUE(driver.Signal("cg", SIGKILL).ok());
  EXPECT_EQ(WaitEnded("cg").term_signal, SIGKILL);
  driver.Forget("cg");
  for (const std::string& base : bases) EXPECT_FALSE(fs::exists(base + "/cg")) << base;
}

}  // namespace
}  // namespace meridian::agent
