// EndpointManager: model endpoints on top of the controller's jobs.
//
// An endpoint is a spec (`kind: endpoint`) and a desired replica count;
// each replica is a one-replica job `ep-NAME-gGEN-N` running
// `meridian serve --listen job` (it binds MASTER_ADDR:MASTER_PORT, the port
// the controller reserved for it), pinned by `allowed_regions` to one
// region and, where the region has several zones, by `allowed_zones` to one
// zone. A reconcile pass (Tick) compares the live replica jobs with the
// spec and submits or cancels jobs through the Controller's public API:
//   - spread: a new replica goes to the region with the fewest replicas
//     for its weight, among regions with a ready, uncordoned node; inside
//     it, to the zone with the fewest replicas among zones with a ready
//     node that has room for one (no zone has room: the region only, so
//     the replica takes the first room that frees anywhere in it);
//   - failover: a replica pinned to a region or zone with no ready node is
//     cancelled and replaced elsewhere (its own job would wait forever);
//   - readiness: a replica job carries `readiness_path: /readyz`, which its
//     agent probes; a replica is ready once it has answered 200 for
//     `min_ready` (counted again from the next 200 after a failed probe);
//   - rolling update (a new generation): one extra replica at a time; an
//     old one is stopped only once the replicas that are ready would still
//     number the desired count without it;
//   - autoscaling: gateways report requests in flight (ReportLoad); the
//     Autoscaler moves the desired count within min..max after the
//     scale-up or scale-down delay.
// Endpoint records are durable in the Store before Apply/Delete answer;
// replica jobs are ordinary durable jobs, found again by name on restart.
//
// Thread-safe: one mutex guards the state; it is never held while calling
// the controller or the store. Time comes from the injected Clock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "controller/controller.h"
#include "core/clock.h"
#include "meridian/v1/meridian.pb.h"
#include "spec/spec.h"
#include "store/store.h"

namespace meridian::controller {

// Replica count from load: ceil(in_flight / target), clamped to
// [min, max]; a change is made only after the wanted count has stayed
// above (below) the current one for the scale-up (scale-down) delay.
// Not thread-safe; pure apart from the times it is given.
class Autoscaler {
 public:
  // Returns the new desired count (== current when nothing changes).
  // `in_flight` is empty when no gateway has reported load lately: then the
  // count holds, and so do no pending delays. No report is not zero load (a
  // gateway restarting must not scale an endpoint down to its minimum).
  int32_t Decide(double now_s, std::optional<double> in_flight, int32_t current,
                 const spec::EndpointSpec& spec);
  std::string last_reason() const { return reason_; }

 private:
  double above_since_ = -1, below_since_ = -1;
  std::string reason_;
};

struct EndpointManagerOptions {
  double interval_s = 0.2;            // reconcile period
  double load_stale_s = 5.0;          // gateway reports older than this are ignored
  std::string meridian = "meridian";  // program name in replica commands
  bool start_loop = true;             // false: the caller drives Tick() (tests)
  // The cluster's shared directory: set, Apply refuses a `model` that leads
  // out of <shared>/<tenant> through an existing symlink; empty: no check.
  std::string shared_dir;
};

class EndpointManager {
 public:
  // `controller`, `store` and `clock` must outlive the manager.
  EndpointManager(EndpointManagerOptions options, Controller* controller, store::Store* store,
                  const Clock* clock);
  ~EndpointManager();    // Stop()
  absl::Status Start();  // loads the store, starts the loop
  void Stop();

  // Creates an endpoint, or updates one of the same name (a new generation
  // when the model, shape or regions change). Durable before it returns.
  // `check` (may be null) decides whether the caller may apply this spec
  // over the endpoint's current tenant ("" when it is new).
  using ApplyCheck =
      std::function<absl::Status(const spec::EndpointSpec&, const std::string& current_tenant)>;
  absl::StatusOr<v1::Endpoint> Apply(const std::string& spec, const std::string& filename,
                                     const ApplyCheck& check = nullptr);
  absl::StatusOr<v1::Endpoint> Get(const std::string& name) const;
  std::vector<v1::Endpoint> List() const;
  // Marks the endpoint deleted; its replicas are stopped by the next passes.
  absl::StatusOr<v1::Endpoint> Delete(const std::string& name);
  // Records each named endpoint's requests in flight for `report.gateway`.
  // INVALID_ARGUMENT, with nothing recorded, when any value is not a finite
  // number in 0..kMaxInFlight (validate.h) or the gateway id is empty.
  absl::Status ReportLoad(const v1::ReportLoadRequest& report);

  void Tick();  // one reconcile pass

  // Opens an endpoint's client token when its spec names a secret
  // (`token: {secret: NAME}`); set before Start.
  using SecretResolver =
      std::function<absl::StatusOr<std::string>(const std::string& tenant, const std::string& name)>;
  void SetSecretResolver(SecretResolver r) { secrets_ = std::move(r); }

 private:
  struct Child {
    uint64_t job_id = 0;
    int32_t generation = 0;
    std::string region;
    std::string zone;         // where it runs, else where it is pinned; empty: any
    std::string pinned_zone;  // from its spec; empty: any zone of its region
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    std::string node, address;
    bool answering = false;  // running, and its agent's readiness probe got 200
    bool ready = false;      // answering for the endpoint's min_ready
    int32_t failures = 0;    // failed attempts of its job
    std::string message;   // its job's last message
  };
  struct Entry {
    store::EndpointRecord rec;
    spec::EndpointSpec spec;
    Autoscaler autoscaler;
    std::map<std::string, std::pair<double, double>> loads;  // gateway -> (time, in flight)
    std::vector<Child> children;                             // from the last pass
    std::string message;                                     // status; last event
    std::string last_event;                                  // created, updated, moved, scaled
    int32_t next_child = 0;
  };

  v1::Endpoint ToProto(const Entry& e) const;
  std::string ChildSpec(const Entry& e, int32_t n, const std::string& region,
                        const std::string& zone) const;
  void Loop();

  EndpointManagerOptions options_;
  Controller* controller_;
  store::Store* store_;
  const Clock* clock_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> endpoints_;
  struct Pin {
    std::string region, zone;  // zone empty: any zone of the region
  };
  std::map<uint64_t, Pin> child_pin_;         // job id -> where its spec pins it (cache)
  std::map<uint64_t, double> running_since_;  // job id -> answering since
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread loop_;
  SecretResolver secrets_;
  absl::Status CheckModelFile(const spec::EndpointSpec& s, const std::string& filename) const;
};

}  // namespace meridian::controller
