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
#include "controller/identity.h"
#include "controller/service.h"
#include "auth/crypto.h"
#include "meridian/v1/meridian.grpc.pb.h"
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

// The cluster's PKI in DIR (0700): ca.crt/ca.key (made once) and the
// controller's controller.crt/.key (CN "controller", names: loopback and
// the listen host), made when missing. Keys are 0600.
absl::StatusOr<auth::KeyPair> EnsurePki(const std::string& dir, const std::string& listen_host) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  auth::KeyPair ca;
  if (fs::exists(dir + "/ca.crt") && fs::exists(dir + "/ca.key")) {
    absl::StatusOr<std::string> c = rpc::ReadFile(dir + "/ca.crt");
    absl::StatusOr<std::string> k = rpc::ReadFile(dir + "/ca.key");
    if (!c.ok()) return c.status();
    if (!k.ok()) return k.status();
    ca = {*c, *k};
  } else {
    absl::StatusOr<auth::KeyPair> made = auth::CreateCa("Meridian cluster CA");
    if (!made.ok()) return made.status();
    ca = *made;
    if (auto st = rpc::WriteFileAtomic(dir + "/ca.key", ca.key_pem, 0600); !st.ok()) return st;
    if (auto st = rpc::WriteFileAtomic(dir + "/ca.crt", ca.cert_pem, 0644); !st.ok()) return st;
  }
  if (!fs::exists(dir + "/controller.crt") || !fs::exists(dir + "/controller.key")) {
    auth::CertRequest req;
    req.common_name = "controller";
    req.dns = {"localhost", "controller.meridian"};
    req.ips = {"127.0.0.1", "::1"};
    std::string host = listen_host;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    bool ip = !host.empty() && host.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos;
    if (!host.empty() && host != "0.0.0.0" && host != "::" && host != "127.0.0.1" && host != "::1" &&
        host != "localhost")
      (ip ? req.ips : req.dns).push_back(host);
    absl::StatusOr<auth::KeyPair> cert = auth::IssueCert(ca, req);
    if (!cert.ok()) return cert.status();
    if (auto st = rpc::WriteFileAtomic(dir + "/controller.key", cert->key_pem, 0600); !st.ok())
      return st;
    if (auto st = rpc::WriteFileAtomic(dir + "/controller.crt", cert->cert_pem, 0644); !st.ok())
      return st;
  }
  return ca;
}

// The node's credential, from STATE_DIR/credentials, or (first start) from
// a Join with the one-time token in `join_token_file`.
absl::Status EnsureNodeCredential(const AgentArgs& a, agent::AgentOptions* o) {
  std::string dir = a.opts.data_dir + "/credentials";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  ::chmod(a.opts.data_dir.c_str(), 0700);
  ::chmod(dir.c_str(), 0700);
  o->insecure = a.client.security.insecure;
  std::string have = o->insecure ? dir + "/node.token" : dir + "/node.crt";
  if (!fs::exists(have)) {
    if (a.join_token_file.empty())
      return absl::InvalidArgumentError(absl::StrCat(
          "the node has no credential yet (", have,
          "): give --join-token-file with a one-time token from `meridian token create --join "
          "--node ", a.opts.name, "`"));
    absl::StatusOr<std::string> join = rpc::ReadTokenFile(a.join_token_file);
    if (!join.ok()) return join.status();
    v1::JoinRequest req;
    req.set_node(a.opts.name);
    req.set_join_token(*join);
    std::string key_pem;
    if (!o->insecure) {
      absl::StatusOr<auth::KeyPair> csr = auth::CreateCsr(absl::StrCat("node:", a.opts.name));
      if (!csr.ok()) return csr.status();
      req.set_csr(csr->cert_pem);
      key_pem = csr->key_pem;
    }
    auto stub = v1::AgentService::NewStub(rpc::Connect(a.client.controller, a.client.security));
    v1::JoinResponse resp;
    grpc::Status gs;
    for (int i = 0; i < 50; ++i) {  // the controller may still be starting
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      gs = stub->Join(&ctx, req, &resp);
      if (gs.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!gs.ok())
      return absl::Status(static_cast<absl::StatusCode>(gs.error_code()),
                          absl::StrCat("joining the cluster: ", gs.error_message()));
    if (o->insecure) {
      if (auto st = rpc::WriteFileAtomic(dir + "/node.token", resp.node_token() + "\n", 0600);
          !st.ok())
        return st;
    } else {
      if (auto st = rpc::WriteFileAtomic(dir + "/node.key", key_pem, 0600); !st.ok()) return st;
      if (auto st = rpc::WriteFileAtomic(dir + "/ca.crt", resp.ca(), 0644); !st.ok()) return st;
      if (auto st = rpc::WriteFileAtomic(dir + "/node.crt", resp.certificate(), 0644); !st.ok())
        return st;
    }
    std::fprintf(stderr, "agent %s: joined the cluster; credential in %s\n", a.opts.name.c_str(),
                 dir.c_str());
  }
  if (o->insecure) {
    absl::StatusOr<std::string> t = rpc::ReadTokenFile(dir + "/node.token");
    if (!t.ok()) return t.status();
    o->token = *t;
    return absl::OkStatus();
  }
  absl::StatusOr<rpc::Security> sec = rpc::LoadSecurity(dir, "node");
  if (!sec.ok()) return sec.status();
  absl::StatusOr<std::string> cn = auth::CertCommonName(sec->cert_pem);
  if (!cn.ok() || *cn != absl::StrCat("node:", a.opts.name))
    return absl::InvalidArgumentError(absl::StrCat(
        dir, "/node.crt is not the credential of node ", a.opts.name, " (it names ",
        cn.ok() ? *cn : std::string("nothing"), ")"));
  o->ca_pem = sec->ca_pem;
  o->cert_pem = sec->cert_pem;
  o->key_pem = sec->key_pem;
  o->token.clear();
  return absl::OkStatus();
}

// 32 random bytes in PATH (0600), made once: the key that seals secrets.
absl::StatusOr<std::string> EnsureSecretKey(const std::string& path) {
  if (fs::exists(path)) {
    absl::StatusOr<std::string> k = rpc::ReadFile(path);
    if (!k.ok()) return k.status();
    if (k->size() != 64)
      return absl::DataLossError(absl::StrCat(path, ": expected 64 hex digits (a 32-byte key)"));
    std::string raw;
    for (size_t i = 0; i < 64; i += 2) raw.push_back(static_cast<char>(std::stoi(k->substr(i, 2), nullptr, 16)));
    return raw;
  }
  std::string hex = auth::RandomHex(32);
  if (auto st = rpc::WriteFileAtomic(path, hex, 0600); !st.ok()) return st;
  return EnsureSecretKey(path);
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
  ::umask(077);  // state.db, keys, logs and the audit trail: the controller's alone
  std::error_code ec;
  fs::create_directories(a.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "meridian controller: cannot create %s: %s\n", a.data_dir.c_str(),
                 ec.message().c_str());
    return kExitError;
  }
  ::chmod(a.data_dir.c_str(), 0700);
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
  std::string listen_host = a.listen.substr(0, a.listen.rfind(':'));
  controller::ServerOptions svo;
  svo.listen = a.listen;
  if (a.insecure) {
    svo.security.insecure = true;
    std::fprintf(stderr,
                 "controller: WARNING: --insecure: no TLS; calls travel in plaintext and nodes "
                 "authenticate with bearer tokens. Loopback only; do not use beyond debugging\n");
  } else {
    absl::StatusOr<auth::KeyPair> ca = EnsurePki(a.data_dir + "/tls", listen_host);
    if (!ca.ok()) {
      std::fprintf(stderr, "meridian controller: TLS set-up: %s\n",
                   std::string(ca.status().message()).c_str());
      return kExitError;
    }
    svo.ca = *ca;
    absl::StatusOr<rpc::Security> sec = rpc::LoadSecurity(a.data_dir + "/tls", "controller");
    if (!sec.ok()) {
      std::fprintf(stderr, "meridian controller: TLS set-up: %s\n",
                   std::string(sec.status().message()).c_str());
      return kExitError;
    }
    svo.security = *sec;
  }
  absl::StatusOr<std::string> secret_key = EnsureSecretKey(a.data_dir + "/secret.key");
  if (!secret_key.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n",
                 std::string(secret_key.status().message()).c_str());
    return kExitError;
  }
  absl::StatusOr<store::Snapshot> snap = (*st)->Load();
  if (!snap.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(snap.status().message()).c_str());
    return kExitError;
  }
  controller::IdentityOptions io;
  io.bootstrap_token = *token;
  io.secret_key = *secret_key;
  io.audit_log = a.data_dir + "/audit.log";
  controller::IdentityManager ids(io, st->get(), &clock);
  if (absl::Status s = ids.Load(*snap); !s.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  controller::ControllerOptions co;
  co.heartbeat_interval_s = a.heartbeat_interval_s;
  co.heartbeat_timeout_s = a.heartbeat_timeout_s;
  co.master_port_base = a.master_port_base;
  if (const char* shared = std::getenv("MERIDIAN_SHARED_DIR")) co.shared_dir = shared;
  if (!a.shared_dir.empty()) co.shared_dir = a.shared_dir;
  controller::Controller c(co, st->get(), &clock);
  c.SetSecretResolver([&ids](const std::string& tenant, const std::string& name) {
    return ids.SecretValue(tenant, name);
  });
  c.SetRunTokenMinter([&ids](const std::string& key, const std::string& account) {
    return ids.RunToken(key, account);
  });
  ids.SetRunLookup(
      [&c](const std::string& key) -> std::optional<controller::IdentityManager::RunIdentity> {
        auto run = c.RunServiceAccount(key);
        if (!run) return std::nullopt;
        return controller::IdentityManager::RunIdentity{run->first, run->second};
      });
  if (absl::Status s = c.Start(); !s.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  controller::EndpointManagerOptions eo;
  eo.meridian = "meridian";
  eo.shared_dir = co.shared_dir;
  controller::EndpointManager endpoints(eo, &c, st->get(), &clock);
  endpoints.SetSecretResolver([&ids](const std::string& tenant, const std::string& name) {
    return ids.SecretValue(tenant, name);
  });
  if (absl::Status s = endpoints.Start(); !s.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n", std::string(s.message()).c_str());
    return kExitError;
  }
  absl::StatusOr<std::unique_ptr<controller::ControllerServer>> server =
      controller::ControllerServer::Start(&c, svo, &ids, &endpoints);
  if (!server.ok()) {
    std::fprintf(stderr, "meridian controller: %s\n",
                 std::string(server.status().message()).c_str());
    return kExitError;
  }
  std::string host = a.listen.substr(0, a.listen.rfind(':'));
  std::string addr = absl::StrCat(host, ":", (*server)->port());
  c.SetAddress(addr);
  (void)WriteFileAtomic(a.data_dir + "/controller.addr", addr + "\n", 0644);
  std::fprintf(stderr, "controller: listening on %s (%s), state in %s/state.db (pid %d)\n",
               addr.c_str(), a.insecure ? "INSECURE: no TLS" : "TLS; CA in tls/ca.crt",
               a.data_dir.c_str(), static_cast<int>(::getpid()));
  std::fflush(stderr);
  int sig = WaitForSignal();
  std::fprintf(stderr, "controller: signal %d, shutting down\n", sig);
  std::error_code rm_ec;
  fs::remove(a.data_dir + "/controller.addr", rm_ec);  // nobody listens there any more
  (*server)->Shutdown();
  endpoints.Stop();
  c.Stop();
  return kExitOk;
}

// ---------------------------------------------------------------- agent

int RunAgent(AgentArgs a) {
  BlockStopSignals();
  if (absl::Status s = ResolveClient(&a.client, /*need_token=*/false); !s.ok()) {
    std::fprintf(stderr, "meridian agent: %s\n", std::string(s.message()).c_str());
    return kExitInvalid;
  }
  a.opts.controller = a.client.controller;
  if (absl::Status s = EnsureNodeCredential(a, &a.opts); !s.ok()) {
    std::fprintf(stderr, "meridian agent: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ||
                   s.code() == absl::StatusCode::kUnauthenticated ||
                   s.code() == absl::StatusCode::kPermissionDenied
               ? kExitInvalid
               : kExitError;
  }
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
  if (a.opts.shared_dir.empty())
    if (const char* shared = std::getenv("MERIDIAN_SHARED_DIR")) a.opts.shared_dir = shared;
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
  if (!std::getenv("MERIDIAN_DATA")) {
    const std::string data = DataDir();
    if (fs::is_directory(data)) ::setenv("MERIDIAN_DATA", data.c_str(), 1);
  }
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
  // A used data dir holds the last run's addresses (a controller killed with
  // -9 leaves its file): never wait on those.
  fs::remove(data_dir + "/controller.addr", ec);
  fs::remove(data_dir + "/controller/controller.addr", ec);
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
  std::vector<std::string> ctl_args = {"controller",
                                       "--data-dir",
                                       data_dir + "/controller",
                                       "--token-file",
                                       data_dir + "/token",
                                       "--heartbeat-timeout",
                                       absl::StrCat(a.heartbeat_timeout_s),
                                       "--shared-dir",
                                       shared_dir,
                                       "--master-port-base",
                                       absl::StrCat(a.master_port_base)};
  if (a.insecure) ctl_args.push_back("--insecure");
  absl::StatusOr<Child> ctl =
      SpawnSelf("controller", ctl_args,
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
  std::fprintf(stderr, "dev: controller on %s (pid %d, %s)\n", addr->c_str(), ctl->pid,
               a.insecure ? "INSECURE: no TLS" : "TLS");
  ClientConfig admin;
  admin.controller = *addr;
  admin.token = *token;
  admin.data_dir = data_dir;
  admin.insecure = a.insecure;
  if (absl::Status st = ResolveSecurity(&admin); !st.ok()) {
    std::fprintf(stderr, "meridian dev: %s\n", std::string(st.message()).c_str());
    stop_all();
    return kExitError;
  }
  auto identity = v1::IdentityService::NewStub(rpc::Connect(*addr, admin.security));
  // The demo's gateway holds a `gateway` service account's token (it reads
  // endpoints and their client tokens, reports load), not the admin's.
  if (!fs::exists(data_dir + "/gateway.token")) {
    grpc::ClientContext uctx;
    rpc::Prepare(&uctx, *token, 10);
    v1::CreateUserRequest ureq;
    ureq.set_name("gateway");
    ureq.set_service_account(true);
    ureq.add_roles("gateway");
    v1::User user;
    grpc::Status us = identity->CreateUser(&uctx, ureq, &user);
    grpc::ClientContext tctx;
    rpc::Prepare(&tctx, *token, 10);
    v1::CreateTokenRequest treq;
    treq.set_user("gateway");
    treq.set_description("meridian dev's gateway");
    v1::CreateTokenResponse tresp;
    if ((us.ok() || us.error_code() == grpc::StatusCode::ALREADY_EXISTS) &&
        identity->CreateToken(&tctx, treq, &tresp).ok())
      (void)rpc::WriteFileAtomic(data_dir + "/gateway.token", tresp.secret() + "\n", 0600);
  }
  // Each agent joins with a one-time token of its own (once: later starts
  // reuse the credential in its state dir).
  auto join_token = [&](const std::string& name) -> absl::StatusOr<std::string> {
    std::string state = absl::StrCat(data_dir, "/agents/", name);
    if (fs::exists(state + (a.insecure ? "/credentials/node.token" : "/credentials/node.crt")))
      return std::string();
    v1::CreateJoinTokenRequest req;
    req.set_node(name);
    req.set_ttl_s(600);
    v1::CreateJoinTokenResponse resp;
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, *token, 10);
    grpc::Status gs = identity->CreateJoinToken(&ctx, req, &resp);
    if (!gs.ok()) return rpc::ToAbsl(gs);
    std::string path = absl::StrCat(data_dir, "/agents/", name, ".join");
    fs::create_directories(data_dir + "/agents");
    if (auto st = rpc::WriteFileAtomic(path, resp.token() + "\n", 0600); !st.ok()) return st;
    return path;
  };
  for (int r = 0; r < a.regions; ++r) {
    for (int n = 1; n <= a.nodes_per_region; ++n) {
      std::string region = kRegions[r];
      std::string name = absl::StrCat(region, "-", n);
      absl::StatusOr<std::string> join = join_token(name);
      if (!join.ok()) {
        std::fprintf(stderr, "meridian dev: join token for %s: %s\n", name.c_str(),
                     std::string(join.status().message()).c_str());
        stop_all();
        return kExitError;
      }
      std::vector<std::string> args = {"agent",
                                       "--controller",
                                       *addr,
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
      if (a.insecure) {
        args.push_back("--insecure");
      } else {
        args.push_back("--ca-file");  // the agent holds no user token: no --data-dir
        args.push_back(admin.ca_file);
      }
      if (!join->empty()) {
        args.push_back("--join-token-file");
        args.push_back(*join);
      }
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
    ClientConfig client = admin;
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
