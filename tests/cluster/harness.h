// Test harness: a real controller and real agents as child processes of the
// test, on 127.0.0.1, each in its own temporary directory; a gRPC client
// with the cluster token. Every process the harness starts is killed in its
// destructor, and workloads that write their pid into pid_dir() too.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::testing {

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Polls `pred` every 50 ms until true or `timeout_s` passes.
inline bool WaitUntil(const std::function<bool()>& pred, double timeout_s) {
  double deadline = Now() + timeout_s;
  while (Now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// A directory of the test that workloads write into: they run as
// unprivileged uids of their own (see docs/architecture.md, "Workloads run
// unprivileged"), so it is world-writable, and not sticky: a later attempt
// (another uid) replaces what an earlier one wrote (a checkpoint).
inline void CreateWorkloadDir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all);
}

class Cluster {
 public:
  explicit Cluster(std::string name) {
    namespace fs = std::filesystem;
    root_ = fs::path(::testing::TempDir()) /
            (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(root_);
    CreateWorkloadDir(root_ + "/pids");
    port_block_ = counter_;
  }
  ~Cluster() {
    for (auto& [name, pid] : procs_) Kill(name, SIGKILL);
    KillWorkloads();
  }

  const std::string& root() const { return root_; }
  std::string pid_dir() const { return root_ + "/pids"; }
  const std::string& address() const { return address_; }
  const std::string& token() const { return token_; }

  // Starts (or restarts) the controller; the first start picks a free port,
  // a restart reuses it so agents find it again.
  void StartController(double hb_timeout_s = 2.0) {
    std::vector<std::string> args = {
        "controller", "--data-dir",          root_ + "/controller",       "--heartbeat-interval",
        "0.2",        "--heartbeat-timeout", std::to_string(hb_timeout_s)};
    // Tests run side by side: each cluster reserves ports from its own range.
    args.push_back("--master-port-base");
    args.push_back(std::to_string(30000 + ((::getpid() + 37 * port_block_) % 250) * 100));
    args.push_back("--listen");
    args.push_back(address_.empty() ? "127.0.0.1:0" : address_);
    std::filesystem::remove(root_ + "/controller/controller.addr");
    Spawn("controller", args);
    std::string addr;
    WaitUntil(
        [&] {
          addr = ReadText(root_ + "/controller/controller.addr");
          return !addr.empty();
        },
        30);
    while (!addr.empty() && addr.back() == '\n') addr.pop_back();
    address_ = addr;
    token_ = ReadText(root_ + "/controller/token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    security_ = rpc::Security();
    security_.ca_pem = ReadText(ca_file());
    channel_ = rpc::Connect(address_, security_);
    jobs_ = v1::JobService::NewStub(channel_);
    nodes_ = v1::NodeService::NewStub(channel_);
  }

  // The cluster CA (TLS is on in every cluster test) and a client's view of it.
  std::string ca_file() const { return root_ + "/controller/tls/ca.crt"; }
  const rpc::Security& security() const { return security_; }

  // A one-time join token for `node`, in a file (admin's call).
  std::string JoinTokenFile(const std::string& node) {
    auto stub = v1::IdentityService::NewStub(channel_);
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::CreateJoinTokenRequest req;
    req.set_node(node);
    v1::CreateJoinTokenResponse resp;
    grpc::Status st = stub->CreateJoinToken(&ctx, req, &resp);
    std::string path = root_ + "/" + node + ".join";
    std::ofstream(path) << (st.ok() ? resp.token() : std::string("failed: ") + st.error_message());
    return path;
  }

  // `gpus` other than "0": that many emulated GPUs of type "fake", devices "0".."N-1".
  // The first start of a node joins with a one-time token; later starts
  // reuse the credential in its state dir.
  void StartAgent(const std::string& name, const std::string& region, const std::string& cpu = "2",
                  const std::string& memory = "2Gi", bool limits = false,
                  const std::string& gpus = "0") {
    std::string state = root_ + "/agents/" + name;
    std::vector<std::string> args = {"agent",
                                     "--controller",
                                     address_,
                                     "--ca-file",
                                     ca_file(),
                                     "--name",
                                     name,
                                     "--region",
                                     region,
                                     "--cpu",
                                     cpu,
                                     "--memory",
                                     memory,
                                     "--gpus",
                                     gpus,
                                     "--state-dir",
                                     state};
    if (!std::filesystem::exists(state + "/credentials/node.crt")) {
      args.push_back("--join-token-file");
      args.push_back(JoinTokenFile(name));
    }
    if (!limits) args.push_back("--no-limits");
    // Agents of one machine draw run uids from ranges of their own (as
    // `meridian dev` gives them), so two never pick the same uid at once.
    if (!agent_uids_.contains(name)) agent_uids_[name] = static_cast<int>(agent_uids_.size());
    int first = 70000 + 50 * agent_uids_[name];
    args.push_back("--run-uids");
    args.push_back(std::to_string(first) + "-" + std::to_string(first + 49));
    if (gpus != "0") {
      args.push_back("--gpu-type");
      args.push_back("fake");
    }
    Spawn(name, args);
  }

  void Kill(const std::string& name, int sig) {
    auto it = procs_.find(name);
    if (it == procs_.end() || it->second <= 0) return;
    ::kill(it->second, sig);
    int status = 0;
    ::waitpid(it->second, &status, 0);
    it->second = -1;
  }
  int pid(const std::string& name) const { return procs_.at(name); }
  // Any other `meridian` process (a gateway), killed with the cluster.
  void StartProcess(const std::string& name, const std::vector<std::string>& args) {
    Spawn(name, args);
  }

  // Kills every workload that wrote its pid into pid_dir().
  void KillWorkloads() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(pid_dir(), ec)) {
      int p = std::atoi(ReadText(e.path().string()).c_str());
      if (p > 1) ::kill(p, SIGKILL);
    }
  }

  v1::JobService::Stub& jobs() { return *jobs_; }
  v1::NodeService::Stub& nodes() { return *nodes_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  void Prepare(grpc::ClientContext* ctx, double deadline_s = 10) {
    rpc::Prepare(ctx, token_, deadline_s);
  }

  grpc::Status Submit(const std::string& spec, v1::Job* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::SubmitJobRequest req;
    req.set_spec(spec);
    v1::SubmitJobResponse resp;
    grpc::Status st = jobs_->Submit(&ctx, req, &resp);
    if (out) *out = resp.job();
    return st;
  }

  bool Get(uint64_t id, v1::Job* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx, 5);
    v1::GetJobRequest req;
    req.set_id(id);
    return jobs_->Get(&ctx, req, out).ok();
  }

  // Waits until the job is in `state`; returns the last view.
  v1::Job WaitState(uint64_t id, v1::JobState state, double timeout_s = 30) {
    v1::Job j;
    WaitUntil([&] { return Get(id, &j) && j.state() == state; }, timeout_s);
    return j;
  }

  // A replica's whole log (not following); the call's status in *status.
  std::string Logs(uint64_t id, const std::string& stream = "stdout",
                   grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::LogsRequest req;
    req.set_id(id);
    req.set_stream(stream);
    auto reader = jobs_->Logs(&ctx, req);
    std::string out;
    v1::LogChunk c;
    while (reader->Read(&c)) out += c.data();
    grpc::Status st = reader->Finish();
    if (status) *status = st;
    return out;
  }

  int ReadyNodes() {
    grpc::ClientContext ctx;
    Prepare(&ctx, 5);
    v1::ListNodesResponse resp;
    if (!nodes_->List(&ctx, v1::ListNodesRequest(), &resp).ok()) return -1;
    int n = 0;
    for (const auto& node : resp.nodes()) n += node.ready() ? 1 : 0;
    return n;
  }

 private:
  void Spawn(const std::string& name, const std::vector<std::string>& args) {
    std::string log = root_ + "/" + name + ".log";
    std::vector<std::string> argv_s = {MERIDIAN_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      if (::getppid() != parent) ::_exit(1);
      FILE* f = std::fopen(log.c_str(), "a");
      if (f) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    procs_[name] = pid;
  }

  static inline int counter_ = 0;
  int port_block_ = 0;  // clusters of one test process reserve different ports
  std::string root_;
  std::string address_;
  std::string token_;
  rpc::Security security_;
  std::map<std::string, int> agent_uids_;  // agent -> index of its uid range
  std::map<std::string, int> procs_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
};

}  // namespace meridian::testing
