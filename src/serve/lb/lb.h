// Load balancing for the gateway: the policy interface, the host view a
// policy sees, and the registry that makes policies by name.
//
// A Policy chooses one host among the eligible ones (healthy, not ejected)
// for one request. Host state (requests in flight, latency, health,
// ejection) is kept by lb::Upstreams, which calls Pick under its own lock:
// a policy may keep state between picks (a round-robin cursor, a hash
// ring) without locking. Policies take an injected Rng, so a seeded run
// makes the same choices (tests/serve/lb_conformance_test.cc).
//
// Built-ins (RegisterBuiltinLbPolicies): round_robin, least_request (power
// of two choices, the default), least_loaded (full scan), consistent_hash,
// locality, prequal.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"

namespace meridian::lb {

// One replica as a policy sees it, a snapshot taken for this pick.
// Views into lb::Upstreams' state, valid during the Pick call.
struct Host {
  std::string_view id;      // "host:port", unique within an endpoint
  std::string_view region;  // where it runs ("" = unknown)
  int64_t in_flight = 0;          // requests this gateway has outstanding there
  int64_t probed_in_flight = -1;  // the replica's own count from its last probe (-1 = none)
  double latency_ms = 0;          // moving average of its answers (0 = none yet)
  std::string_view zone = "";     // zone inside its region (empty = unknown)
};

struct PickContext {
  std::string client_region;  // the caller's region ("" = unknown)
  std::string client_zone;    // the caller's zone in that region ("" = unknown)
  std::string affinity_key;   // requests with the same key prefer the same host
  // Hosts configured in the caller's region, and in its zone, eligible or
  // not: the locality policy's panic threshold compares the eligible ones
  // against them.
  int local_configured = 0;
  int zone_configured = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  // Returns the index in `hosts` of the chosen host. Precondition: `hosts`
  // is not empty; it lists the eligible hosts, in a stable order (by id).
  virtual size_t Pick(const std::vector<Host>& hosts, const PickContext& ctx, Rng& rng) = 0;
};

using LbOptions = std::map<std::string, std::string>;

class LbRegistry {
 public:
  using Factory = std::function<absl::StatusOr<std::unique_ptr<Policy>>(const LbOptions&)>;
  absl::Status Register(std::string name, std::string summary, Factory f);
  // InvalidArgument naming the policy and the known ones, or the bad option.
  absl::StatusOr<std::unique_ptr<Policy>> Make(const std::string& name,
                                               const LbOptions& options = {}) const;
  std::vector<std::string> Names() const;
  std::string Summary(const std::string& name) const;

 private:
  struct Entry {
    std::string summary;
    Factory factory;
  };
  std::map<std::string, Entry> entries_;
};

void RegisterBuiltinLbPolicies(LbRegistry& registry);

// Helpers for factories and policies.
absl::Status CheckLbOptions(const LbOptions& options, std::initializer_list<const char*> known,
                            const char* policy);
absl::StatusOr<double> LbOptionDouble(const LbOptions& options, const char* key, double fallback,
                                      double min, const char* policy);
// Expected wait on a host: (requests in flight + 1) x its latency, where a
// host without a latency yet counts as the mean of those with one (so it is
// neither shunned nor flooded). Lower is better.
double ExpectedCost(const Host& h, double mean_latency_ms);
double MeanLatency(const std::vector<Host>& hosts);
// Stable 64-bit hash (FNV-1a, then a SplitMix64 finaliser): the same on
// every run and machine, unlike std::hash or absl::Hash.
uint64_t StableHash(std::string_view s);

}  // namespace meridian::lb
