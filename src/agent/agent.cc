#include "agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/probe.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::agent {

namespace {

bool KeyOk(const std::string& key) {
  if (key.empty() || key.size() > 128 || key == "." || key == "..") return false;
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

// "j<job>-r<replica>-a<attempt>" -> fields; false for other names.
bool ParseKey(const std::string& key, uint64_t* job, int32_t* replica, int32_t* attempt) {
  unsigned long long j = 0;
  int r = 0, a = 0;
  char tail = 0;
  if (std::sscanf(key.c_str(), "j%llu-r%d-a%d%c", &j, &r, &a, &tail) != 3) return false;
  *job = j;
  *replica = r;
  *attempt = a;
  return true;
}

std::string SelfExe() {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

int64_t MachineMemoryMib() {
  std::ifstream in("/proc/meminfo");
  std::string k;
  int64_t kb = 0;
  while (in >> k >> kb) {
    if (k == "MemTotal:") return kb / 1024;
    in.ignore(256, '\n');
  }
  return 1024;
}

}  // namespace

struct Agent::RunInfo {
  uint64_t job_id = 0;
  int32_t replica = 0;
  int32_t attempt = 0;
  double grace_s = 10;
  bool stopping = false;
  double kill_at = 0;
  bool failed_to_launch = false;
  std::string launch_error;
  std::optional<std::string> exit_note;  // a failed run's last stderr line, read once
};

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Opens <runs_dir>/<key>/ and its <stream>.log, following no symlink.
// NOT_FOUND while either is missing; FAILED_PRECONDITION when either is
// not what the driver made.
grpc::Status OpenRunLog(const std::string& runs_dir_, const std::string& key,
                      const std::string& stream, int* dir_fd, int* fd) {
  const std::string log = absl::StrCat(stream, ".log");
  auto refused = [&](const std::string& what) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("the ", stream, " log of run ", key, " is not served: ", what));
  };
  *dir_fd = ::open(absl::StrCat(runs_dir_, "/", key).c_str(),
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (*dir_fd < 0) {
    if (errno == ENOENT)
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no run ", key, " yet"));
    return refused(
        errno == ELOOP || errno == ENOTDIR
            ? "its run directory is a symbolic link or not a directory"
            : absl::StrCat("its run directory cannot be opened: ", std::strerror(errno)));
  }
  // O_NONBLOCK: a FIFO planted in place of the log must not block the open.
  *fd = ::openat(*dir_fd, log.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  int err = errno;
  grpc::Status st = grpc::Status::OK;
  struct stat sb;
  if (*fd < 0) {
    st = err == ENOENT  ? grpc::Status(grpc::StatusCode::NOT_FOUND,
                                       absl::StrCat("no ", stream, " log for run ", key, " yet"))
         : err == ELOOP ? refused(absl::StrCat(log, " is a symbolic link"))
                        : refused(absl::StrCat(log, " cannot be opened: ", std::strerror(err)));
  } else if (::fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    st = refused(absl::StrCat(log, " is not a regular file"));
  } else if (sb.st_nlink != 1) {
    st = refused(absl::StrCat(log, " has other hard links"));
  }
  if (!st.ok()) {
    if (*fd >= 0) ::close(*fd);
    ::close(*dir_fd);
    *fd = *dir_fd = -1;
  }
  return st;
}


// Serves run logs from the driver's directories. A run's directory is
// writable by its workload, which may replace its log with a symlink (or a
// hard link, a FIFO, a directory) to something it wants the agent to read:
// the run directory and the log are opened without following symlinks
// (O_NOFOLLOW, then openat from the directory), and the log must be a
// regular file with one link; anything else fails FAILED_PRECONDITION.
class LogService final : public v1::AgentLogService::Service {
 public:
  explicit LogService(std::string runs_dir) : runs_dir_(std::move(runs_dir)) {}

  grpc::Status ReadLog(grpc::ServerContext* ctx, const v1::ReadLogRequest* req,
                       grpc::ServerWriter<v1::LogChunk>* writer) override {
    if (!KeyOk(req->key()))
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "key: not a run key");
    std::string stream = req->stream().empty() ? "stdout" : req->stream();
    if (stream != "stdout" && stream != "stderr")
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "stream: stdout or stderr");
    int dir_fd = -1, fd = -1;
    double give_up = Now() + 10;  // a just-assigned run may not have started yet
    for (;;) {
      grpc::Status st = OpenRunLog(runs_dir_, req->key(), stream, &dir_fd, &fd);
      if (st.ok()) break;
      if (st.error_code() != grpc::StatusCode::NOT_FOUND || !req->follow() || Now() > give_up ||
          ctx->IsCancelled())
        return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string buf(64 * 1024, '\0');
    double last_write = Now();
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n > 0) {
        v1::LogChunk c;
        c.set_data(buf.data(), static_cast<size_t>(n));
        if (!writer->Write(c)) break;
        last_write = Now();
        continue;
      }
      if (!req->follow() || ctx->IsCancelled()) break;
      struct stat st;
      if (::fstatat(dir_fd, "exit", &st, AT_SYMLINK_NOFOLLOW) == 0) {
        // Ended: one more read catches what was written before the exit.
        ssize_t m;
        while ((m = ::read(fd, buf.data(), buf.size())) > 0) {
          v1::LogChunk c;
          c.set_data(buf.data(), static_cast<size_t>(m));
          if (!writer->Write(c)) break;
        }
        break;
      }
      if (Now() - last_write > 1.0) {  // keep-alive: lets the proxy notice cancellation
        if (!writer->Write(v1::LogChunk())) break;
        last_write = Now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::close(fd);
    ::close(dir_fd);
    return grpc::Status::OK;
  }

 private:
  std::string runs_dir_;
};

// The last non-empty line of a run's stderr (at most 200 characters,
// unprintable bytes shown as '?'): why a crash-looping replica fails, for
// `job get` and `endpoint get` without a trip to the node. Empty when none.
std::string LastStderrLine(const std::string& runs_dir, const std::string& key) {
  int dir_fd = -1, fd = -1;
  if (!OpenRunLog(runs_dir, key, "stderr", &dir_fd, &fd).ok()) return "";
  struct stat sb;
  std::string tail;
  if (::fstat(fd, &sb) == 0 && sb.st_size > 0) {
    off_t from = sb.st_size > 4096 ? sb.st_size - 4096 : 0;
    tail.resize(static_cast<size_t>(sb.st_size - from));
    ssize_t n = ::pread(fd, tail.data(), tail.size(), from);
    tail.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  ::close(dir_fd);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' '))
    tail.pop_back();
  size_t nl = tail.rfind('\n');
  std::string line = nl == std::string::npos ? tail : tail.substr(nl + 1);
  if (line.size() > 200) line = line.substr(0, 197) + "...";
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return line;
}

}  // namespace

struct Agent::Impl {
  // The heartbeat stream (AgentService.Connect), reopened after any error and
  // every few minutes (its deadline bounds a controller that stops answering).
  std::unique_ptr<grpc::ClientContext> stream_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::HeartbeatRequest, v1::HeartbeatResponse>> stream;
  std::unique_ptr<LogService> logs;
  std::string runs_dir;  // the driver's root: one directory per run
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;
  std::map<std::string, RunInfo> runs;
  std::map<std::string, v1::ReplicaState> last_state;
  std::unique_ptr<GpuAllocator> gpus;  // this node's devices and who holds them
  std::set<std::string> gpu_waiting;   // runs waiting for stopping runs' GPUs (said once)
  std::mutex wake_mu;  // guards responses and stream_broken too
  std::condition_variable wake;
  std::thread reader;  // reads the stream's responses into `responses`
  std::deque<v1::HeartbeatResponse> responses;
  bool stream_broken = false;
  // Readiness probes: what to probe (runs alive with a readiness path) and
  // the last answers, by run key; guarded by probe_mu.
  struct ProbeTarget {
    std::string host, path;
    int port = 0;
  };
  std::mutex probe_mu;
  std::condition_variable probe_cv;
  std::map<std::string, ProbeTarget> probe_targets;
  std::map<std::string, bool> probe_ready;
  std::atomic<bool> probe_changed{false};  // a result changed: beat now
  std::thread prober;
};

std::string DefaultRunPath() {
  std::string self = SelfExe();
  std::string system = "/usr/local/bin:/usr/bin:/bin";
  if (self.empty()) return system;
  return absl::StrCat(std::filesystem::path(self).parent_path().string(), ":", system);
}

Agent::Agent(AgentOptions options) : options_(std::move(options)) {}

std::string Agent::NodeLimits() const {
  if (driver_->isolated()) return driver_->limits_status();
  return absl::StrCat(driver_->limits_status(), "; workloads run as the agent's uid");
}

Agent::~Agent() {
  Stop();
  if (impl_ && impl_->stream) (void)CloseStream();
  if (impl_ && impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now());
}

absl::Status Agent::Start() {
  // Workloads inherit the agent's environment: never the cluster token.
  ::unsetenv("MERIDIAN_TOKEN");
  if (options_.name.empty()) return absl::InvalidArgumentError("--name: the node needs a name");
  if (options_.region.empty())
    return absl::InvalidArgumentError("--region: the node needs a region");
  if (options_.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (options_.cpu_milli <= 0)
    options_.cpu_milli = int64_t{1000} * static_cast<int64_t>(std::thread::hardware_concurrency());
  if (options_.memory_mib <= 0) options_.memory_mib = MachineMemoryMib();
  std::vector<std::string> devices;
  if (options_.gpus < 0) {
    GpuInventory inv = DiscoverGpus();
    options_.gpus = inv.count;
    devices = inv.devices;
    if (options_.gpu_type.empty()) options_.gpu_type = inv.type;
    std::fprintf(stderr, "agent %s: %s\n", options_.name.c_str(), inv.note.c_str());
  }
  if (options_.gpus > 0 && options_.gpu_type.empty())
    return absl::InvalidArgumentError("--gpu-type is required with --gpus");
  // The state dir holds the runs (and maybe a token): workloads may pass
  // through to their own directories, not list or read anything else.
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (::geteuid() == 0 && ::chmod(options_.data_dir.c_str(), 0711) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("chmod 0711 ", options_.data_dir, ": ", std::strerror(errno)));
  ProcessDriverOptions po;
  po.root_dir = absl::StrCat(options_.data_dir, "/runs");
  po.cgroup_parent = absl::StrCat("meridian/", options_.name);
  po.enforce_limits = options_.enforce_limits;
  po.run_uids = options_.run_uids;
  po.tenant_gids = options_.tenant_gids;
  po.run_as_agent_uid = options_.run_as_agent_uid;
  po.tenant_record = absl::StrCat(options_.data_dir, "/tenant-gids");
  po.shared_dir = options_.shared_dir;
  po.run_path = options_.run_path.empty() ? DefaultRunPath() : options_.run_path;
  po.pass_env = options_.pass_env;
  driver_ = std::make_unique<ProcessDriver>(po);
  if (absl::Status st = driver_->Init(); !st.ok()) return st;
  std::fprintf(stderr, "agent %s: %s\n", options_.name.c_str(),
               driver_->isolation_status().c_str());
  if (driver_->isolated()) WarnUnreachable(po);
  impl_ = std::make_unique<Impl>();
  if (static_cast<int32_t>(devices.size()) != options_.gpus) {
    devices.clear();  // --gpus N, or NVML without UUIDs: devices by index
    for (int32_t i = 0; i < options_.gpus; ++i) devices.push_back(std::to_string(i));
  }
  impl_->gpus = std::make_unique<GpuAllocator>(std::move(devices));
  for (const std::string& key : driver_->Recover()) {
    RunInfo info;
    if (!ParseKey(key, &info.job_id, &info.replica, &info.attempt)) continue;
    struct stat st;
    if (::stat(absl::StrCat(po.root_dir, "/", key, "/acknowledged").c_str(), &st) == 0) {
      driver_->Forget(key);  // outcome already recorded by the controller
      continue;
    }
    impl_->runs[key] = info;
    // A run still running keeps its devices across the restart.
    absl::StatusOr<RunStatus> rs = driver_->Poll(key);
    absl::StatusOr<std::string> record = driver_->ReadRunFile(key, kGpuRecordFile);
    int milli = 0;
    std::vector<std::string> held;
    if (rs.ok() && rs->state == RunState::kRunning && record.ok() &&
        ParseGpuRecord(*record, &milli, &held)) {
      if (absl::Status g = impl_->gpus->Restore(key, held, milli); !g.ok())
        std::fprintf(stderr, "agent %s: %s\n", options_.name.c_str(),
                     std::string(g.message()).c_str());
    }
  }
  impl_->logs = std::make_unique<LogService>(po.root_dir);
  impl_->runs_dir = po.root_dir;
  grpc::ServerBuilder b;
  int port = 0;
  // The log service answers only the controller: its certificate (mutual
  // TLS), or this node's own token on an insecure cluster.
  rpc::Security server_sec;
  server_sec.insecure = options_.insecure;
  server_sec.ca_pem = options_.ca_pem;
  server_sec.cert_pem = options_.cert_pem;
  server_sec.key_pem = options_.key_pem;
  server_sec.require_client_cert = true;
  if (!options_.insecure && (options_.cert_pem.empty() || options_.ca_pem.empty()))
    return absl::InvalidArgumentError("the node has no certificate (join the cluster first)");
  b.AddListeningPort(options_.listen,
                     rpc::ServerCredentials(server_sec,
                                            rpc::RequirePeer(options_.insecure ? "" : "controller",
                                                             options_.insecure ? options_.token
                                                                               : "")),
                     &port);
  b.SetMaxReceiveMessageSize(rpc::kMaxRequestBytes);
  b.RegisterService(impl_->logs.get());
  impl_->server = b.BuildAndStart();
  if (!impl_->server || port == 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  address_ = absl::StrCat(host, ":", port);
  rpc::Security client_sec = server_sec;
  client_sec.require_client_cert = false;
  impl_->stub = v1::AgentService::NewStub(rpc::Connect(options_.controller, client_sec));
  return absl::OkStatus();
}

void Agent::WarnUnreachable(const ProcessDriverOptions& po) const {
  // What workloads are expected to use, checked as the first run uid would
  // see it: an unreachable binary fails every run with EACCES.
  uid_t uid = po.run_uids.first;
  gid_t gid = po.tenant_gids.first;
  auto warn = [&](const std::string& what, const std::string& path, int need) {
    std::string why = UnreachableReason(path, uid, gid, need);
    if (!why.empty())
      std::fprintf(stderr,
                   "agent %s: warning: workloads run unprivileged (uid %u) and cannot use %s %s: "
                   "%s; make the path reachable by others (chmod o+x on each directory) or run "
                   "the agent with --run-as-agent-uid\n",
                   options_.name.c_str(), static_cast<unsigned>(uid), what.c_str(), path.c_str(),
                   why.c_str());
  };
  std::string self = SelfExe();
  for (absl::string_view dir : absl::StrSplit(po.run_path, ':', absl::SkipEmpty()))
    if (!self.empty() &&
        std::filesystem::path(self).parent_path() == std::filesystem::path(std::string(dir)))
      warn("the meridian binary", self, X_OK);
  if (const char* data = std::getenv("MERIDIAN_DATA");
      data != nullptr && *data != '\0' &&
      std::find(po.pass_env.begin(), po.pass_env.end(), "MERIDIAN_DATA") != po.pass_env.end())
    warn("MERIDIAN_DATA", data, R_OK | X_OK);
  warn("their run directories under", po.root_dir, X_OK);
}

void Agent::Stop() {
  stop_ = true;
  if (impl_) {
    impl_->wake.notify_all();
    impl_->probe_cv.notify_all();
  }
}

void Agent::ProbeLoop() {
  std::unique_lock<std::mutex> l(impl_->probe_mu);
  while (!stop_) {
    std::map<std::string, Impl::ProbeTarget> targets = impl_->probe_targets;
    l.unlock();
    std::map<std::string, bool> results;
    for (const auto& [key, t] : targets)
      results[key] = ProbeHttp(t.host, t.port, t.path, 1.0).ready;
    l.lock();
    bool changed = false;
    for (const auto& [key, ready] : results) {
      if (!impl_->probe_targets.contains(key)) continue;  // ended meanwhile
      auto [it, inserted] = impl_->probe_ready.try_emplace(key, ready);
      if (inserted ? ready : it->second != ready) changed = true;
      it->second = ready;
    }
    if (changed) {
      impl_->probe_changed = true;
      impl_->wake.notify_all();
    }
    impl_->probe_cv.wait_for(l, std::chrono::milliseconds(500), [&] { return stop_.load(); });
  }
}

grpc::Status Agent::CloseStream() {
  impl_->stream_ctx->TryCancel();
  if (impl_->reader.joinable()) impl_->reader.join();
  grpc::Status st = impl_->stream->Finish();
  impl_->stream.reset();
  impl_->stream_ctx.reset();
  if (st.ok() || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      st.error_code() == grpc::StatusCode::CANCELLED)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "heartbeat stream closed; reconnecting");
  return st;
}

grpc::Status Agent::Beat(const v1::HeartbeatRequest& req) {
  if (impl_->stream) {
    bool broken;
    {
      std::lock_guard<std::mutex> l(impl_->wake_mu);
      broken = impl_->stream_broken;
    }
    if (broken) return CloseStream();
  }
  if (!impl_->stream) {
    impl_->stream_ctx = std::make_unique<grpc::ClientContext>();
    rpc::Prepare(impl_->stream_ctx.get(), options_.token, 300);
    impl_->stream = impl_->stub->Connect(impl_->stream_ctx.get());
    {
      std::lock_guard<std::mutex> l(impl_->wake_mu);
      impl_->stream_broken = false;
    }
    impl_->reader = std::thread([impl = impl_.get()] {
      v1::HeartbeatResponse r;
      while (impl->stream->Read(&r)) {
        std::lock_guard<std::mutex> l(impl->wake_mu);
        impl->responses.push_back(std::move(r));
        impl->wake.notify_all();
      }
      std::lock_guard<std::mutex> l(impl->wake_mu);
      impl->stream_broken = true;
      impl->wake.notify_all();
    });
  }
  if (impl_->stream->Write(req)) return grpc::Status::OK;
  return CloseStream();
}

void Agent::StopAllRuns(double grace_s) {
  std::vector<std::string> running;
  for (auto& [key, info] : impl_->runs) {
    absl::StatusOr<RunStatus> s = driver_->Poll(key);
    if (s.ok() && s->state == RunState::kRunning) {
      (void)driver_->Signal(key, SIGTERM);
      running.push_back(key);
    }
  }
  auto still_running = [&] {
    std::vector<std::string> out;
    for (const std::string& key : running) {
      absl::StatusOr<RunStatus> s = driver_->Poll(key);
      if (s.ok() && s->state == RunState::kRunning) out.push_back(key);
    }
    return out;
  };
  double deadline = Now() + grace_s;
  while (!(running = still_running()).empty() && Now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (const std::string& key : running) (void)driver_->Signal(key, SIGKILL);
  deadline = Now() + 2;
  while (!(running = still_running()).empty() && Now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

bool Agent::ApplyResponses() {
  std::deque<v1::HeartbeatResponse> got;
  {
    std::lock_guard<std::mutex> l(impl_->wake_mu);
    got.swap(impl_->responses);
  }
  for (const v1::HeartbeatResponse& resp : got) {
    if (resp.reregister()) return false;
    Apply(resp);
  }
  return true;
}

absl::Status Agent::AssignGpus(const v1::Assignment& a, const std::set<std::string>& wanted,
                               LaunchSpec* spec) {
  GpuAllocator& gpus = *impl_->gpus;
  if (gpus.devices().empty()) return absl::OkStatus();  // a node without GPUs leaves the env alone
  // Devices of runs that have ended are free again.
  for (const std::string& key : gpus.Holders()) {
    absl::StatusOr<RunStatus> s = driver_->Poll(key);
    if (!impl_->runs.contains(key) || !s.ok() || s->state != RunState::kRunning) gpus.Release(key);
  }
  int count = a.shape().gpus();
  int milli = a.shape().gpu_milli() > 0 ? a.shape().gpu_milli() : 1000;
  std::vector<std::string> held;
  if (count > 0) {
    absl::StatusOr<std::vector<std::string>> got = gpus.Allocate(a.key(), count, milli);
    if (!got.ok()) {
      // The controller reuses what a stopping run held at once (preemption,
      // cancel); its process may take its grace period to exit. Wait for it
      // rather than share a device.
      std::vector<std::string> holders = gpus.Holders();
      bool stopping = std::any_of(holders.begin(), holders.end(),
                                  [&](const std::string& key) { return !wanted.contains(key); });
      if (got.status().code() == absl::StatusCode::kResourceExhausted && stopping)
        return absl::UnavailableError(absl::StrCat(
            "run ", a.key(), " waits for GPUs that stopping runs hold: ", got.status().message()));
      return got.status();
    }
    impl_->gpu_waiting.erase(a.key());
    held = *std::move(got);
    spec->files.emplace_back(kGpuRecordFile, FormatGpuRecord(milli, held));
  }
  // Ours win over a job's own `env`, and a run without GPUs sees none of the node's.
  std::string visible = absl::StrJoin(held, ",");
  std::erase_if(spec->env, [](const auto& kv) {
    return kv.first == "CUDA_VISIBLE_DEVICES" || kv.first == "MERIDIAN_GPU_DEVICES";
  });
  spec->env.emplace_back("CUDA_VISIBLE_DEVICES", visible);
  spec->env.emplace_back("MERIDIAN_GPU_DEVICES", visible);
  std::sort(spec->env.begin(), spec->env.end());
  return absl::OkStatus();
}

void Agent::Apply(const v1::HeartbeatResponse& resp) {
  double now = Now();
  std::set<std::string> wanted;
  for (const v1::Assignment& a : resp.assignments()) wanted.insert(a.key());
  std::erase_if(impl_->gpu_waiting, [&](const std::string& key) { return !wanted.contains(key); });
  std::map<std::string, Impl::ProbeTarget> targets;
  for (const v1::Assignment& a : resp.assignments()) {
    if (!KeyOk(a.key())) continue;
    auto addr = a.env().find("MASTER_ADDR");
    auto port = a.env().find("MASTER_PORT");
    int port_num = 0;
    if (!a.readiness_path().empty() && addr != a.env().end() && port != a.env().end() &&
        absl::SimpleAtoi(port->second, &port_num) && port_num > 0 && port_num < 65536)
      targets[a.key()] = Impl::ProbeTarget{addr->second, a.readiness_path(), port_num};
    if (impl_->runs.contains(a.key())) continue;
    RunInfo info;
    info.job_id = a.job_id();
    info.replica = a.replica();
    info.attempt = a.attempt();
    info.grace_s = a.grace_s();
    LaunchSpec spec;
    spec.key = a.key();
    spec.argv.assign(a.argv().begin(), a.argv().end());
    spec.tenant = a.tenant();
    for (const auto& [k, v] : a.env()) spec.env.emplace_back(k, v);
    std::sort(spec.env.begin(), spec.env.end());
    spec.cpu_milli = a.shape().cpu_milli();
    spec.memory_mib = a.shape().memory_mib();
    if (!a.service_token().empty()) {
      spec.controller_token = a.service_token();
      spec.controller_ca_pem = options_.ca_pem;
    }
    if (absl::Status gs = AssignGpus(a, wanted, &spec); !gs.ok()) {
      if (gs.code() == absl::StatusCode::kUnavailable) {
        // Devices of runs being stopped (preempted, cancelled): launch once they exit.
        if (impl_->gpu_waiting.insert(a.key()).second)
          std::fprintf(stderr, "agent %s: %s\n", options_.name.c_str(),
                       std::string(gs.message()).c_str());
        continue;
      }
      info.failed_to_launch = true;
      info.launch_error = std::string(gs.message());
      impl_->runs[a.key()] = info;
      continue;
    }
    absl::Status ls = driver_->Launch(spec);
    if (!ls.ok()) impl_->gpus->Release(a.key());
    if (ls.code() == absl::StatusCode::kAlreadyExists) {
      // Launched before (e.g. before a restart, already acknowledged): never twice.
      continue;
    }
    if (!ls.ok()) {
      info.failed_to_launch = true;
      info.launch_error = std::string(ls.message());
    }
    impl_->runs[a.key()] = info;
  }
  {
    // Probe the wanted runs only: one being stopped is not ready.
    std::lock_guard<std::mutex> l(impl_->probe_mu);
    for (auto it = impl_->probe_ready.begin(); it != impl_->probe_ready.end();)
      it = targets.contains(it->first) ? std::next(it) : impl_->probe_ready.erase(it);
    impl_->probe_targets = std::move(targets);
  }
  impl_->probe_cv.notify_all();  // probe new runs soon
  for (auto& [key, info] : impl_->runs) {
    if (wanted.contains(key) || info.stopping || info.failed_to_launch) continue;
    absl::StatusOr<RunStatus> s = driver_->Poll(key);
    if (!s.ok() || s->state != RunState::kRunning) continue;
    (void)driver_->Signal(key, SIGTERM);
    info.stopping = true;
    info.kill_at = now + info.grace_s;
  }
  for (const std::string& key : resp.acknowledged()) {
    auto it = impl_->runs.find(key);
    if (it == impl_->runs.end()) continue;
    driver_->Forget(key);
    // The directory stays (logs; a key is never launched twice); the marker
    // keeps a restarted agent from reporting the run again.
    int fd = ::open(absl::StrCat(options_.data_dir, "/runs/", key, "/acknowledged").c_str(),
                    O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    impl_->runs.erase(it);
    impl_->last_state.erase(key);
  }
}

void Agent::Run() {
  bool registered = false;
  double interval = options_.heartbeat_interval_s > 0 ? options_.heartbeat_interval_s : 1.0;
  bool warned = false;
  impl_->prober = std::thread([this] { ProbeLoop(); });
  while (!stop_) {
    if (!registered) {
      v1::RegisterRequest req;
      v1::Node* n = req.mutable_node();
      n->set_name(options_.name);
      n->set_region(options_.region);
      n->set_zone(options_.zone);
      n->set_gpu_type(options_.gpu_type);
      n->set_gpus(options_.gpus);
      n->set_cpu_milli(options_.cpu_milli);
      n->set_memory_mib(options_.memory_mib);
      n->set_address(address_);
      n->set_limits(NodeLimits());
      v1::RegisterResponse resp;
      grpc::ClientContext ctx;
      rpc::Prepare(&ctx, options_.token, 5);
      grpc::Status st = impl_->stub->Register(&ctx, req, &resp);
      if (st.ok()) {
        registered = true;
        warned = false;
        if (options_.heartbeat_interval_s <= 0 && resp.heartbeat_interval_s() > 0)
          interval = resp.heartbeat_interval_s();
        std::fprintf(stderr, "agent %s: registered with %s (region %s, %s)\n",
                     options_.name.c_str(), options_.controller.c_str(), options_.region.c_str(),
                     NodeLimits().c_str());
      } else {
        if (!warned || st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
            st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
          std::fprintf(stderr, "agent %s: register: %s\n", options_.name.c_str(),
                       st.error_message().c_str());
        warned = true;
        std::unique_lock<std::mutex> l(impl_->wake_mu);
        impl_->wake.wait_for(l, std::chrono::duration<double>(1.0), [&] { return stop_.load(); });
        continue;
      }
    }
    // Report every run this node knows.
    v1::HeartbeatRequest req;
    req.set_node(options_.name);
    for (auto& [key, info] : impl_->runs) {
      v1::RunReport* r = req.add_runs();
      r->set_key(key);
      r->set_job_id(info.job_id);
      r->set_replica(info.replica);
      r->set_attempt(info.attempt);
      v1::ReplicaState state = v1::REPLICA_RUNNING;
      if (info.failed_to_launch) {
        state = v1::REPLICA_FAILED;
        r->set_exit_code(127);
        r->set_message(info.launch_error);
      } else {
        absl::StatusOr<RunStatus> s = driver_->Poll(key);
        if (!s.ok()) {
          state = v1::REPLICA_STOPPED;
          r->set_message(std::string(s.status().message()));
        } else if (s->state == RunState::kExited) {
          r->set_exit_code(s->exit_code);
          state = info.stopping       ? v1::REPLICA_STOPPED
                  : s->exit_code == 0 ? v1::REPLICA_SUCCEEDED
                                      : v1::REPLICA_FAILED;
          if (s->term_signal != 0)
            r->set_message(absl::StrCat("killed by signal ", s->term_signal));
          if (state == v1::REPLICA_FAILED) {
            if (!info.exit_note) info.exit_note = LastStderrLine(impl_->runs_dir, key);
            if (!info.exit_note->empty())
              r->set_message(r->message().empty()
                                 ? *info.exit_note
                                 : absl::StrCat(r->message(), "; ", *info.exit_note));
          }
        } else if (s->state == RunState::kLost) {
          state = v1::REPLICA_STOPPED;
          r->set_message(s->message);
        }
      }
      r->set_state(state);
      if (state == v1::REPLICA_RUNNING) {
        // Only a probe that answered 200 says ready; the controller ignores
        // the flag for jobs without a readiness path.
        std::lock_guard<std::mutex> l(impl_->probe_mu);
        auto p = impl_->probe_ready.find(key);
        r->set_ready(p != impl_->probe_ready.end() && p->second);
      }
      impl_->last_state[key] = state;
    }
    grpc::Status st = Beat(req);
    if (!st.ok()) {
      if (!warned)
        std::fprintf(stderr, "agent %s: heartbeat: %s (work keeps running)\n",
                     options_.name.c_str(), st.error_message().c_str());
      warned = true;
    } else {
      warned = false;
    }
    // Wait for the next beat; wake early when a run changes state or a
    // stopping run passes its grace period.
    double next = Now() + interval;
    while (!stop_ && Now() < next) {
      bool broken = false;
      {
        std::unique_lock<std::mutex> l(impl_->wake_mu);
        impl_->wake.wait_for(l, std::chrono::milliseconds(50), [&] {
          return stop_.load() || !impl_->responses.empty() || impl_->stream_broken ||
                 impl_->probe_changed.load();
        });
        broken = impl_->stream_broken && impl_->stream != nullptr;
      }
      // The controller answers only when this node's desired runs or
      // acknowledgements change (or every few seconds): apply what came.
      if (!ApplyResponses()) {
        registered = false;
        break;
      }
      if (broken) break;  // reconnect now
      bool changed = impl_->probe_changed.exchange(false);
      double t = Now();
      for (auto& [key, info] : impl_->runs) {
        if (info.failed_to_launch) continue;
        absl::StatusOr<RunStatus> s = driver_->Poll(key);
        if (!s.ok()) continue;
        if (s->state == RunState::kRunning) {
          if (info.stopping && t >= info.kill_at) {
            (void)driver_->Signal(key, SIGKILL);
            info.kill_at = t + 3600;
          }
          if (impl_->last_state[key] != v1::REPLICA_RUNNING) changed = true;
        } else if (impl_->last_state[key] == v1::REPLICA_RUNNING) {
          changed = true;
        }
      }
      if (changed) break;
    }
  }
  impl_->probe_cv.notify_all();
  impl_->prober.join();
}

}  // namespace meridian::agent
