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

enum class DocumentKind { kUnknown, kFleet, kWorkload, kJob, kEndpoint };

// Reads `kind:` ("fleet" / "workload" / "job" or "training" / "endpoint"), or infers it from the top-level keys
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

// A path in the cluster's shared directory named by a spec (`training.save`,
// `training.checkpoint_dir`, a CSV `training.dataset`, an endpoint's
// `model`). The parser has checked it lexically: relative, no `..`
// component, no NUL or control character, at most kMaxPathBytes; it names
// `<shared>/<tenant>/<path>` (workloads resolve it against
// MERIDIAN_SHARED_DIR = `<shared>/<tenant>`). `field` and line/column
// locate it for errors found later (a symlink that leads out, checked by
// whoever knows the shared directory).
struct SharedPath {
  std::string field;  // "training.save"
  std::string path;   // as written
  int line = 0, column = 0;
};
inline constexpr size_t kMaxPathBytes = 1024;

// Limits on what a job runs, checked at submit: each `command` argument and
// each `env` value at most kMaxArgBytes, all of `command` and `env` (names,
// values, one byte each for the separators) at most kMaxCommandEnvBytes; no
// NUL anywhere; env names match [A-Za-z_][A-Za-z0-9_]*.
inline constexpr size_t kMaxArgBytes = 32 * 1024;
inline constexpr size_t kMaxCommandEnvBytes = 256 * 1024;

// A secret reference (`{secret: NAME}`): NAME matches [a-z0-9][a-z0-9-]{0,62}.
bool IsSecretName(std::string_view name);

// A control-plane job document (`kind: job`): the scheduling fields of one
// workload job (name, tenant, replicas, shape, gpu_types, duration, dataset,
// allowed_regions, allowed_zones, objective, cost_weight, spot,
// cross_region, priority, tolerations) plus how to run it: `command` (a list
// of arguments, or one string run by /bin/sh -c), `env` (NAME: value),
// or NAME: {secret: SECRET} for a value the controller fills from its secret
// store, listed in `secret_env`),
// `retries` (0..100), `backoff` (first retry delay, doubled per failure),
// `grace` (SIGTERM to SIGKILL on cancel) and `readiness_path` (an HTTP path
// the agent probes). Priority is an integer or low / normal / high (0, 50,
// 100). The job's tenant id is left 0: the caller maps `tenant` to its own.
struct JobSpec {
  Job job;
  std::string tenant = "default";
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;         // plain values
  std::vector<std::pair<std::string, std::string>> secret_env;  // (VAR, secret name)
  // The paths of a training job's block, in the order written.
  std::vector<SharedPath> shared_paths;
  int32_t max_retries = 0;
  double backoff_s = 1.0;
  double grace_s = 10.0;
  // HTTP path the agent probes on MASTER_ADDR:MASTER_PORT while a replica
  // runs (a replica is ready once it answers 200); empty: ready when running.
  std::string readiness_path;
  // `service_account: NAME`: the replicas get a token of that service
  // account (valid only while the run lives); empty: no controller credential.
  std::string service_account;
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
//   token: {secret: digits-token}      # ... or the token is a secret of the store
//
// `model` is a SharedPath (see above); `tenant` is one path component.
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
  std::string token_secret;              // `token: {secret: NAME}`: the secret's name (token empty)
  std::vector<SharedPath> shared_paths;  // `model`
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
// The same endpoint document with its literal `token:` replaced by
// `token: {secret: SECRET}` (re-emitted: comments and layout are not kept).
absl::StatusOr<std::string> ReplaceEndpointToken(std::string_view text, const std::string& secret);

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
