// Control-plane subcommands of `meridian`: controller, agent, dev, job, node,
// region, and `bench submit` / `bench agents`. AddClusterCommands registers
// them on the CLI11 app; the chosen one stores its runner in *action.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "agent/agent.h"
#include "netemu/netemu.h"
#include "rpc/rpc.h"

namespace meridian::cli {

void AddClusterCommands(CLI::App& app, CLI::App* bench, std::function<int()>* action);

// Where the controller is and the token to use: flags, then MERIDIAN_CONTROLLER /
// MERIDIAN_TOKEN / MERIDIAN_TOKEN_FILE, then the files `meridian dev` and
// `meridian controller` write into their data dir (--data-dir or MERIDIAN_DATA_DIR).
// TLS: the cluster CA from --ca-file, MERIDIAN_CA_FILE, or DATA_DIR/tls/ca.crt
// (DATA_DIR/controller/tls/ca.crt for `meridian dev`); --insecure (or
// MERIDIAN_INSECURE=1) for a controller started with --insecure.
struct ClientConfig {
  std::string controller;
  std::string token;
  std::string token_file;
  std::string data_dir;
  std::string ca_file;
  bool insecure = false;
  std::string output = "table";  // or "json"
  double timeout_s = 10;
  rpc::Security security;  // filled by ResolveClient
};
absl::Status ResolveClient(ClientConfig* c, bool need_token = true);
// Just the transport part of ResolveClient (no token needed).
absl::Status ResolveSecurity(ClientConfig* c);

// Child processes of `meridian dev` and the benchmarks: this binary run with `args`.
struct Child {
  int pid = -1;
  std::string name;
};
absl::StatusOr<Child> SpawnSelf(const std::string& name, const std::vector<std::string>& args,
                                const std::string& log_path);
// SIGTERM, wait up to grace_s, then SIGKILL. Returns the exit status.
int StopChild(Child& c, double grace_s);
bool ChildAlive(const Child& c);
// Waits for `path` to exist and be non-empty; returns its content (trimmed).
absl::StatusOr<std::string> WaitForFile(const std::string& path, double timeout_s,
                                        const Child* watched);
absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode);

struct ControllerArgs {
  std::string listen = "127.0.0.1:0";
  std::string data_dir;
  std::string token_file;
  bool insecure = false;  // no TLS: local credentials, loopback only (logged as a warning)
  // The cluster's shared directory (default $MERIDIAN_SHARED_DIR): spec paths
  // that lead out of <shared>/<tenant> through a symlink are refused.
  std::string shared_dir;
  double heartbeat_interval_s = 1.0;
  double heartbeat_timeout_s = 5.0;
  int32_t master_port_base = 29500;  // ports reserved for gangs and endpoint replicas
};
int RunController(const ControllerArgs& a);

struct AgentArgs {
  ClientConfig client;
  // First start: a one-time join token buys the node its credential, kept
  // in STATE_DIR/credentials (0700) for later starts.
  std::string join_token_file;
  agent::AgentOptions opts;
  std::string cpu;
  std::string memory;
  bool no_limits = false;
  bool stop_work_on_exit = false;
  std::string run_uids = "70000-70999";     // --run-uids, parsed into opts.run_uids
  std::string tenant_gids = "71000-71999";  // --tenant-gids
};
int RunAgent(AgentArgs a);

struct DevArgs {
  int regions = 3;
  int nodes_per_region = 2;
  std::string data_dir = ".meridian-dev";
  std::string cpu_per_node = "2";
  std::string memory_per_node = "2Gi";
  int gpus_per_node = 0;
  std::string gpu_type = "t4";
  double heartbeat_timeout_s = 5.0;
  std::string demo;  // folder of job specs: submit, follow, summarise, stop
  double demo_timeout_s = 180;
  bool no_limits = false;
  double wan_rtt_ms = 0;  // > 0 or wan_mbps > 0: training traffic between regions
  double wan_mbps = 0;    // goes through netemu relays (MERIDIAN_WAN_* for replicas)
  bool insecure = false;  // controller and agents without TLS
  bool run_as_agent_uid = false;  // agents run work as their own uid (root), not isolated
  int32_t master_port_base = 29500;  // the controller's --master-port-base
};
int RunDev(const DevArgs& a);
// Submits every spec in `folder` to a running cluster, follows the jobs and
// prints a summary; exit 0 when every job succeeded.
int RunDemoImpl(const std::string& folder, double timeout_s, const ClientConfig& client,
                int expected_nodes);

// Runs a link emulator until SIGINT/SIGTERM; prints the bytes it carried.
int RunNetemu(const netemu::RelayOptions& options);

struct TrainArgs {
  std::string dataset = "digits";  // digits | synthetic | large | PATH.csv[.gz]
  int synthetic_samples = 0;       // 0: 2000 for synthetic, 24000 for large
  std::vector<int> hidden;         // empty: {64}, or {2048, 512} for large
  int epochs = 30;
  int batch = 32;
  double lr = 0.05;
  double test_fraction = 0.25;
  uint64_t seed = 1;
  bool json = false;
  bool quiet = false;
  // Distributed.
  bool standalone = false;  // launch `workers` local processes
  bool worker = false;      // internal: run one rank
  int workers = 6;
  int regions = 3;
  std::string mode = "allreduce";
  double wan_rtt_ms = 0;
  double wan_mbps = 0;
  double wan_loss = 0;
  int local_steps = 50;
  double outer_lr = 0.7;
  double outer_momentum = 0.5;
  std::string compression = "none";
  bool overlap = false;
  std::string shares = "dynamic";  // dynamic | equal
  int rebalance_every = 10;
  int slow_rank = -1;
  double slow_factor = 1.0;
  double target_accuracy = 0;
  int eval_every = 0;
  int eval_samples = 0;
  std::string checkpoint_dir;
  int checkpoint_every = 0;
  std::string work_dir;
  // Worker-only (set by the launcher; from the environment under Meridian).
  int rank = -1;
  std::string store;
  std::string rank_regions;
  std::string epoch;
  int fail_after_step = -1;
  bool relays = false;  // the store hands out netemu relays (standalone)
  std::string save;     // write the trained model here (for meridian serve)
};

struct ServeArgs {
  std::string model;
  std::string listen = "127.0.0.1:8080";
  int64_t max_body_bytes = 1 << 20;
  std::string address_file;  // written once listening (scripts, tests)
  double inject_delay_ms = 0;
  double inject_error_rate = 0;
  double drain_seconds = 0;  // after SIGTERM: /readyz 503, still serving, this long
  int threads = 4;
  double request_timeout_s = 10;
  double idle_timeout_s = 60;
  int64_t max_connections = 1024;
  std::string tls_cert, tls_key;  // PEM: HTTPS only
};
int RunServe(const ServeArgs& a);

struct GatewayArgs {
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> upstreams;  // HOST:PORT[@REGION[/ZONE]]
  std::string endpoint = "default";
  std::string token_file;              // bearer token for --upstream's endpoint
  std::string controller;              // learn endpoints from the controller instead
  std::string controller_token_file;
  std::string controller_ca_file;      // the cluster CA (default: --data-dir's)
  std::string data_dir;                // or find the controller here (meridian dev)
  std::string policy = "least_request";
  std::vector<std::string> policy_options;  // KEY=VALUE
  std::string region;
  std::string zone;
  int threads = 0;  // 0: one per usable CPU
  int retries = 1;
  double health_interval_s = 1.0;
  double health_timeout_s = 1.0;
  int consecutive_errors = 5;
  double slow_factor = 3.0;
  double slow_min_ms = 2.0;
  double base_ejection_s = 5.0;
  double max_ejected_percent = 50.0;
  double upstream_timeout_s = 30.0;
  int64_t max_body_bytes = 1 << 20;
  double request_timeout_s = 30;
  double idle_timeout_s = 120;
  int64_t max_connections = 10000;
  std::string tls_cert, tls_key;  // PEM: HTTPS only
  std::string upstream_ca;        // verifies https:// replicas
  std::string address_file;
  double sync_interval_s = 0.5;  // controller mode: endpoint list refresh and load reports
};
int RunGateway(const GatewayArgs& a);

struct PredictArgs {
  std::string server;    // HOST:PORT of meridian serve, or of a gateway
  std::string endpoint;  // through a gateway: POST /v1/endpoints/ENDPOINT/predict
  std::string token;     // bearer token of the endpoint
  std::string dataset = "digits";
  int samples = 200;
  uint64_t seed = 1;
};
int RunPredict(const PredictArgs& a);
// GET http://ADDRESS/TARGET; the body, or "" when it fails.
std::string HttpGet(const std::string& address, const std::string& target);
// The public data sets: $MERIDIAN_DATA; else the first of ../shared/data
// (from the working directory), ../../shared/data from the binary's folder,
// the checkout's ../shared/data (compiled in) that exists; an absolute path
// (replicas run in other directories). "../shared/data" when none exists.
std::string DataDir();
// The UCI digits CSV: DataDir()/sklearn-digits/digits.csv.gz.
std::string DigitsPath();
// `meridian train`: one process, `--standalone` workers on this machine, or
// one rank of a job (`--worker`).
int RunTrain(const TrainArgs& a);

struct BenchCollectiveArgs {
  int procs = 2;
  int64_t bytes = 16777216;
  int iters = 20;
  bool json = false;
  bool worker = false;  // internal
  int rank = 0;
  std::string store;
};
int RunBenchCollective(const BenchCollectiveArgs& a);
std::string SelfExePath();  // this binary

struct BenchSubmitArgs {
  int64_t jobs = 20000;
  int concurrency = 512;
  bool json = false;
  bool insecure = false;  // controller without TLS (to measure TLS's cost)
};
int RunBenchSubmit(const BenchSubmitArgs& a);

struct BenchAgentsArgs {
  int agents = 2000;
  double hz = 1.0;
  double seconds = 30;
  bool json = false;
  bool insecure = false;
  int insecure_connections = 8;  // --insecure: connections shared by the agents
};
int RunBenchAgents(const BenchAgentsArgs& a);

}  // namespace meridian::cli
