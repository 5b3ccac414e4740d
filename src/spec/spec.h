// Spec loading: YAML or JSON text -> validated, resolved Fleet / Workload.
//
// Every problem found is reported as a Diagnostic naming the file, the
// 1-based line and column of the offending node, the dotted field path
// (`node_groups[2].gpus`) and the reason, printed as
// `FILE:LINE:COL: field.path: reason`. Validation does not stop at the first
// problem: all problems of a document are collected. Unknown fields, wrong
// types, negative or zero sizes, numbers out of range, duplicate keys/names
// and references to unknown regions / zones / GPU types / datasets / tenants
// / priority classes are errors. JSON is parsed strictly (a JSON syntax error
// is reported with its line and column) and then validated like YAML.
// Functions here are pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/fleet.h"
#include "core/workload.h"

namespace meridian::spec {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string path;  // "jobs[3].shape.gpus"; empty for document-level problems
  std::string message;

  // "FILE:LINE:COL: path: message"
  std::string ToString() const;
};

enum class DocumentKind { kUnknown, kFleet, kWorkload, kJob };

// Reads `kind:` ("fleet" / "workload" / "job"), or infers it from the top-level keys
// (`regions` or `node_groups` -> fleet, `jobs` or `tenants` -> workload).
// kUnknown when the text does not parse or cannot be classified.
DocumentKind DetectKind(std::string_view text, std::string_view filename);

// Parses and validates a fleet. On any problem returns InvalidArgument whose
// message is the first diagnostic and appends all diagnostics to `diags`
// (which may be null).
absl::StatusOr<Fleet> ParseFleet(std::string_view text, std::string_view filename,
                                 std::vector<Diagnostic>* diags);

// Parses and validates a workload against `fleet` (GPU types, regions and
// datasets are resolved by name). With fleet == nullptr only the document's
// own structure is checked and fleet references are left unresolved; the
// result must not be scheduled then. Jobs without `tenant:` belong to the
// tenant "default", created on demand. Job ids are their index in `jobs`.
absl::StatusOr<Workload> ParseWorkload(std::string_view text, std::string_view filename,
                                       const Fleet* fleet, std::vector<Diagnostic>* diags);

// A control-plane job document (`kind: job`): the scheduling fields of one
// workload job (name, tenant, replicas, shape, gpu_types, duration, dataset,
// allowed_regions, allowed_zones, objective, cost_weight, spot,
// cross_region, priority, tolerations) plus how to run it: `command` (a list
// of arguments, or one string run by /bin/sh -c), `env` (NAME: value),
// `retries` (0..100), `backoff` (first retry delay, doubled per failure),
// `grace` (SIGTERM to SIGKILL on cancel) and `readiness_path` (an HTTP path
// the agent probes). Priority is an integer or low / normal / high (0, 50,
// 100). The job's tenant id is left 0: the caller maps `tenant` to its own.
struct JobSpec {
  Job job;
  std::string tenant = "default";
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;
  int32_t max_retries = 0;
  double backoff_s = 1.0;
  double grace_s = 10.0;
  // HTTP path the agent probes on MASTER_ADDR:MASTER_PORT while a replica
  // runs (a replica is ready once it answers 200); empty: ready when running.
  std::string readiness_path;
};
absl::StatusOr<JobSpec> ParseJobSpec(std::string_view text, std::string_view filename,
                                     const Fleet* fleet, std::vector<Diagnostic>* diags);

// A model endpoint (`kind: endpoint`, `meridian endpoint create -f FILE`):
// replicas of `meridian serve` that the controller keeps running, spread
// over regions, behind `meridian gateway`.
//
//   name: digits                       # letters, digits, '-'; in URLs and job names
//   model: models/digits.model         # relative: in the cluster's shared directory
//   replicas: 3                        # or {min: 2, max: 6} (autoscaled)
//   shape: {cpu: 500m, memory: 256Mi}  # per replica (default as shown)
//   regions: [us-east, eu-west]        # or [{region: us-east, weight: 2}, ...]; default all
//   autoscale: {target_in_flight: 4, scale_up_delay: 10s, scale_down_delay: 60s}
//   token: s3cret                      # clients send `Authorization: Bearer s3cret`
//
// Region names are checked by the controller against its registered nodes.
struct EndpointRegion {
  std::string name;
  double weight = 1;  // share of the replicas, relative to the other regions
};
struct EndpointSpec {
  std::string name;
  std::string tenant = "default";
  std::string model;
  std::string token;
  int32_t min_replicas = 1, max_replicas = 1;
  int64_t cpu_milli = 500, memory_mib = 256;
  int32_t gpus = 0;
  std::vector<EndpointRegion> regions;  // empty: every region
  double target_in_flight = 4;
  double scale_up_delay_s = 10;
  double scale_down_delay_s = 60;
  double min_ready_s = 1;  // a new replica serves this long before an old one is stopped
};
absl::StatusOr<EndpointSpec> ParseEndpointSpec(std::string_view text, std::string_view filename,
                                               std::vector<Diagnostic>* diags);

// File variants: read the file (error naming the path when unreadable), then parse.
absl::StatusOr<Fleet> LoadFleet(const std::string& path, std::vector<Diagnostic>* diags);
absl::StatusOr<Workload> LoadWorkload(const std::string& path, const Fleet* fleet,
                                      std::vector<Diagnostic>* diags);

// Reads a whole file; handles .gz transparently.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes a fleet back as a YAML fleet spec that ParseFleet accepts and that
// round-trips to an equal fleet (node groups, links, datasets).
std::string FleetToYaml(const Fleet& fleet);

}  // namespace meridian::spec
