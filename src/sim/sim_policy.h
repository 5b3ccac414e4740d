// Simulation policies: a name -> a complete scheduling configuration.
//
// A simulation policy is data, not code in the engine: it selects the queue
// policy, the placement profile (filters, scorers, selector), preemption and
// backfill, and optionally overrides every job's region objective. The
// simulator builds an unchanged placement::Scheduler from it. Built-ins are
// registered explicitly by RegisterBuiltinSimPolicies().
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "placement/scheduler.h"

namespace meridian::sim {

struct SimPolicy {
  std::string name;
  std::string description;
  SchedulerOptions scheduler;
  std::optional<Objective> objective;  // overrides each job's objective when set
  // The scheduler sees each job's true per-GPU-type speeds (TraceJob::speeds)
  // and plans with them; otherwise it treats every allowed type as speed 1.
  bool heterogeneity_aware = false;
  // Round mode (SimOptions::round_s > 0): the RoundAllocator that decides
  // every round's allocation (placement/round_allocator.h) and its options.
  // Empty: the policy's Scheduler runs once per round.
  std::string round_allocator;
  PolicyOptions round_options;
  // The policy resizes jobs that declare an elastic range (and, under the
  // goodput model, tunes their batch); others run jobs at the size they asked.
  bool elastic = false;
};

class SimPolicyRegistry {
 public:
  using Factory = std::function<SimPolicy()>;
  absl::Status Register(std::string name, Factory factory);
  absl::StatusOr<SimPolicy> Make(const std::string& name) const;
  // Makes the registered policy `name` use `allocator` in round mode.
  // Precondition: `name` is registered.
  void SetRoundAllocator(const std::string& name, std::string allocator);
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, Factory> factories_;
};

// fifo, sjf, tiresias, drf (queue policies); fgd, fgd_published, best_fit, dot_product,
// random (placement profiles for packing, FIFO queue); cheapest, fastest,
// meridian (region choice for the cross-region scenario); gavel
// (heterogeneity-aware FIFO: fastest GPU type by each job's true speeds);
// adaptive, adaptive_wan_blind (goodput-adaptive, round mode only).
// fifo, tiresias and gavel have round allocators of their own.
void RegisterBuiltinSimPolicies(SimPolicyRegistry& registry);

// One built-in policy by name (a registry of the built-ins, made for the call).
// NotFound naming the known policies.
absl::StatusOr<SimPolicy> MakeBuiltinSimPolicy(const std::string& name);

}  // namespace meridian::sim
