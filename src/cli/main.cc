// meridian: the one binary. Parses flags and dispatches to cli/commands.h.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "cli/cluster.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace meridian::cli;
  // Debian builds Abseil with its debug checks, so every absl::Mutex (gRPC's
  // locks are absl::Mutex) records a lock graph for deadlock detection: 12%
  // of the controller's CPU under 2,000 agent streams (perf). Off, unless
  // MERIDIAN_DEADLOCK_DETECTION=1 asks for it.
  if (const char* d = std::getenv("MERIDIAN_DEADLOCK_DETECTION"); d == nullptr || *d != '1')
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "Meridian: one scheduler for GPU fleets across regions and clouds.\n"
      "Run a cluster (controller, agents, dev), submit and follow jobs, validate specs, place jobs\n"
      "with reasons, simulate policies on traces, import fleets from public data, benchmark."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "meridian 0.1.0");

  ValidateArgs va;
  auto* validate = app.add_subcommand(
      "validate", "Check fleet and workload specs (YAML or JSON). Prints FILE:LINE:COL: field: reason");
  validate->add_option("files", va.files, "Spec files; fleets are checked first and workloads are "
                                          "resolved against the fleet given alongside them")
      ->required();
  validate->add_flag("--json", va.json, "Print one JSON object with every diagnostic");

  PlaceArgs pa;
  auto* place = app.add_subcommand(
      "place", "Place a job mix on a fleet: region(s), nodes and scores per job; reasons per "
               "region for jobs that wait");
  place->add_option("--fleet", pa.fleet, "Fleet spec (YAML/JSON)")->required();
  place->add_option("--jobs", pa.jobs, "Workload spec (YAML/JSON)")->required();
  place->add_flag("--json", pa.json, "Machine-readable output");
  place->add_option("--seed", pa.seed, "Seed for randomised policies")->capture_default_str();
  place->add_option("--selector", pa.selector, "Selector policy (see `meridian policies`)")
      ->capture_default_str();
  place->add_option("--scorer", pa.scorers,
                    "Scorer as NAME or NAME=WEIGHT; repeat for several (replaces the defaults)");
  place->add_flag("--no-preemption", pa.no_preemption, "Never evict running jobs");
  place->add_flag("--no-backfill", pa.no_backfill, "Disable EASY backfill reservations");
  place->add_option("--max-candidates", pa.max_candidates, "Nodes scored per replica")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));

  auto* bench = app.add_subcommand("bench", "Benchmarks (results go to docs/benchmarks.md)");
  bench->require_subcommand(1);
  BenchPlacementArgs ba;
  auto* bp = bench->add_subcommand(
      "placement", "Placement decisions per second and latency on a synthetic fleet with churn");
  bp->add_option("--nodes", ba.nodes, "Fleet size")->capture_default_str()->check(CLI::Range(1, 2000000));
  bp->add_option("--tasks", ba.tasks, "Placement decisions (one gang each)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  bp->add_option("--gang", ba.gang, "Replicas per decision")->capture_default_str()->check(CLI::Range(1, 4096));
  bp->add_option("--regions", ba.regions, "Regions in the fleet")->capture_default_str()->check(CLI::Range(1, 1000));
  bp->add_option("--utilization", ba.target_utilization,
                 "GPU utilization kept by releasing the oldest placements")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 0.99));
  bp->add_option("--max-candidates", ba.max_candidates, "Nodes scored per replica")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  bp->add_option("--seed", ba.seed, "Seed")->capture_default_str();
  bp->add_flag("--json", ba.json, "Print one JSON object");

  ImportArgs ia;
  auto* imp = app.add_subcommand("import", "Build a fleet spec from public data (read at run time)");
  imp->require_subcommand(1);
  auto* openb = imp->add_subcommand("openb", "Alibaba openb node list -> one-region fleet");
  openb->add_option("--nodes", ia.input, "openb_node_list_*.csv")->required();
  openb->add_option("-o,--output", ia.output, "Output YAML ('-' = stdout)")->capture_default_str();
  auto* gcp = imp->add_subcommand(
      "gcp", "GCP GPU prices + Skyplane inter-region measurements -> multi-region fleet");
  gcp->add_option("--prices", ia.input, "gcp_gpu_instance_prices.csv")->required();
  gcp->add_option("--skyplane", ia.skyplane_dir, "Folder with latency.csv, throughput.csv.gz, cost.csv")
      ->required();
  gcp->add_option("--region", ia.regions, "Region to include (repeat; default: all measured)");
  gcp->add_option("--gpu-type", ia.gpu_types, "GPU type to include (repeat; default: all)");
  gcp->add_option("--nodes-per-group", ia.nodes_per_group, "Nodes per (region, GPU type)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  gcp->add_option("-o,--output", ia.output, "Output YAML ('-' = stdout)")->capture_default_str();
  auto* synth = imp->add_subcommand("synthetic", "A synthetic multi-region fleet (seeded)");
  synth->add_option("--nodes", ia.nodes_per_group, "Nodes in the fleet")
      ->required()
      ->check(CLI::Range(1, 2000000));
  synth->add_option("--regions", ia.synthetic_regions, "Regions")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  synth->add_option("--seed", ia.seed, "Seed")->capture_default_str();
  synth->add_option("-o,--output", ia.output, "Output YAML ('-' = stdout)")->capture_default_str();
  ia.output = "-";

  SimArgs sa;
  auto* simc = app.add_subcommand(
      "sim", "Replay a cluster trace through scheduling policies on a virtual clock");
  simc->add_option("--fleet", sa.fleet, "Fleet spec (YAML/JSON)")->required();
  simc->add_option("--trace", sa.trace,
                   "KIND:PATH with KIND philly, openb, csv, jsonl, pollux or gavel; or synthetic:N")
      ->required();
  simc->add_option("--policy", sa.policies, "Policy to run (repeat to compare; see --help)")
      ->required();
  simc->add_option("--json", sa.json_out, "Write results as JSON to this file");
  simc->add_option("--report", sa.report_out, "Write a self-contained HTML report to this file");
  simc->add_option("--scenario", sa.scenario, "Title for the report");
  simc->add_option("--seed", sa.seed, "Seed for every random draw")->capture_default_str();
  simc->add_flag("--lenient", sa.lenient, "Skip and count bad trace lines instead of failing");
  simc->add_option("--limit", sa.limit, "Use only the first N jobs of the trace")
      ->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  simc->add_flag("--no-departures", sa.no_departures,
                 "Jobs never finish: measure allocation as load grows (openb/FGD scenario)");
  simc->add_option("--mtbf", sa.mtbf_s, "Mean seconds between failures per node (0 = none)")
      ->check(CLI::Range(0.0, 1e12));
  simc->add_flag("--datasets", sa.datasets,
                 "Give each job one of the fleet's datasets (cross-region scenario)");
  simc->add_option("--residency-share", sa.residency_share,
                   "With --datasets: share of jobs confined to their dataset's home region")
      ->check(CLI::Range(0.0, 1.0));
  simc->add_option("--max-time", sa.max_time_s, "Stop at this virtual time (s)")
      ->check(CLI::Range(0.0, 1e12));
  simc->add_option("--inflate", sa.inflate,
                   "Repeat the trace until its GPU demand reaches this multiple of the fleet's GPUs")
      ->check(CLI::Range(0.0, 100.0));
  simc->add_option("--shuffle", sa.shuffle,
                   "Arrivals in a random order drawn from this seed, one pod at a time (FGD's "
                   "--shuffle-pod); with --no-departures and --inflate, reports unallocated GPUs "
                   "at 90..130% arrived")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 62));
  simc->add_option("--seeds", sa.seeds,
                   "With --shuffle: average this many orders (seeds SEED, SEED+1, ...)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  simc->add_option("--gpu-speed", sa.gpu_speeds,
                   "TYPE=SPEED relative speed for jobs that name no GPU type (repeat)");
  simc->add_option("--gavel", sa.gavel,
                   "Gavel throughput table (JSON[.gz]): give each job a random Gavel job type and "
                   "its measured k80/p100/v100 speeds; with a gavel: trace, the table its job "
                   "types are looked up in");
  simc->add_option("--round-s", sa.round_s,
                   "Scheduling round in seconds (0 = event-driven: a pass at every arrival and "
                   "completion). Default: the trace kind's (pollux 60, gavel 360, others 0)")
      ->check(CLI::Range(0.0, 1e9));
  simc->add_option("--restart-penalty-s", sa.restart_penalty_s,
                   "Seconds without progress a job pays at every start, resize, migration and "
                   "restart after preemption. Default: the trace kind's (pollux 30, others 0)")
      ->check(CLI::Range(0.0, 1e9));
  simc->add_option("--reallocation-s", sa.reallocation_s,
                   "Round mode: fifo and gavel reallocate at most this often (0 = every round a "
                   "job came or went). Default: the trace kind's (gavel 1920, as Gavel's "
                   "simulator; others 0)")
      ->check(CLI::Range(0.0, 1e9));
  simc->add_option("--job-model", sa.job_model,
                   "fixed (each job runs its trace duration at its GPU type's speed) or goodput "
                   "(progress per second from the Pollux profiles by GPUs, nodes spanned and "
                   "batch; needs --round-s > 0). Default: goodput for pollux traces, else fixed")
      ->check(CLI::IsMember({"fixed", "goodput"}));
  simc->add_option("--profiles", sa.profiles_dir,
                   "Goodput profiles directory (default: the pollux trace's "
                   "../../pollux-goodput-profiles)");
  simc->add_flag("-q,--quiet", sa.quiet, "No progress bar, no summary table");
  simc->footer(
      "Policies: fifo, sjf, tiresias, drf (queueing); fgd, fgd_published, best_fit, dot_product, "
      "random "
      "(packing);\ncheapest, fastest, meridian (region choice); gavel (heterogeneity-aware, "
      "with --gavel or a gavel: trace).\nRound mode (--round-s > 0): fifo, tiresias, gavel, "
      "adaptive (goodput-adaptive, resizes elastic jobs), adaptive_wan_blind reallocate every "
      "round;\nthe others run their scheduler once per round. Modelling flags and their "
      "defaults per trace kind: docs/traces.md.");

  bool policies_json = false;
  auto* pol = app.add_subcommand("policies", "List the registered filters, scorers and selectors");
  pol->add_flag("--json", policies_json, "Machine-readable output");

  std::function<int()> action;
  AddClusterCommands(app, bench, &action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (action) return action();
  if (*validate) return RunValidate(va);
  if (*place) return RunPlace(pa);
  if (*bp) return RunBenchPlacement(ba);
  if (*openb) {
    ia.source = "openb";
    return RunImport(ia);
  }
  if (*gcp) {
    ia.source = "gcp";
    return RunImport(ia);
  }
  if (*synth) {
    ia.source = "synthetic";
    return RunImport(ia);
  }
  if (*pol) return RunPolicies(policies_json);
  if (*simc) return RunSim(sa);
  return kExitInvalid;
}
