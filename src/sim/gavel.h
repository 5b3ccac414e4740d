// Gavel throughput tables: measured per-GPU-type job throughputs (Gavel,
// OSDI '20) turned into per-job true speeds for heterogeneity experiments.
//
// Gavel's table (../shared/data/gavel-throughputs, read at run time) maps a
// worker type (k80, p100, v100) and a key "('<job type>', <scale factor>)" to
// the job's throughput; its "null" entry is the throughput running alone
// (steps/s). ReadGavelThroughputs keeps only that isolated throughput for the
// three consolidated worker types; co-location pairs and the
// *_unconsolidated worker types are ignored. AssignGavelJobTypes does what
// Gavel's simulator does for Philly-derived traces: every job gets a job type
// drawn uniformly among those measured at its scale factor, and with it the
// type's speeds relative to a K80. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sim/trace.h"

namespace meridian::sim {

// The worker types read from the table; speeds are relative to the first.
inline constexpr const char* kGavelWorkerTypes[] = {"k80", "p100", "v100"};

struct GavelTable {
  // job type -> scale factor (1, 2, 4, 8) -> worker type -> isolated
  // throughput (steps/s). Invariant: every stored throughput is finite and
  // > 0 (Gavel stores 0 where a job does not fit a worker type; such
  // measurements are left out).
  using Workers = std::map<std::string, double>;  // worker type -> steps/s
  std::map<std::string, std::map<int32_t, Workers>> throughput;
};

// Reads a Gavel throughput JSON file (.json or .json.gz). Errors name the
// path: NotFound when unreadable, InvalidArgument on malformed JSON, a
// malformed job key, or when no worker type of kGavelWorkerTypes has a usable
// isolated throughput.
absl::StatusOr<GavelTable> ReadGavelThroughputs(const std::string& path);

// Gavel's scale factor for a job: its total GPUs rounded up to 1, 2, 4 or 8
// (more than 8 -> 8). 0 for a job that asks for no GPU.
int32_t GavelScaleFactor(const TraceJob& job);

// Gives every trace job that asks for GPUs a job type drawn uniformly (one
// seeded Rng, jobs in trace order) among the table's types measured on a K80
// at the job's scale factor, sets `model` to it and `speeds` to
// throughput(worker) / throughput(k80) for each worker type measured. A job
// whose type was not measured on some worker type (it does not fit there) and
// that names no GPU types is restricted to the measured ones. Jobs without
// GPUs are left unchanged. Deterministic for a seed. InvalidArgument when some
// scale factor a job needs has no usable entry (the trace is left unchanged).
absl::Status AssignGavelJobTypes(Trace& trace, const GavelTable& table, uint64_t seed);

}  // namespace meridian::sim
