// The `meridian` subcommands. main.cc parses flags (CLI11) into these option
// structs and calls Run*; each returns the process exit code. Flags and
// config files are parsed only in cli/ (DESIGN.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace meridian::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;  // invalid input (specs, flags)
inline constexpr int kExitError = 2;    // could not run (I/O, internal)

// Seconds on the monotonic clock, for the commands' waits and deadlines.
inline double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct ValidateArgs {
  std::vector<std::string> files;
  bool json = false;
};
int RunValidate(const ValidateArgs& args);

struct PlaceArgs {
  std::string fleet;
  std::string jobs;
  bool json = false;
  uint64_t seed = 1;
  std::string selector = "max_score";
  std::vector<std::string> scorers;  // "name" or "name=weight"; empty = defaults
  bool no_preemption = false;
  bool no_backfill = false;
  int max_candidates = 16;
};
int RunPlace(const PlaceArgs& args);

struct BenchPlacementArgs {
  int32_t nodes = 10000;
  int64_t tasks = 100000;
  int32_t gang = 1;
  int32_t regions = 4;
  double target_utilization = 0.85;
  int max_candidates = 16;
  uint64_t seed = 1;
  bool json = false;
};
int RunBenchPlacement(const BenchPlacementArgs& args);

struct ImportArgs {
  std::string source;  // "openb" or "gcp"
  std::string input;   // openb node csv, or gcp price csv
  std::string skyplane_dir;
  std::vector<std::string> regions;
  std::vector<std::string> gpu_types;
  int32_t nodes_per_group = 4;
  std::string output;  // "-" = stdout
  int32_t synthetic_regions = 4;
  uint64_t seed = 1;
};
int RunImport(const ImportArgs& args);

int RunPolicies(bool json);

struct SimArgs {
  std::string fleet;
  std::string trace;  // KIND:PATH or synthetic:N
  std::vector<std::string> policies;
  std::string json_out;
  std::string report_out;
  std::string scenario;
  uint64_t seed = 1;
  bool lenient = false;
  int64_t limit = 0;
  bool no_departures = false;
  double mtbf_s = 0;
  bool datasets = false;
  double residency_share = 0;
  double max_time_s = 0;
  double inflate = 0;
  // Arrival study (FGD's method): arrivals in a random order from this seed
  // (-1 = trace order), over `seeds` orders.
  int64_t shuffle = -1;
  int32_t seeds = 1;
  std::vector<std::string> gpu_speeds;  // TYPE=SPEED
  std::string gavel;  // Gavel throughput table: per-job types and true speeds
  // Modelling; < 0 / empty = what the trace kind suggests (Trace::modelling).
  double round_s = -1;
  double restart_penalty_s = -1;
  double reallocation_s = -1;
  std::string job_model;     // fixed | goodput
  std::string profiles_dir;  // goodput profiles (default: the trace's)
  bool quiet = false;
};
int RunSim(const SimArgs& args);

}  // namespace meridian::cli
