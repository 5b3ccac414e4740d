// Round allocators tiresias, fifo and gavel (placement/round_allocator.h);
// adaptive is in adaptive_allocator.cc. Written from the descriptions in the
// Tiresias (NSDI '19), Gavel (OSDI '20) and Pollux (OSDI '21) papers and the
// behaviour of their public simulators, not from their code.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/clock.h"
#include "placement/policy/adaptive_allocator.h"
#include "placement/policy/round_common.h"
#include "placement/round_allocator.h"

namespace meridian {

namespace {

using round_internal::Allows;
using round_internal::FreeMap;
using round_internal::TakeMostFree;

double SpeedOn(const RoundJob& j, GpuTypeId t) {
  if (j.speeds.empty()) return 1;
  for (const auto& [type, speed] : j.speeds)
    if (type == t) return speed;
  return 0;
}

// ---------------------------------------------------------------- tiresias
class TiresiasAllocator final : public RoundAllocator {
 public:
  explicit TiresiasAllocator(double threshold) : threshold_(threshold) {}
  std::string_view name() const override { return "tiresias"; }

  std::vector<NodeGpus> Allocate(const RoundInput& in) override {
    const auto& jobs = *in.jobs;
    const auto& nodes = *in.nodes;
    absl::flat_hash_map<int32_t, size_t> index;
    for (size_t i = 0; i < jobs.size(); ++i) index[jobs[i].id.value()] = i;
    auto gone = [&](JobId id) { return !index.contains(id.value()); };
    std::erase_if(q0_, gone);
    std::erase_if(q1_, gone);
    for (auto it = st_.begin(); it != st_.end();)
      it = index.contains(it->first) ? std::next(it) : st_.erase(it);
    for (const RoundJob& j : jobs)
      if (!st_.contains(j.id.value())) {
        st_[j.id.value()] = State{};
        q0_.push_back(j.id);
      }
    // Service is counted in whole seconds of running between rounds; a job
    // whose GPU-time passes the threshold is demoted to the second queue.
    const int64_t now = int64_t(in.now_s);
    for (const RoundJob& j : jobs) {
      State& s = st_[j.id.value()];
      if (s.running) {
        s.executed += now - s.last_check;
        if (double(s.executed) * j.max_gpus >= threshold_) {
          auto it = std::find(q0_.begin(), q0_.end(), j.id);
          if (it != q0_.end()) {
            q0_.erase(it);
            q1_.push_back(j.id);
          }
        }
      }
      s.last_check = now;
    }
    int64_t gpus = 0;
    for (const RoundNode& n : nodes) gpus += n.healthy ? n.gpus : 0;
    std::vector<NodeGpus> out(jobs.size());
    std::vector<size_t> to_place;
    FreeMap fm(nodes);
    for (const auto* q : {&q0_, &q1_})
      for (JobId id : *q) {
        const size_t i = index[id.value()];
        State& s = st_[id.value()];
        s.running = jobs[i].max_gpus <= gpus;
        if (!s.running) continue;
        gpus -= jobs[i].max_gpus;
        if (!jobs[i].current.empty() && fm.Take(jobs[i].current))
          out[i] = jobs[i].current;
        else
          to_place.push_back(i);
      }
    for (size_t i : to_place) {
      out[i] = TakeMostFree(nodes, fm, jobs[i].max_gpus,
                            [&](const RoundNode& n) { return Allows(jobs[i], n.gpu_type); });
      if (out[i].empty()) st_[jobs[i].id.value()].running = false;  // other types cannot hold it
    }
    return out;
  }

 private:
  struct State {
    bool running = false;
    int64_t last_check = 0;
    int64_t executed = 0;  // seconds run
  };
  double threshold_;
  std::vector<JobId> q0_, q1_;
  std::map<int32_t, State> st_;
};

// ---------------------------------------------------------- fifo and gavel
// GPU types are visited in name order: fifo draws uniformly among the types
// that fit and gavel takes the fastest (ties to the first name), so neither
// depends on the order in which the fleet file lists types.
class TypedFifo final : public RoundAllocator {
 public:
  TypedFifo(bool aware, uint64_t seed, double reset_s)
      : aware_(aware), rng_(seed), reset_s_(reset_s) {}
  std::string_view name() const override { return aware_ ? "gavel" : "fifo"; }

  std::vector<NodeGpus> Allocate(const RoundInput& in) override {
    const auto& jobs = *in.jobs;
    const auto& nodes = *in.nodes;
    std::map<int32_t, int64_t> avail;  // GPU type id -> free GPUs
    for (const RoundNode& n : nodes)
      if (n.healthy && n.gpu_type.Valid()) avail[n.gpu_type.value()] += n.gpus;
    // Types by name, so that draws and ties do not follow the fleet file.
    std::vector<int32_t> types;
    for (const auto& [t, a] : avail) types.push_back(t);
    auto type_name = [&](int32_t t) -> std::string {
      return in.gpu_type_names != nullptr && size_t(t) < in.gpu_type_names->size()
                 ? (*in.gpu_type_names)[size_t(t)]
                 : std::to_string(t);
    };
    std::sort(types.begin(), types.end(),
              [&](int32_t a, int32_t b) { return type_name(a) < type_name(b); });
    absl::flat_hash_map<int32_t, size_t> index;
    std::set<int32_t> ids;
    for (size_t i = 0; i < jobs.size(); ++i) {
      index[jobs[i].id.value()] = i;
      ids.insert(jobs[i].id.value());
    }
    for (auto it = type_.begin(); it != type_.end();)
      it = index.contains(it->first) ? std::next(it) : type_.erase(it);
    // The set of jobs changed: recompute, but not more often than every
    // reset_s_ seconds (Gavel's minimum time between allocation resets);
    // until then new jobs wait and freed GPUs stay idle. When nothing would
    // run, recompute at once.
    dirty_ |= ids != ids_;
    ids_ = std::move(ids);
    const double reset = reset_s_ >= 0 ? reset_s_ : in.min_reallocation_s;
    const bool due = !reset_done_ || in.now_s - last_reset_s_ >= reset || type_.empty();
    if (!dirty_ || !due) return Place(in);
    dirty_ = false;
    reset_done_ = true;
    last_reset_s_ = in.now_s;
    if (aware_) type_.clear();  // re-decided at every reset
    for (const auto& [id, t] : type_) avail[t] -= jobs[index[id]].max_gpus;
    // Arrival order; a job that finds no type with room ends the round's
    // allocation (strict FIFO, as Gavel's FIFO policies).
    for (const RoundJob& j : jobs) {
      if (type_.contains(j.id.value())) continue;
      std::vector<int32_t> fits;
      for (int32_t t : types)
        if (avail[t] >= j.max_gpus && Allows(j, GpuTypeId(t))) fits.push_back(t);
      if (fits.empty()) break;
      int32_t pick = fits.front();
      if (aware_) {
        for (int32_t t : fits)
          if (SpeedOn(j, GpuTypeId(t)) > SpeedOn(j, GpuTypeId(pick))) pick = t;
      } else {
        pick = fits[size_t(rng_.Uniform(0, int64_t(fits.size()) - 1))];
      }
      type_[j.id.value()] = pick;
      avail[pick] -= j.max_gpus;
    }
    return Place(in);
  }

 private:
  std::vector<NodeGpus> Place(const RoundInput& in) {
    const auto& jobs = *in.jobs;
    const auto& nodes = *in.nodes;
    // Nodes: a job that stays on its type keeps its nodes; the others fill
    // the rest of their type, packed onto the fewest nodes.
    std::vector<NodeGpus> out(jobs.size());
    FreeMap fm(nodes);
    std::vector<size_t> moved;
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto it = type_.find(jobs[i].id.value());
      if (it == type_.end()) continue;
      bool same = !jobs[i].current.empty();
      for (const auto& [n, g] : jobs[i].current)
        same &= nodes[fm.pos[n.value()]].gpu_type.value() == it->second;
      if (same && fm.Take(jobs[i].current))
        out[i] = jobs[i].current;
      else
        moved.push_back(i);
    }
    for (size_t i : moved) {
      const int32_t t = type_[jobs[i].id.value()];
      out[i] = TakeMostFree(nodes, fm, jobs[i].max_gpus,
                            [&](const RoundNode& n) { return n.gpu_type.value() == t; });
      if (out[i].empty()) type_.erase(jobs[i].id.value());
    }
    return out;
  }

  bool aware_;
  Rng rng_;
  double reset_s_;
  std::map<int32_t, int32_t> type_;  // job id -> GPU type id it runs on
  std::set<int32_t> ids_;            // jobs seen at the last round
  bool dirty_ = false, reset_done_ = false;
  double last_reset_s_ = 0;
};

absl::Status ParsePositive(const PolicyOptions& o, const char* key, double* out) {
  auto it = o.find(key);
  if (it == o.end()) return absl::OkStatus();
  if (!absl::SimpleAtod(it->second, out) || !(*out > 0) || *out > 1e15)
    return absl::InvalidArgumentError(absl::StrCat(
        "round allocator option ", key, " must be a positive number, got '", it->second, "'"));
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> RoundAllocatorNames() { return {"adaptive", "fifo", "gavel", "tiresias"}; }

absl::StatusOr<std::unique_ptr<RoundAllocator>> MakeRoundAllocator(const std::string& name,
                                                                   const PolicyOptions& options,
                                                                   uint64_t seed) {
  if (name == "tiresias") {
    if (auto s = CheckKnownOptions(options, {"threshold_gpu_s"}, "round allocator tiresias");
        !s.ok())
      return s;
    double threshold = 16 * 3600.0;
    if (auto s = ParsePositive(options, "threshold_gpu_s", &threshold); !s.ok()) return s;
    return std::make_unique<TiresiasAllocator>(threshold);
  }
  if (name == "fifo" || name == "gavel") {
    if (auto s = CheckKnownOptions(options, {"reset_s"}, "round allocator fifo/gavel"); !s.ok())
      return s;
    double reset = -1;  // RoundInput::min_reallocation_s
    if (auto s = ParsePositive(options, "reset_s", &reset); !s.ok()) return s;
    return std::make_unique<TypedFifo>(name == "gavel", seed, reset);
  }
  if (name == "adaptive") return MakeAdaptiveAllocator(options);
  return absl::NotFoundError(absl::StrCat(
      "unknown round allocator '", name, "'; known: ", absl::StrJoin(RoundAllocatorNames(), ", ")));
}

}  // namespace meridian
