// Controller: owns the cluster's state and decisions.
//
// State lives in memory, mirrored to the Store (SQLite) before anything
// leaves the controller: a submitted job is durable before Submit answers, a
// replica's assignment is durable before an agent sees it, and a finished
// run is acknowledged to its agent only once its outcome is durable. After
// a restart everything is reloaded from the store; agents keep their work
// running and report it, and a run key (job, replica, attempt) is launched
// at most once by the agent that holds it, so nothing starts twice.
//
// Job state machine (meridian.v1.JobState):
//
//   PENDING ──placed──► SCHEDULED ──all replicas running──► RUNNING
//      ▲                   │                                  │
//      │ retry (backoff)   └──────────────┬───────────────────┘
//      │ / node lost / preempted          ▼
//      └──────────────────── a replica fails: retries left? ── no ──► FAILED
//                            all replicas exit 0 ──► SUCCEEDED
//   cancel from any non-final state ──► CANCELLED
//
// A gang is all-or-nothing: when one replica fails or its node is lost,
// every replica of the attempt is stopped and the job is placed again whole
// (attempt + 1). Retries after failures back off exponentially
// (backoff × 2^(failures-1)); re-placements after a lost node or preemption
// do not count as failures.
//
// Scheduling: a loop thread runs placement::Scheduler passes over a Fleet
// built from the registered nodes (one node group per node; cordoned nodes
// carry a taint nothing tolerates; NotReady nodes are unhealthy). The fleet
// and scheduler are rebuilt when the node set changes; running jobs are
// adopted with their allocations.
//
// Failure detection: a node that has not heartbeated for
// `heartbeat_timeout_s` becomes NotReady and its gangs are re-queued.
//
// Thread-safe: gRPC handlers call in from many threads; one mutex guards
// the state and is never held across a store commit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "core/fleet.h"
#include "meridian/v1/meridian.pb.h"
#include "placement/registry.h"
#include "placement/scheduler.h"
#include "spec/spec.h"
#include "store/store.h"

namespace meridian::controller {

struct ControllerOptions {
  double heartbeat_interval_s = 1.0;  // told to agents at registration
  double heartbeat_timeout_s = 5.0;   // missed for this long: node NotReady
  double loop_interval_s = 0.1;       // scheduling loop tick
  int32_t master_port_base = 29500;   // MASTER_PORT range for gangs
  int32_t master_port_count = 10000;
  std::string address;       // controller address, given to replicas
  size_t max_events = 8192;  // Watch history kept in memory
  bool start_loop = true;    // false: the caller drives Tick() (tests)
  // The cluster's shared directory (<shared>/<tenant>/PATH is what a spec's
  // paths name). Set: Submit refuses a path that leads out of the tenant's
  // directory through an existing symlink. Empty (default): no such check
  // (the parser's lexical checks still apply).
  std::string shared_dir;
};

// The host part of a node's address ("host:port", "[v6]:port"), where its
// replicas are reached; "127.0.0.1" when it has none.
std::string HostOfAddress(const std::string& address);

class Controller {
 public:
  // `store` and `clock` must outlive the controller.
  Controller(ControllerOptions options, store::Store* store, const Clock* clock);
  ~Controller();

  // Loads the store and starts the scheduling loop.
  absl::Status Start();
  void Stop();

  // ---- jobs ----
  using SubmitDone = std::function<void(absl::StatusOr<v1::Job>)>;
  // Decides whether the caller may submit a job of this tenant (and spec);
  // an error is returned to the caller and nothing is stored.
  using SubmitCheck = std::function<absl::Status(const spec::JobSpec&)>;
  // Validates and queues; `done` runs once the job is durable (or with
  // InvalidArgument naming the field, without storing anything).
  void Submit(const std::string& spec, const std::string& filename, SubmitDone done,
              const SubmitCheck& check = nullptr);
  absl::StatusOr<v1::Job> GetJob(uint64_t id) const;
  std::vector<v1::Job> ListJobs(const std::set<int>& states, size_t limit) const;
  absl::StatusOr<v1::Job> Cancel(uint64_t id);
  // Events with sequence > after, waiting up to timeout_s for one.
  std::vector<v1::JobEvent> WaitEvents(uint64_t after, uint64_t job_id, double timeout_s) const;
  // Sequence number of the newest event (0: none yet).
  uint64_t LatestEvent() const;
  // Where a replica's logs are: the agent's address, the run key, the node
  // and the attempt. `attempt` unset: the current attempt, or the latest
  // earlier one while the replica waits for a retry (where earlier attempts
  // ran is remembered in memory, not across a controller restart).
  struct LogLocation {
    std::string address, key, node;
    int32_t attempt = 0;
  };
  absl::StatusOr<LogLocation> LogSource(uint64_t id, int32_t replica,
                                        std::optional<int32_t> attempt = std::nullopt) const;
  // True while the replica may still produce output.
  bool ReplicaActive(uint64_t id, int32_t replica, const std::string& key) const;

  // ---- nodes and regions ----
  std::vector<v1::Node> ListNodes() const;
  absl::StatusOr<v1::Node> Cordon(const std::string& name, bool cordon);
  absl::StatusOr<v1::DrainResponse> Drain(const std::string& name);
  std::vector<v1::Region> ListRegions() const;

  // ---- agent protocol ----
  absl::StatusOr<v1::RegisterResponse> Register(const v1::Node& node);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req);

  // Runs one loop iteration now (tests drive the controller with a FakeClock).
  void Tick();
  // The address replicas get as MERIDIAN_CONTROLLER, once the server listens.
  void SetAddress(const std::string& address);
  // Opens a tenant's secret for an assignment (`env: {VAR: {secret: NAME}}`);
  // set before Start. Without one, secret variables are left out.
  using SecretResolver =
      std::function<absl::StatusOr<std::string>(const std::string& tenant, const std::string& name)>;
  void SetSecretResolver(SecretResolver resolver) { secrets_ = std::move(resolver); }
  // Mints the token of a run whose job names `service_account:` (the
  // assignment's service_token); set before Start. Without one, none is sent.
  using RunTokenMinter =
      std::function<std::string(const std::string& run_key, const std::string& account)>;
  void SetRunTokenMinter(RunTokenMinter minter) { run_tokens_ = std::move(minter); }
  // (service account, tenant) of live run `key` (j<id>-r<replica>-a<attempt>)
  // when its job names a service account; nullopt otherwise.
  std::optional<std::pair<std::string, std::string>> RunServiceAccount(const std::string& key) const;

 private:
  struct ReplicaEntry {
    store::ReplicaRecord rec;
    // The agent's last report: running and answering the job's
    // readiness_path (any running replica when the job has none). Not
    // durable: the next heartbeat says it again.
    bool ready = false;
    // Nodes of this replica's earlier attempts (attempt -> node), newest kept.
    std::map<int32_t, std::string> earlier_nodes;
  };
  struct JobEntry {
    store::JobRecord rec;
    spec::JobSpec spec;  // resolved against the current fleet
    std::vector<ReplicaEntry> replicas;
    bool in_scheduler = false;  // submitted to or adopted by scheduler_
    bool spec_ok = true;        // spec resolves against the current fleet
    uint64_t seq = 0;           // store batch of the latest write of this job
    uint64_t assign_seq = 0;    // store batch that assigned the current attempt
    std::string last_event;     // why the previous attempt ended (shown while waiting)
  };
  struct NodeEntry {
    store::NodeRecord rec;
    bool ready = false;
    double last_heartbeat_s = 0;
    NodeId id;                                        // in fleet_
    std::set<std::pair<uint64_t, int32_t>> replicas;  // (job, index) assigned here
  };

  // Everything below runs with mu_ held.
  bool IsFinal(int state) const;
  v1::Job ToProto(const JobEntry& j, bool with_spec) const;
  v1::Node ToProto(const NodeEntry& n) const;
  void Emit(const JobEntry& j);  // appends a watch event
  // Writes the job (and its replicas) into `batch` and marks it touched.
  void Persist(JobEntry& j, store::Batch* batch, bool replicas);
  // Enqueues the batch; touched jobs get its sequence number. Returns it (0: nothing).
  uint64_t Commit(store::Batch batch, store::Store::Done done = nullptr);

  void Loop();
  void RunPass();
  void DetectFailures(double now, store::Batch* batch);
  void Rebuild();
  void Assign(JobEntry& j, const Plan& plan, store::Batch* batch);
  void StopReplicas(JobEntry& j, const std::string& why);
  void RemoveFromScheduler(JobEntry& j);
  void ReleasePort(JobEntry& j);
  // Next attempt: replicas back to PENDING, job PENDING.
  void ResetReplicas(JobEntry& j);
  // A replica failed: stop the gang; retry after a backoff or fail the job.
  void EndAttempt(JobEntry& j, const std::string& why, store::Batch* batch);
  // Place again whole, now (lost node, drain, preemption); not a failure.
  void Requeue(JobEntry& j, const std::string& why, store::Batch* batch);
  int32_t AllocatePort();
  std::string RunKey(uint64_t job, int32_t replica, int32_t attempt) const;
  std::string NodeHost(const NodeEntry& n) const;
  v1::Assignment MakeAssignment(const JobEntry& j, const ReplicaEntry& r) const;

  ControllerOptions options_;
  store::Store* store_;
  const Clock* clock_;
  PolicyRegistry registry_;
  Rng rng_{7};

  mutable std::mutex mu_;
  mutable std::condition_variable events_cv_;
  std::condition_variable loop_cv_;
  bool stopping_ = false;
  bool dirty_ = true;           // something to schedule
  bool topology_dirty_ = true;  // node set / cordons changed: rebuild
  uint64_t next_job_id_ = 1;
  std::map<uint64_t, JobEntry> jobs_;
  std::map<std::string, NodeEntry> nodes_;
  std::vector<std::string> node_names_;  // fleet NodeId index -> name
  std::shared_ptr<const Fleet> fleet_;
  uint64_t fleet_generation_ = 0;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<std::string, TenantId> tenants_;
  std::set<int32_t> ports_in_use_;
  int32_t next_port_ = 0;
  std::set<uint64_t> unscheduled_;  // PENDING jobs not yet given to scheduler_
  std::vector<JobEntry*> touched_;  // persisted since the last Commit
  double last_pass_s_ = 0;
  std::deque<v1::JobEvent> events_;
  uint64_t next_event_ = 1;
  std::thread loop_;
  SecretResolver secrets_;
  RunTokenMinter run_tokens_;
};

}  // namespace meridian::controller
