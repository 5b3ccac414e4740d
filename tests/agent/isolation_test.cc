// Workloads are not root: ProcessDriver runs each run under a uid of its
// own and its tenant's gid, in a directory of its own, with a fresh
// environment; tenants share a directory among their runs only. Real
// processes (small shell commands) in a fresh directory per test; the tests
// that switch users need root and skip without it. Waits poll with a 10 s
// deadline and never assert timings.
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/identity.h"
#include "agent/process.h"
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

struct FileMode {
  unsigned mode = 0;  // permission bits, setgid included
  uid_t uid = 0;
  gid_t gid = 0;
};

FileMode ModeOf(const std::string& path) {
  struct stat st = {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return {static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

LaunchSpec Spec(std::string key, std::string script, std::string tenant = "") {
  LaunchSpec spec;
  spec.key = std::move(key);
  spec.argv = {"sh", "-c", std::move(script)};
  spec.tenant = std::move(tenant);
  return spec;
}

class ProcessDriverIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(absl::StrCat(::testing::TempDir(), "/isolation_test_", ::getpid(), "_",
                                 info->name()))
               .lexically_normal()
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A range of this test process's own, so that tests side by side do not
    // compete for uids (inside 65536-99999, away from the default range).
    uint32_t base = 80000 + static_cast<uint32_t>(::getpid() % 1000) * 16;
    uids_ = {base, base + 15};
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
    fs::remove_all(dir_);
  }

  // Skips the test unless this process may switch users.
  bool NeedRoot() {
    if (::geteuid() == 0) return true;
    return false;
  }

  ProcessDriverOptions Options() const {
    ProcessDriverOptions o;
    o.root_dir = dir_ + "/state/runs";
    o.enforce_limits = false;
    o.run_uids = uids_;
    o.shared_dir = dir_ + "/shared";
    return o;
  }

  ProcessDriver& StartDriver(ProcessDriverOptions options) {
    driver_ = std::make_unique<ProcessDriver>(std::move(options));
    absl::Status st = driver_->Init();
    EXPECT_TRUE(st.ok()) << st;
    return *driver_;
  }
  ProcessDriver& StartDriver() { return StartDriver(Options()); }

  RunStatus WaitEnded(const std::string& key) {
    RunStatus last;
    bool ended = WaitUntil([&] {
      absl::StatusOr<RunStatus> s = driver_->Poll(key);
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

  // Runs `script` to its end; returns its stdout (stderr on failure, in the message).
  std::string RunToEnd(const std::string& key, const std::string& script,
                       const std::string& tenant = "") {
    absl::Status st = driver_->Launch(Spec(key, script, tenant));
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return "";
    RunStatus s = WaitEnded(key);
    EXPECT_EQ(s.exit_code, 0) << key << ": " << Log(key, "stderr");
    return Log(key, "stdout");
  }

  std::string Log(const std::string& key, const std::string& stream) const {
    return ReadText(driver_->LogPath(key, stream));
  }

  std::string RunDir(const std::string& key) const { return dir_ + "/state/runs/" + key; }

  // The gid the driver gave `tenant` (its record of tenants).
  gid_t TenantGid(const std::string& tenant) const {
    for (absl::string_view line :
         absl::StrSplit(ReadText(dir_ + "/state/tenant-gids"), '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
      gid_t gid = 0;
      if (f.size() == 2 && f[0] == tenant && absl::SimpleAtoi(f[1], &gid)) return gid;
    }
    ADD_FAILURE() << "no gid recorded for tenant " << tenant;
    return 0;
  }

  std::string dir_;
  IdRange uids_;
  std::unique_ptr<ProcessDriver> driver_;
};

#define REQUIRE_ROOT()                                                                    \
  if (!NeedRoot())                                                                        \
  GTEST_SKIP() << "needs root: the driver switches workloads to other uids only as root " \
                  "(this process runs as uid "                                            \
               << ::geteuid() << ")"

TEST_F(ProcessDriverIsolationTest, RunsAsAUidOfItsOwnWithTheTenantsGroupOnly) {
  REQUIRE_ROOT();
  ProcessDriver& driver = StartDriver();
  EXPECT_TRUE(driver.isolated());
  EXPECT_EQ(driver.isolation_status(), absl::StrCat("workloads run as uids ", FormatIdRange(uids_),
                                                    ", tenant gids 71000-71999"));
  std::string out = RunToEnd("who",
                             "id -u; id -g; id -G; pwd -P; stat -c '%a %u %g' .; "
                             "grep NoNewPrivs /proc/self/status | tr -d '\\t '; umask",
                             "team-a");
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 7u) << out << Log("who", "stderr");
  uid_t uid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[0], &uid)) << out;
  EXPECT_TRUE(uids_.Contains(uid)) << uid;
  gid_t gid = TenantGid("team-a");
  EXPECT_TRUE(IdRange({71000, 71999}).Contains(gid)) << gid;
  EXPECT_EQ(lines[1], absl::StrCat(gid));
  EXPECT_EQ(lines[2], absl::StrCat(gid)) << "no supplementary groups";
  EXPECT_EQ(lines[3], fs::canonical(RunDir("who") + "/work").string());
  EXPECT_EQ(lines[4], absl::StrCat("700 ", uid, " ", gid)) << "its cwd is its own, 0700";
  EXPECT_EQ(lines[5], "NoNewPrivs:1");
  EXPECT_EQ(lines[6], "0007");
  // The driver's files are root's and root-only; the run's identity is recorded.
  EXPECT_EQ(ReadText(RunDir("who") + "/identity"),
            absl::StrCat("uid ", uid, "\ngid ", gid, "\ntenant team-a\n"));
  for (const char* name : {"record", "exit", "identity", "stdout.log", "stderr.log"}) {
    FileMode m = ModeOf(RunDir("who") + "/" + name);
    EXPECT_EQ(m.mode, 0600u) << name;
    EXPECT_EQ(m.uid, 0u) << name;
  }
  EXPECT_EQ(ModeOf(RunDir("who")).mode, 0711u);
  EXPECT_EQ(ModeOf(dir_ + "/state/runs").mode, 0711u);
  EXPECT_EQ(ModeOf(dir_ + "/state/tenant-gids").mode, 0600u);
  // No tenant named: "default".
  std::string plain = RunToEnd("plain", "id -g");
  EXPECT_EQ(plain, absl::StrCat(TenantGid("default"), "\n"));
}

TEST_F(ProcessDriverIsolationTest, ARunCannotReadAnotherRunNorTheAgentsState) {
  REQUIRE_ROOT();
  StartDriver();
  ::chmod((dir_ + "/state").c_str(), 0711);  // as the agent makes its state dir
  // A root-only file in the agent's state dir, as a token would be.
  std::string token = dir_ + "/state/token";
  std::ofstream(token) << "s3cret\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_EQ(RunToEnd("first", "echo private > mine; echo done", "team-a"), "done\n");
  // Same tenant even: runs are apart, only the shared directory is common.
  std::string first = RunDir("first");
  std::string out = RunToEnd(
      "second",
      absl::StrCat(
          "for p in ", first, "/work/mine ", first, "/stdout.log ", first, "/record ", first,
          "/identity ", token, "; do cat $p >/dev/null 2>&1 && echo read $p; done; ", "for d in ",
          first, " ", first, "/work ", dir_, "/state/runs ", dir_, "/state",
          "; do ls $d >/dev/null 2>&1 && echo listed $d; done; ", "echo mine > own && cat own"),
      "team-a");
  EXPECT_EQ(out, "mine\n") << "the second run reached what is not its own";
}

TEST_F(ProcessDriverIsolationTest, EnvironmentIsFreshWithoutSecretsOrTheAgentsVariables) {
  ::setenv("MERIDIAN_TEST_AGENT_MARKER", "agent-only", 1);
  ::setenv("MERIDIAN_TOKEN", "t0ken", 1);
  ::setenv("MERIDIAN_TOKEN_FILE", "/somewhere/token", 1);
  ::setenv("MERIDIAN_DATA", "/data/here", 1);  // in the default pass-through list
  ::setenv("TZ", "UTC", 1);
  ProcessDriverOptions o = Options();
  o.run_path = "/usr/bin:/bin";
  ProcessDriver& driver = StartDriver(o);
  LaunchSpec spec;
  spec.key = "env";
  spec.argv = {"/usr/bin/env"};
  spec.env = {{"FOO", "bar baz"},
              {"MERIDIAN_RUN_KEY", "env"},
              {"MERIDIAN_TOKEN", "from-spec"},
              {"MERIDIAN_SHARED_DIR", "/elsewhere"}};
  spec.tenant = "team-a";
  absl::Status st = driver.Launch(spec);
  for (const char* name : {"MERIDIAN_TEST_AGENT_MARKER", "MERIDIAN_TOKEN", "MERIDIAN_TOKEN_FILE",
                           "MERIDIAN_DATA", "TZ"})
    ::unsetenv(name);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(WaitEnded("env").exit_code, 0) << Log("env", "stderr");
  std::map<std::string, std::string> env;
  for (absl::string_view line : absl::StrSplit(Log("env", "stdout"), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    env.insert(kv);
  }
  std::string work = RunDir("env") + "/work";
  std::map<std::string, std::string> want = {{"PATH", "/usr/bin:/bin"},
                                             {"HOME", work},
                                             {"TMPDIR", work + "/tmp"},
                                             {"MERIDIAN_SHARED_DIR", dir_ + "/shared/team-a"},
                                             {"MERIDIAN_DATA", "/data/here"},
                                             {"TZ", "UTC"},
                                             {"FOO", "bar baz"},
                                             {"MERIDIAN_RUN_KEY", "env"},
                                             {"USER", env["USER"]},
                                             {"LOGNAME", env["USER"]}};
  for (const char* name : {"LANG", "LC_ALL"})  // passed on as this process has them
    if (const char* value = std::getenv(name)) want[name] = value;
  EXPECT_EQ(env, want);
  if (driver.isolated()) {
    EXPECT_TRUE(absl::StartsWith(env["USER"], "meridian-run-")) << env["USER"];
    EXPECT_TRUE(fs::is_directory(work + "/tmp"));
    EXPECT_EQ(ModeOf(work + "/tmp").mode, 0700u);
  }
}

TEST_F(ProcessDriverIsolationTest, TenantsShareTheirDirectoryAndNoOtherTenants) {
  REQUIRE_ROOT();
  StartDriver();
  ASSERT_EQ(
      RunToEnd("a1", "cd $MERIDIAN_SHARED_DIR && mkdir -p models && echo v1 > models/m && echo ok",
               "team-a"),
      "ok\n");
  // Another run of the tenant (another uid) reads and replaces what the first wrote.
  ASSERT_EQ(RunToEnd("a2",
                     "cat $MERIDIAN_SHARED_DIR/models/m; echo v2 > $MERIDIAN_SHARED_DIR/models/m"
                     " && cat $MERIDIAN_SHARED_DIR/models/m",
                     "team-a"),
            "v1\nv2\n");
  std::string a = dir_ + "/shared/team-a";
  FileMode m = ModeOf(a);
  EXPECT_EQ(m.mode, 02770u);
  EXPECT_EQ(m.uid, 0u);
  EXPECT_EQ(m.gid, TenantGid("team-a"));
  std::string out = RunToEnd(
      "b1",
      absl::StrCat("cat ", a, "/models/m >/dev/null 2>&1 && echo read; ls ", a,
                   " >/dev/null 2>&1 && echo listed; ls ", dir_,
                   "/shared >/dev/null 2>&1 && echo listed-root; touch ", a,
                   "/x 2>/dev/null && echo wrote; echo own > $MERIDIAN_SHARED_DIR/f && cat "
                   "$MERIDIAN_SHARED_DIR/f; echo $MERIDIAN_SHARED_DIR"),
      "team-b");
  EXPECT_EQ(out, absl::StrCat("own\n", dir_, "/shared/team-b\n"));
  EXPECT_NE(TenantGid("team-a"), TenantGid("team-b"));
  EXPECT_EQ(ModeOf(dir_ + "/shared").mode, 0711u);
}

TEST_F(ProcessDriverIsolationTest, RestartedDriverReadoptsRunsAndDoesNotReuseTheirUids) {
  REQUIRE_ROOT();
  ProcessDriverOptions o = Options();
  o.run_uids = {uids_.first, uids_.first + 1};  // two uids: both held below
  {
    ProcessDriver& first = StartDriver(o);
    ASSERT_TRUE(first.Launch(Spec("quick", "id -u")).ok());
    ASSERT_TRUE(first.Launch(Spec("long", "id -u; exec sleep 60")).ok());
    EXPECT_EQ(WaitEnded("quick").exit_code, 0);
  }
  ASSERT_TRUE(WaitUntil([&] { return !Log("long", "stdout").empty(); }));
  uid_t quick = 0, long_uid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(Log("quick", "stdout")), &quick));
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(Log("long", "stdout")), &long_uid));
  EXPECT_NE(quick, long_uid);
  // The first driver is dropped without stopping anything, as an agent restart would.
  ProcessDriver& second = StartDriver(o);
  EXPECT_EQ(second.Recover(), (std::vector<std::string>{"long", "quick"}));
  absl::StatusOr<RunStatus> s = second.Poll("long");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, RunState::kRunning);
  // "quick" has ended but is not forgotten: its uid is still held, as is "long"'s.
  EXPECT_EQ(second.Launch(Spec("next", "id -u")).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(fs::exists(RunDir("next"))) << "a refused launch leaves nothing behind";
  second.Forget("quick");
  ASSERT_TRUE(second.Launch(Spec("next", "id -u")).ok());
  EXPECT_EQ(WaitEnded("next").exit_code, 0);
  EXPECT_EQ(Log("next", "stdout"), absl::StrCat(quick, "\n"));
  ASSERT_TRUE(second.Signal("long", SIGTERM).ok());
  EXPECT_EQ(WaitEnded("long").term_signal, SIGTERM);
}

TEST_F(ProcessDriverIsolationTest, UnreachableProgramSaysWhichDirectoryBlocksIt) {
  REQUIRE_ROOT();
  StartDriver();
  std::string hidden = dir_ + "/private";
  fs::create_directories(hidden);
  fs::permissions(hidden, fs::perms::owner_all);  // 0700, as a home directory may be
  std::string prog = hidden + "/prog";
  std::ofstream(prog) << "#!/bin/sh\necho hi\n";
  fs::permissions(prog, fs::perms::all);
  LaunchSpec spec;
  spec.key = "blocked";
  spec.argv = {prog};
  ASSERT_TRUE(driver_->Launch(spec).ok());
  EXPECT_EQ(WaitEnded("blocked").exit_code, 127);
  std::string err = Log("blocked", "stderr");
  EXPECT_TRUE(absl::StrContains(err, absl::StrCat("directory '", hidden, "' cannot be searched")))
      << err;
  EXPECT_TRUE(absl::StrContains(err, "--run-as-agent-uid")) << err;
  EXPECT_TRUE(absl::StrContains(UnreachableReason(prog, uids_.first, 71000, X_OK),
                                absl::StrCat("'", hidden, "' (drwx------")))
      << UnreachableReason(prog, uids_.first, 71000, X_OK);
  EXPECT_EQ(UnreachableReason("/bin/sh", uids_.first, 71000, X_OK), "");
}

TEST_F(ProcessDriverIsolationTest, RunAsAgentUidKeepsTheDriversIdentity) {
  ProcessDriverOptions o = Options();
  o.run_as_agent_uid = true;
  ProcessDriver& driver = StartDriver(o);
  EXPECT_FALSE(driver.isolated());
  EXPECT_TRUE(absl::StartsWith(driver.isolation_status(), "workloads run as the agent's uid"))
      << driver.isolation_status();
  std::string out = RunToEnd("me", "id -u; pwd -P");
  EXPECT_EQ(out,
            absl::StrCat(::geteuid(), "\n", fs::canonical(RunDir("me") + "/work").string(), "\n"));
  EXPECT_EQ(ReadText(RunDir("me") + "/identity"),
            absl::StrCat("uid ", ::geteuid(), "\ngid ", ::getegid(), "\ntenant default\n"));
}

// ---------------------------------------------------------------- identity.h

TEST(IdRangeTest, ParsesAndRejects) {
  absl::StatusOr<IdRange> r = ParseIdRange("70000-70999");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first, 70000u);
  EXPECT_EQ(r->size(), 1000u);
  EXPECT_EQ(FormatIdRange(*r), "70000-70999");
  for (const char* bad : {"", "70000", "0-10", "10-5", "a-b", "65000-66000", "1-4294967295"})
    EXPECT_EQ(ParseIdRange(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST(TenantGroupsTest, GidsAreStableAcrossRestartsAndAgreeThroughTheSharedDir) {
  std::string dir = absl::StrCat(::testing::TempDir(), "/tenant_groups_", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  IdRange gids = {71000, 71003};
  gid_t a = 0, b = 0;
  {
    TenantGroups t(gids, dir + "/one", "");
    ASSERT_TRUE(t.Init().ok());
    absl::StatusOr<gid_t> ga = t.GidOf("alpha"), gb = t.GidOf("beta");
    ASSERT_TRUE(ga.ok() && gb.ok());
    a = *ga;
    b = *gb;
    EXPECT_NE(a, b);
    EXPECT_TRUE(gids.Contains(a) && gids.Contains(b));
    EXPECT_EQ(*t.GidOf("alpha"), a);
  }
  {
    TenantGroups again(gids, dir + "/one", "");  // a restart reads the record
    ASSERT_TRUE(again.Init().ok());
    EXPECT_EQ(*again.GidOf("beta"), b);
    EXPECT_EQ(*again.GidOf("alpha"), a);
    // The range holds four: two more tenants fit, a fifth does not.
    EXPECT_TRUE(again.GidOf("gamma").ok());
    EXPECT_TRUE(again.GidOf("delta").ok());
    EXPECT_EQ(again.GidOf("epsilon").status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(again.GidOf("../x").status().code(), absl::StatusCode::kInvalidArgument);
  }
  if (::geteuid() == 0) {
    // Two agents with records of their own and one shared directory: the
    // second takes the gid of the directory the first made.
    TenantGroups first(gids, dir + "/first", dir + "/shared");
    TenantGroups second(gids, dir + "/second", dir + "/shared");
    ASSERT_TRUE(first.Init().ok());
    ASSERT_TRUE(second.Init().ok());
    ASSERT_TRUE(second.GidOf("other").ok());  // second's record: a gid the first does not know
    absl::StatusOr<gid_t> g = first.GidOf("team");
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE(first.SharedDir("team", *g).ok());
    EXPECT_EQ(*second.GidOf("team"), *g);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace meridian::agent
