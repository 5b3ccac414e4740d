// Trace readers: cluster job traces -> a list of TraceJobs for the simulator.
//
// Formats (all read at run time; the real data sets live in ../shared/data):
//   philly    Microsoft Philly as processed by Pollux: philly.csv[.gz] with
//             timestamp,duration,num_gpus,gpu_time,cluster. The file is not
//             sorted by time (a property of the data): jobs are sorted after reading.
//   openb     Alibaba openb pod list: name,cpu_milli,memory_mib,num_gpu,gpu_milli,
//             gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time.
//   csv       Meridian's own format (docs/traces.md): a header naming columns
//             name,submit_s,duration_s[,replicas,gpus,cpu,memory,tenant,gpu_types,priority];
//             rows sorted by submit_s.
//   jsonl     one JSON object per line with the csv field names.
//   pollux    a Pollux evaluation workload (philly-pollux/workloads/workload-N.csv).
//   gavel     a trace of Gavel's generator (tab-separated; see ReadGavelTrace).
//   synthetic N jobs: Poisson arrivals, heavy-tailed durations and sizes.
// Errors name the file and 1-based line. With `lenient`, bad lines are
// skipped and counted instead. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/workload.h"

namespace meridian::sim {

struct TraceJob {
  std::string name;
  double submit_s = 0;    // seconds from the trace's start (first job at 0 for philly/openb)
  double duration_s = 0;  // runtime at speed 1.0; > 0
  int32_t replicas = 1;   // gang size
  TaskShape shape;        // per replica
  std::string tenant;     // virtual cluster / queue / qos class; "" = default
  std::vector<std::string> gpu_types;  // allowed GPU types; empty = any
  int32_t priority = 0;
  // True relative speed per GPU type name (e.g. from Gavel's throughput table).
  // The simulator always runs the job at these speeds; only policies that are
  // heterogeneity-aware let the scheduler see them. Empty: speed 1 everywhere.
  std::map<std::string, double> speeds;
  std::string model;  // job type / application, when the trace has one
  // Global batch size the job asked for (pollux workloads; 0 = none). Under
  // the goodput job model, rigid policies train at this batch.
  int64_t batch_size = 0;
  // What an elastic job declares (`elastic: {min_replicas, max_replicas}`,
  // optionally a global batch range; max_replicas == 0: the job is rigid).
  // Elastic-aware policies (adaptive) may give it any GPU count in the range
  // and, under the goodput model, any batch in [min_batch, max_batch]
  // (0 = the profile's bound).
  struct Elastic {
    int32_t min_replicas = 0;
    int32_t max_replicas = 0;
    int64_t min_batch = 0;
    int64_t max_batch = 0;
  } elastic;
};

// Modelling a trace kind suggests (docs/results.md): what the artifact the
// trace comes from simulates, so that runs without explicit flags compare
// with it. The simulator's flags override each field.
struct TraceModelling {
  double round_s = 0;            // 0 = event-driven
  double restart_penalty_s = 0;  // charged on every start, resize, migration
  bool goodput = false;          // the goodput job model applies (profiles_dir)
  std::string profiles_dir;      // goodput profiles (pollux workloads)
  // Round mode: reallocate at most this often (s; 0 = every round). Gavel's
  // simulator resets allocations at most every 1920 s.
  double allocation_reset_s = 0;
};

struct Trace {
  std::string source;  // "philly:/path" etc.
  std::vector<TraceJob> jobs;  // sorted by submit_s (stable)
  int64_t skipped = 0;         // lenient mode: lines skipped
  std::vector<std::string> skipped_examples;  // first few "FILE:LINE: reason"
  TraceModelling modelling;
};

struct TraceOptions {
  bool lenient = false;
  int64_t limit = 0;  // keep only the first `limit` jobs (by submit time); 0 = all
  // Philly jobs larger than this become gangs of ceil(num_gpus / gpus_per_replica)
  // replicas of gpus_per_replica GPUs (a Philly node has 8 GPUs).
  int32_t gpus_per_replica = 8;
  // CPU and memory per GPU for traces that have none (philly, synthetic).
  int64_t cpu_milli_per_gpu = 4000;
  int64_t memory_mib_per_gpu = 16384;
  uint64_t seed = 1;  // synthetic
  // gavel traces: Gavel's throughput table (empty: the default beside the
  // trace, ../gavel-throughputs/simulation_throughputs.json.gz).
  std::string gavel_throughputs;
};

absl::StatusOr<Trace> ReadPhillyTrace(const std::string& path, const TraceOptions& options);
absl::StatusOr<Trace> ReadOpenbTrace(const std::string& path, const TraceOptions& options);
absl::StatusOr<Trace> ReadCsvTrace(const std::string& path, const TraceOptions& options);
absl::StatusOr<Trace> ReadJsonlTrace(const std::string& path, const TraceOptions& options);
// Pollux evaluation workload (name,time,application,num_replicas,batch_size),
// durations estimated from the Pollux profiles in `profiles_dir` (default:
// ../../pollux-goodput-profiles relative to the workload file); one replica
// per GPU. See trace_pollux.cc for the estimate.
absl::StatusOr<Trace> ReadPolluxWorkload(const std::string& path, const std::string& profiles_dir,
                                         const TraceOptions& options);

struct SyntheticTraceOptions {
  int64_t jobs = 1000;
  double arrivals_per_hour = 600;     // Poisson
  double median_duration_s = 1200;    // log-normal durations
  double duration_sigma = 1.5;
  int32_t max_gpus = 64;              // sizes: powers of two, P(2^k) ~ 0.3^k
  double fractional_share = 0.0;      // jobs asking for a fraction of one GPU
  int32_t tenants = 4;                // "tenant-0" ...
  uint64_t seed = 1;
};
Trace SyntheticTrace(const SyntheticTraceOptions& options, const TraceOptions& trace_options);

// Gavel generator trace (scheduler/scripts/utils/generate_trace.py): one job
// per line, tab-separated: job_type, command, working_directory,
// num_steps_arg, needs_data_dir, total_steps, scale_factor, priority_weight,
// SLO, arrival_time. Each job runs scale_factor single-GPU replicas; its
// speeds come from Gavel's throughput table (options.gavel_throughputs):
// duration_s = total_steps / isolated throughput on the first worker type
// of k80, p100, v100 that measured it, speeds relative to that type, and
// gpu_types the measured types. Suggests 360 s rounds, no restart cost (as
// Gavel's simulator). Defined in gavel.cc.
absl::StatusOr<Trace> ReadGavelTrace(const std::string& path, const TraceOptions& options);

// "KIND:PATH" (philly, openb, csv, jsonl, pollux, gavel) or "synthetic:N". InvalidArgument
// naming the accepted kinds on anything else.
absl::StatusOr<Trace> ReadTrace(const std::string& spec, const TraceOptions& options);

}  // namespace meridian::sim
