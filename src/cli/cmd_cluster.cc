// `meridian controller`, `meridian agent`, `meridian dev` and the helpers
// they share (token files, child processes).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "controller/controller.h"
#include "controller/service.h"
#include "rpc/rpc.h"
#include "spec/quantities.h"

extern char** environ;

namespace meridian::cli {

namespace fs = std::filesystem;

namespace {

// Blocks SIGINT/SIGTERM in this thread and every thread it starts later;
// WaitForSignal() then returns the one that arrived.
void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

std::string SelfExe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("meridian") : p.string();
}

absl::StatusOr<std::string> EnsureToken(const std::string& data_dir,
                                        const std::string& token_file) {
  if (!token_file.empty()) return rpc::ReadTokenFile(token_file);
  std::string path = data_dir + "/token";
  if (fs::exists(path)) return rpc::ReadTokenFile(path);
  std::string token = rpc::NewToken();
  if (absl::Status st = WriteFileAtomic(path, token + "\n", 0600); !st.ok()) return st;
  return token;
}

}  // namespace

absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok &= ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  return absl::OkStatus();
}

std::string SelfExePath() { return SelfExe(); }

absl::StatusOr<Child> SpawnSelf(const std::string& name, const std::vector<std::string>& args,
                                const std::string& log_path) {
  std::string exe = SelfExe();
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // children get SIGINT/SIGTERM normally
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot start ", name, ": ", strerror(rc)));
  return Child{pid, name};
}

bool ChildAlive(const Child& c) {
  if (c.pid <= 0) return false;
  int status = 0;
  return ::waitpid(c.pid, &status, WNOHANG) == 0;
}

int StopChild(Child& c, double grace_s) {
  if (c.pid <= 0) return 0;
  ::kill(c.pid, SIGTERM);
  double deadline = SteadySeconds() + grace_s;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid || r < 0) break;
    if (SteadySeconds() > deadline) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  c.pid = -1;
  return status;
}

absl::StatusOr<std::string> WaitForFile(const std::string& path, double timeout_s,
                                        const Child* watched) {
  double deadline = SteadySeconds() + timeout_s;
  while (SteadySeconds() < deadline) {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string s = ss.str();
      while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
      if (!s.empty()) return s;
    }
    if (watched != nullptr && watched->pid > 0) {
      int status = 0;
      if (::waitpid(watched->pid, &status, WNOHANG) == watched->pid)
        return absl::UnavailableError(absl::StrCat(watched->name, " exited before writing ", path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("timed out waiting for ", path));
}

// ---------------------------------------------------------------- controller

int RunController(const ControllerArgs& a) {
  BlockStopSignals();
  std::error_code ec;
  fs::create_directories(a.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "meridian controller: cannot create %s: %s\n", a.data_dir.c_str(),
                 ec.message().c_str());
    return kExitError;
  }
  absl::StatusOr<std::string> token = EnsureToken(a.data_dir, a.token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n",
                 std::string(token.status().message()).c_str());
    return kExitError;
  }
  store::StoreOptions so;
  so.path = a.data_dir + "/state.db";
  absl::StatusOr<std::unique_ptr<store::Store>> st = store::Store::Open(so);
  if (!st.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(st.status().message()).c_str());
    return kExitError;
  }
  SystemClock clock;
  controller::ControllerOptions co;
  co.heartbeat_interval_s = a.heartbeat_interval_s;
  co.heartbeat_timeout_s = a.heartbeat_timeout_s;
  co.master_port_base = a.master_port_base;
  controller::Controller c(co, st->get(), &clock);
  if (absl::Status s = c.Start(); !s.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  controller::EndpointManagerOptions eo;
  eo.meridian = "meridian";
  controller::EndpointManager endpoints(eo, &c, st->get(), &clock);
  if (absl::Status s = endpoints.Start(); !s.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  controller::ServerOptions svo;
  svo.listen = a.listen;
  svo.token = *token;
  absl::StatusOr<std::unique_ptr<controller::ControllerServer>> server =
      controller::ControllerServer::Start(&c, svo, &endpoints);
  if (!server.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n",
                 std::string(server.status().message()).c_str());
    return kExitError;
  }
  std::string host = a.listen.substr(0, a.listen.rfind(':'));
  std::string addr = absl::StrCat(host, ":", (*server)->port());
  c.SetAddress(addr);
  (void)WriteFileAtomic(a.data_dir + "/controller.addr", addr + "\n", 0644);
  std::fprintf(stderr, "controller: listening on %s, state in %s/state.db (pid %d)\n", addr.c_str(),
               a.data_dir.c_str(), static_cast<int>(::getpid()));
  std::fflush(stderr);
  int sig = WaitForSignal();
  std::fprintf(stderr, "controller: signal %d, shutting down\n", sig);
  (*server)->Shutdown();
  endpoints.Stop();
  c.Stop();
  return kExitOk;
}

// ---------------------------------------------------------------- agent

int RunAgent(AgentArgs a) {
  BlockStopSignals();
  if (absl::Status s = ResolveClient(&a.client); !s.ok()) {
    std::fprintf(stderr, "meridian agent: %s\n", std::string(s.message()).c_str());
    return kExitInvalid;
  }
  a.opts.controller = a.client.controller;
  a.opts.token = a.client.token;
  if (!a.cpu.empty()) {
    absl::StatusOr<int64_t> cpu = spec::internal::ParseCpuMilli(a.cpu);
    if (!cpu.ok()) {
      std::fprintf(stderr, "meridian agent: --cpu: %s\n",
                   std::string(cpu.status().message()).c_str());
      return kExitInvalid;
    }
    a.opts.cpu_milli = *cpu;
  }
  if (!a.memory.empty()) {
    absl::StatusOr<int64_t> mem = spec::internal::ParseMemoryMib(a.memory);
    if (!mem.ok()) {
      std::fprintf(stderr, "meridian agent: --memory: %s\n",
                   std::string(mem.status().message()).c_str());
      return kExitInvalid;
    }
    a.opts.memory_mib = *mem;
  }
  a.opts.enforce_limits = !a.no_limits;
  for (auto [flag, text, range] :
       {std::tuple{"--run-uids", &a.run_uids, &a.opts.run_uids},
        std::tuple{"--tenant-gids", &a.tenant_gids, &a.opts.tenant_gids}}) {
    absl::StatusOr<agent::IdRange> parsed = agent::ParseIdRange(*text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "meridian agent: %s: %s\n", flag,
                   std::string(parsed.status().message()).c_str());
      return kExitInvalid;
    }
    *range = *parsed;
  }
  if (!a.opts.shared_dir.empty()) a.opts.shared_dir = fs::absolute(a.opts.shared_dir).string();
  agent::Agent ag(a.opts);
  if (absl::Status s = ag.Start(); !s.ok()) {
    std::fprintf(stderr, "meridian agent: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? kExitInvalid : kExitError;
  }
  std::fprintf(stderr, "agent %s: logs served on %s; limits: %s\n", a.opts.name.c_str(),
               ag.address().c_str(), ag.NodeLimits().c_str());
  std::fflush(stderr);
  std::thread loop([&] { ag.Run(); });
  WaitForSignal();
  ag.Stop();
  loop.join();
  if (a.stop_work_on_exit) ag.StopAllRuns(5.0);
  return kExitOk;
}

// ---------------------------------------------------------------- netemu

int RunNetemu(const netemu::RelayOptions& options) {
  BlockStopSignals();
  absl::StatusOr<std::unique_ptr<netemu::Relay>> relay = netemu::Relay::Start(options);
  if (!relay.ok()) {
    std::fprintf(stderr, "meridian netemu: %s\n", std::string(relay.status().message()).c_str());
    return relay.status().code() == absl::StatusCode::kInvalidArgument ? kExitInvalid : kExitError;
  }
  std::fprintf(
      stderr, "netemu: %s -> %s, one-way delay %g ms, %g Mbit/s%s, loss %g; Ctrl-C stops\n",
      (*relay)->address().c_str(), options.target.c_str(), options.forward.one_way_delay_ms,
      options.forward.mbps, options.forward.mbps > 0 ? "" : " (unlimited)", options.forward.loss);
  WaitForSignal();
  (*relay)->Stop();
  std::printf("{\"connections\": %llu, \"bytes_forward\": %llu, \"bytes_reverse\": %llu}\n",
              static_cast<unsigned long long>((*relay)->connections()),
              static_cast<unsigned long long>((*relay)->bytes_forward()),
              static_cast<unsigned long long>((*relay)->bytes_reverse()));
  return kExitOk;
}

// ---------------------------------------------------------------- dev

int RunDev(const DevArgs& a) {
  BlockStopSignals();
  static const char* kRegions[] = {"us-east",  "eu-west", "ap-south", "us-west",
                                   "eu-north", "ap-east", "sa-east",  "me-central"};
  if (a.regions < 1 || a.regions > 8) {
    std::fprintf(stderr, "meridian dev: --regions must be 1..8\n");
    return kExitInvalid;
  }
  std::error_code ec;
  fs::create_directories(a.data_dir + "/logs", ec);
  if (ec) {
    std::fprintf(stderr, "meridian dev: cannot create %s: %s\n", a.data_dir.c_str(),
                 ec.message().c_str());
    return kExitError;
  }
  std::string data_dir = fs::absolute(a.data_dir).string();
  // Workloads (unprivileged uids) pass through the data dir to their run
  // and shared directories; they may not list it, nor enter the
  // controller's state or the logs.
  if (::geteuid() == 0) {
    ::chmod(data_dir.c_str(), 0711);
    ::chmod((data_dir + "/logs").c_str(), 0700);
    fs::create_directories(data_dir + "/controller", ec);
    ::chmod((data_dir + "/controller").c_str(), 0700);
  }
  absl::StatusOr<std::string> token = EnsureToken(data_dir, "");
  if (!token.ok()) {
    std::fprintf(stderr, "meridian dev: %s\n", std::string(token.status().message()).c_str());
    return kExitError;
  }
  // Replicas run in their own directories: give them the data folder by its
  // absolute path.
  if (!std::getenv("MERIDIAN_DATA") && fs::exists("../shared/data"))
    ::setenv("MERIDIAN_DATA", fs::absolute("../shared/data").c_str(), 1);
  // Training traffic between regions goes through emulated links.
  if (a.wan_rtt_ms > 0 || a.wan_mbps > 0) {
    ::setenv("MERIDIAN_WAN_RTT_MS", absl::StrCat(a.wan_rtt_ms).c_str(), 1);
    ::setenv("MERIDIAN_WAN_MBPS", absl::StrCat(a.wan_mbps).c_str(), 1);
  } else {
    ::unsetenv("MERIDIAN_WAN_RTT_MS");
    ::unsetenv("MERIDIAN_WAN_MBPS");
  }
  // Replicas of one dev cluster share a directory (training checkpoints),
  // one per tenant: <data>/shared/<tenant>, given to each agent by
  // --shared-dir. Agents give workloads a fresh environment: MERIDIAN_DATA
  // and MERIDIAN_WAN_* reach them through the agents' --pass-env default,
  // and `meridian` itself through their default PATH (the agent binary's
  // directory first).
  const std::string shared_dir = data_dir + "/shared";
  ::unsetenv("MERIDIAN_SHARED_DIR");
  std::string bin_dir = fs::path(SelfExe()).parent_path().string();
  std::string path =
      absl::StrCat(bin_dir, ":", std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin");
  ::setenv("PATH", path.c_str(), 1);
  ::unsetenv("MERIDIAN_TOKEN");
  fs::remove(data_dir + "/controller.addr", ec);
  // Workloads run as unprivileged uids: what they need must be reachable by
  // one, or every run fails with EACCES. Say so now, clearly.
  if (::geteuid() == 0 && !a.run_as_agent_uid) {
    std::vector<std::tuple<std::string, std::string, int>> needed = {
        {"the meridian binary", SelfExe(), X_OK}, {"the data dir", data_dir, X_OK}};
    if (const char* d = std::getenv("MERIDIAN_DATA"))
      needed.emplace_back("MERIDIAN_DATA", d, R_OK | X_OK);
    for (const auto& [what, path, need] : needed) {
      std::string why = agent::UnreachableReason(path, 70000, 71000, need);
      if (why.empty()) continue;
      std::fprintf(stderr,
                   "meridian dev: workloads run as unprivileged uids and cannot reach %s %s: %s.\n"
                   "  Put the checkout (or --data-dir) under directories others may search "
                   "(chmod o+x each one), or pass --run-as-agent-uid to run workloads as root.\n",
                   what.c_str(), path.c_str(), why.c_str());
      return kExitError;
    }
  }

  std::vector<Child> children;
  auto stop_all = [&] {
    for (auto it = children.rbegin(); it != children.rend(); ++it) StopChild(*it, 5);
  };
  absl::StatusOr<Child> ctl =
      SpawnSelf("controller",
                {"controller", "--data-dir", data_dir + "/controller", "--token-file",
                 data_dir + "/token", "--heartbeat-timeout", absl::StrCat(a.heartbeat_timeout_s)},
                data_dir + "/logs/controller.log");
  if (!ctl.ok()) {
    std::fprintf(stderr, "meridian dev: %s\n", std::string(ctl.status().message()).c_str());
    return kExitError;
  }
  children.push_back(*ctl);
  absl::StatusOr<std::string> addr =
      WaitForFile(data_dir + "/controller/controller.addr", 30, &children[0]);
  if (!addr.ok()) {
    std::fprintf(stderr, "meridian dev: %s (see %s/logs/controller.log)\n",
                 std::string(addr.status().message()).c_str(), data_dir.c_str());
    stop_all();
    return kExitError;
  }
  (void)WriteFileAtomic(data_dir + "/controller.addr", *addr + "\n", 0644);
  std::fprintf(stderr, "dev: controller on %s (pid %d)\n", addr->c_str(), ctl->pid);
  for (int r = 0; r < a.regions; ++r) {
    for (int n = 1; n <= a.nodes_per_region; ++n) {
      std::string region = kRegions[r];
      std::string name = absl::StrCat(region, "-", n);
      std::vector<std::string> args = {"agent",
                                       "--controller",
                                       *addr,
                                       "--token-file",
                                       data_dir + "/token",
                                       "--name",
                                       name,
                                       "--region",
                                       region,
                                       "--zone",
                                       absl::StrCat(region, n % 2 == 1 ? "-a" : "-b"),
                                       "--cpu",
                                       a.cpu_per_node,
                                       "--memory",
                                       a.memory_per_node,
                                       "--gpus",
                                       absl::StrCat(a.gpus_per_node),
                                       "--state-dir",
                                       absl::StrCat(data_dir, "/agents/", name),
                                       "--shared-dir",
                                       shared_dir};
      // Agents of one machine need uids of their own: 50 each (runs at once).
      int index = r * a.nodes_per_region + (n - 1);
      args.push_back("--run-uids");
      args.push_back(absl::StrCat(70000 + 50 * index, "-", 70000 + 50 * index + 49));
      if (a.run_as_agent_uid) args.push_back("--run-as-agent-uid");
      if (a.gpus_per_node > 0) {
        args.push_back("--gpu-type");
        args.push_back(a.gpu_type);
      }
      if (a.no_limits) args.push_back("--no-limits");
      args.push_back("--stop-work-on-exit");  // Ctrl-C leaves nothing behind
      absl::StatusOr<Child> ag =
          SpawnSelf(name, args, absl::StrCat(data_dir, "/logs/", name, ".log"));
      if (!ag.ok()) {
        std::fprintf(stderr, "meridian dev: %s\n", std::string(ag.status().message()).c_str());
        stop_all();
        return kExitError;
      }
      children.push_back(*ag);
    }
  }
  std::fprintf(stderr,
               "dev: %d regions x %d nodes started; logs in %s/logs\n"
               "dev: use it from another shell with\n"
               "  export MERIDIAN_DATA_DIR=%s\n"
               "  meridian node list; meridian job submit -f examples/cluster/hello.yaml\n",
               a.regions, a.nodes_per_region, data_dir.c_str(), data_dir.c_str());
  int rc = kExitOk;
  if (!a.demo.empty()) {
    ClientConfig client;
    client.controller = *addr;
    client.token = *token;
    client.data_dir = data_dir;
    rc = RunDemoImpl(a.demo, a.demo_timeout_s, client, a.regions * a.nodes_per_region);
  } else {
    std::fprintf(stderr, "dev: running; Ctrl-C stops the cluster\n");
    WaitForSignal();
    std::fprintf(stderr, "\ndev: stopping\n");
  }
  stop_all();
  fs::remove(data_dir + "/controller.addr", ec);
  return rc;
}

}  // namespace meridian::cli
