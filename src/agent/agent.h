// Agent: the node's side of the control plane.
//
// Registers its node (region, zone, GPUs by type, CPU, memory: from options,
// with CPU/memory defaulting to the machine's and GPUs discovered through
// NVML when the library and a GPU are present), heartbeats, and reconciles:
// the controller's heartbeat answer lists every run this node should have;
// the agent launches the missing ones through the ProcessDriver, stops the
// ones no longer wanted (SIGTERM, then SIGKILL after the grace period) and
// reports each run's state until the controller acknowledges its outcome.
// A run that asks for GPUs gets devices of its own (see agent/gpus.h) in
// CUDA_VISIBLE_DEVICES; a run that asks for none on a node with GPUs sees none.
// A run whose assignment names a readiness path is probed (HTTP GET on its
// MASTER_ADDR:MASTER_PORT every 0.5 s, from a thread of its own) and reported
// ready while it answers 200; a change is reported at once.
// It serves the runs' logs (AgentLogService). After a restart it re-adopts
// the runs its driver finds on disk and reports them.
// Workloads run unprivileged (agent/process.h): a uid of their own, their
// tenant's group (Assignment.tenant), a fresh environment and the tenant's
// shared directory; an agent that is not root runs them as its own uid and
// says so in its node's `limits`.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/gpus.h"
#include "agent/process.h"

namespace grpc {
class Status;
}
namespace meridian::v1 {
class HeartbeatRequest;
class HeartbeatResponse;
class Assignment;
}  // namespace meridian::v1

namespace meridian::agent {

struct AgentOptions {
  std::string controller;  // controller address
  // The node's credential (cli: STATE_DIR/credentials, from Join): its
  // certificate and key, and the cluster CA that checks the controller and
  // callers of the log service (mutual TLS). With `insecure`, `token` (the
  // node token) instead, on local credentials.
  std::string ca_pem, cert_pem, key_pem;
  bool insecure = false;
  std::string token;
  std::string name;
  std::string region;
  std::string zone = "default";
  std::string gpu_type;                // empty: NVML's name when GPUs are found
  int32_t gpus = -1;                   // -1: discover (NVML), 0 when none
  int64_t cpu_milli = 0;               // 0: the machine's
  int64_t memory_mib = 0;              // 0: the machine's
  std::string data_dir;                // runs, logs
  std::string listen = "127.0.0.1:0";  // log service
  bool enforce_limits = true;
  double heartbeat_interval_s = 0;  // 0: what the controller says
  // Workloads (see ProcessDriverOptions for the defaults' reasons).
  IdRange run_uids = {70000, 70999};     // a uid of its own per run
  IdRange tenant_gids = {71000, 71999};  // a gid per tenant
  bool run_as_agent_uid = false;         // true: work runs as the agent's uid, even as root
  std::string shared_dir;                // tenants' shared directories; empty: none
  std::string run_path;                  // workloads' PATH; empty: DefaultRunPath()
  // Variables of the agent's environment workloads get when set (and LANG, LC_ALL, TZ).
  std::vector<std::string> pass_env = {"MERIDIAN_DATA", "MERIDIAN_WAN_RTT_MS", "MERIDIAN_WAN_MBPS"};
};

// Workloads' PATH unless configured: the directory of the agent's own
// binary (workloads run `meridian` helpers), then the system's.
std::string DefaultRunPath();

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  // Prepares the driver, re-adopts runs, starts the log service.
  absl::Status Start();
  // Registers and reconciles until Stop(). Work keeps running after Stop.
  void Run();
  void Stop();
  // After Run() returned: SIGTERM every running run, SIGKILL after grace_s.
  void StopAllRuns(double grace_s);
  const std::string& address() const { return address_; }
  const std::string& limits_status() const { return driver_->limits_status(); }
  // Who workloads run as (ProcessDriver::isolation_status()).
  const std::string& isolation_status() const { return driver_->isolation_status(); }
  // The node's `limits`: the cgroup status, and a note when workloads are not isolated.
  std::string NodeLimits() const;

 private:
  struct RunInfo;
  struct Impl;
  // Sends one beat on the heartbeat stream (opened on first use; a reader
  // thread queues the controller's answers).
  grpc::Status Beat(const v1::HeartbeatRequest& req);
  grpc::Status CloseStream();
  // Applies the queued answers; false when the controller asks to register again.
  bool ApplyResponses();
  void Apply(const v1::HeartbeatResponse& resp);
  // Picks the run's GPUs (recorded in its directory) and sets
  // CUDA_VISIBLE_DEVICES and MERIDIAN_GPU_DEVICES. Unavailable while runs no
  // longer `wanted` still hold what it needs (try again later); another error
  // fails the launch.
  absl::Status AssignGpus(const v1::Assignment& a, const std::set<std::string>& wanted,
                          LaunchSpec* spec);
  void ProbeLoop();  // the readiness prober thread
  // Startup warnings for paths workloads need but their uid cannot reach.
  void WarnUnreachable(const ProcessDriverOptions& po) const;
  AgentOptions options_;
  std::unique_ptr<ProcessDriver> driver_;
  std::unique_ptr<Impl> impl_;
  std::string address_;
  std::atomic<bool> stop_{false};
};

}  // namespace meridian::agent
