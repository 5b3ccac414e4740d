// Round mode: every round_s seconds (at whole multiples of it) the policy's
// RoundAllocator (for event-driven policies, their Scheduler run once per
// round) decides every active job's GPUs; the simulator applies the
// changes (a job whose GPUs changed pays SimOptions::restart_penalty_s
// before it progresses again), then advances every running job by one round:
//   fixed model    work left -= seconds x speed of its slowest GPU type
//                  (x GPUs held / GPUs asked for, when an elastic policy
//                  resized it);
//   goodput model  statistical progress += seconds x goodput at its
//                  placement, batch and epoch (sim/goodput.h).
// A job finishing inside a round finishes at that exact time; its GPUs are
// reused from the next round on, and jobs that arrive inside a round wait for
// the next one (as the Pollux and Gavel simulators do).
//
// Across regions (goodput model): a job whose GPUs span regions syncs
// gradients over the slowest link between them: its sync time is multiplied
// by kIntraRegionGbps / the link's Gbit/s and one RTT is added per step
// (hierarchical aggregation: region leaders exchange once per step).
#include "sim/rounds.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "placement/registry.h"
#include "placement/round_allocator.h"

namespace meridian::sim::internal {

namespace {

// Network of one node inside a region (the Pollux testbed's g4dn.12xlarge
// has 50 Gbit/s), against which a WAN link's bandwidth is compared.
constexpr double kIntraRegionGbps = 50;
// An unmeasured link between two regions of the fleet.
constexpr double kUnknownLinkGbps = 1;
constexpr double kUnknownLinkRttMs = 100;

struct JobRun {
  const TraceJob* tj = nullptr;
  const GoodputApp* app = nullptr;  // goodput model; null: fixed duration
  int32_t min_gpus = 1, max_gpus = 1;
  BatchRange range;
  double remaining = 0;  // fixed model: work left at speed 1
  GoodputJobState gs;
  NodeGpus current;
  double penalty_left = 0;
  double speed = 1;  // fixed model: pace of the current allocation
  GoodputPlacement gp;
  double cost_rate = 0;  // $/s of the current allocation
  double attained_gpu_s = 0;
  int32_t restarts = 0;
  bool started = false, finished = false;
};

int32_t TotalGpus(const NodeGpus& a) {
  int32_t t = 0;
  for (const auto& [node, g] : a) t += g;
  return t;
}

bool Same(NodeGpus a, NodeGpus b) {
  if (a.size() != b.size()) return false;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

struct WanPenalty {
  double factor = 1;
  double extra_s = 0;
};

WanPenalty PenaltyOf(const Fleet& fleet, const std::set<int32_t>& regions) {
  WanPenalty p;
  if (regions.size() < 2) return p;
  double gbps = INFINITY, rtt = 0;
  for (int32_t a : regions)
    for (int32_t b : regions) {
      if (a >= b) continue;
      const Link& l = fleet.link(RegionId(a), RegionId(b));
      const double g = l.known && l.gbps > 0 ? l.gbps : kUnknownLinkGbps;
      const double r = l.known ? l.rtt_ms : kUnknownLinkRttMs;
      if (g < gbps) gbps = g, rtt = r;
    }
  p.factor = std::max(1.0, kIntraRegionGbps / gbps);
  p.extra_s = rtt / 1000.0;
  return p;
}

// Round mode for the event-driven policies (sjf, drf, fgd, ...): their
// unchanged Scheduler, asked for one pass per round. It places rigid jobs
// and keeps them where they are (no migration or resize); it preempts only
// as its policy does. Jobs are the simulator's, by id.
class SchedulerAllocator final : public RoundAllocator {
 public:
  SchedulerAllocator(const Workload* w, uint64_t seed) : w_(w), clock_(0), rng_(seed) {}
  absl::Status Init(const Fleet& fleet, const SimPolicy& policy) {
    PolicyRegistry registry;
    RegisterBuiltinPolicies(registry);
    auto s = Scheduler::Create(&fleet, registry, policy.scheduler, &clock_, &rng_);
    if (!s.ok()) return s.status();
    sched_ = *std::move(s);
    for (const Tenant& t : w_->tenants)
      if (auto st = sched_->AddTenant(t); !st.ok()) return st;
    return absl::OkStatus();
  }
  std::string_view name() const override { return "scheduler"; }
  std::vector<NodeGpus> Allocate(const RoundInput& in) override {
    clock_.Set(in.now_s);
    std::set<int32_t> ids;
    for (const RoundJob& j : *in.jobs) ids.insert(j.id.value());
    for (auto it = submitted_.begin(); it != submitted_.end();) {
      if (ids.contains(*it)) {
        ++it;
        continue;
      }
      const JobId id(*it);
      (void)(sched_->IsRunning(id) ? sched_->Finish(id) : sched_->Remove(id));
      it = submitted_.erase(it);
    }
    for (const RoundJob& j : *in.jobs)
      if (submitted_.insert(j.id.value()).second)
        (void)sched_->Submit(w_->jobs[size_t(j.id.value())]);
    (void)sched_->Schedule();
    std::vector<NodeGpus> out(in.jobs->size());
    for (size_t k = 0; k < in.jobs->size(); ++k) {
      std::map<int32_t, int32_t> by_node;
      for (const Allocation& a : sched_->allocations((*in.jobs)[k].id))
        by_node[a.node.value()] += int32_t((a.resources.gpu_milli + 999) / 1000);
      for (const auto& [node, g] : by_node)
        if (g > 0) out[k].push_back({NodeId(node), g});
    }
    return out;
  }

 private:
  const Workload* w_;
  FakeClock clock_;
  Rng rng_;
  std::unique_ptr<Scheduler> sched_;
  std::set<int32_t> submitted_;
};

}  // namespace

absl::StatusOr<PolicyResult> RunRoundSimulation(const Fleet& fleet, const Trace& trace,
                                                const SimPolicy& policy, const SimOptions& options,
                                                const ProgressFn& progress) {
  const auto wall0 = std::chrono::steady_clock::now();
  if (options.node_mtbf_s > 0)
    return absl::InvalidArgumentError("node failures are not simulated in round mode (--round-s)");
  if (!options.departures)
    return absl::InvalidArgumentError("--no-departures is not supported in round mode");
  const double R = options.round_s;
  Workload w = TraceToWorkload(fleet, trace, policy, options);
  const size_t n = w.jobs.size();
  std::unique_ptr<RoundAllocator> alloc_ptr;
  if (policy.round_allocator.empty()) {
    auto sa = std::make_unique<SchedulerAllocator>(&w, options.seed);
    if (auto st = sa->Init(fleet, policy); !st.ok()) return st;
    alloc_ptr = std::move(sa);
  } else {
    auto alloc_or = MakeRoundAllocator(policy.round_allocator, policy.round_options, options.seed);
    if (!alloc_or.ok()) return alloc_or.status();
    alloc_ptr = *std::move(alloc_or);
  }
  RoundAllocator& allocator = *alloc_ptr;

  std::vector<RoundNode> nodes;
  int32_t node_gpus = 1;
  for (size_t i = 0; i < fleet.nodes().size(); ++i) {
    const Node& nd = fleet.nodes()[i];
    nodes.push_back({NodeId(int32_t(i)), nd.region, nd.gpu_type, nd.gpus, nd.healthy});
    node_gpus = std::max(node_gpus, nd.gpus);
  }
  std::set<int32_t> all_regions;
  for (const RoundNode& nd : nodes)
    if (nd.gpus > 0) all_regions.insert(nd.region.value());
  const WanPenalty worst_wan = PenaltyOf(fleet, all_regions);
  const std::vector<std::string>& type_names = fleet.gpu_types();

  std::vector<JobRun> js(n);
  for (size_t i = 0; i < n; ++i) {
    JobRun& s = js[i];
    const TraceJob& tj = trace.jobs[i];
    s.tj = &tj;
    s.remaining = tj.duration_s;
    const int32_t per = std::max(1, tj.shape.gpus);
    s.min_gpus = s.max_gpus = tj.replicas * per;
    if (policy.elastic && tj.elastic.max_replicas > 0) {
      s.min_gpus = std::max(1, tj.elastic.min_replicas) * per;
      s.max_gpus = std::max(s.min_gpus, tj.elastic.max_replicas * per);
      s.range = {tj.elastic.min_batch, tj.elastic.max_batch};
    } else if (tj.batch_size > 0) {
      s.range = {tj.batch_size, tj.batch_size};
    }
    if (options.goodput != nullptr && !tj.model.empty()) {
      s.app = options.goodput->Find(tj.model);
      if (s.app == nullptr)
        return absl::InvalidArgumentError(absl::StrCat(
            "job '", tj.name, "': the goodput profiles have no application '", tj.model, "'"));
    }
  }

  // Predicted goodput for the allocator, per (job's app, batch range, epoch,
  // GPUs, nodes, regions): jobs of one application share entries.
  std::map<std::tuple<const GoodputApp*, int64_t, int64_t, int32_t, int32_t, int32_t, int32_t>,
           double>
      memo;
  auto predicted = [&](const JobRun& s, int32_t gpus, int32_t nodes_used, int32_t regions) {
    auto key =
        std::make_tuple(s.app, s.range.lo, s.range.hi, s.gs.epoch, gpus, nodes_used, regions);
    auto it = memo.find(key);
    if (it != memo.end()) return it->second;
    GoodputPlacement gp;
    for (int32_t left = gpus, k = 0; left > 0 && k < nodes_used; ++k) {
      const int32_t g = k + 1 == nodes_used ? left : std::min(left, node_gpus);
      gp.gpus_per_node.push_back(g);
      left -= g;
    }
    if (regions > 1) gp.sync_factor = worst_wan.factor, gp.extra_sync_s = worst_wan.extra_s;
    const BatchConfig b = options.goodput->ChooseBatch(*s.app, gp, s.range, s.gs.epoch);
    const double v = options.goodput->Goodput(*s.app, gp, b, s.gs.epoch);
    memo.emplace(key, v);
    return v;
  };

  auto apply = [&](size_t i, const NodeGpus& a) {
    JobRun& s = js[i];
    const Job& j = w.jobs[i];
    s.current = a;
    s.penalty_left = options.restart_penalty_s;
    double speed = INFINITY, rate = 0;
    std::set<int32_t> regions;
    s.gp = GoodputPlacement{};
    for (const auto& [node_id, gpus] : a) {
      const Node& nd = fleet.node(node_id);
      double sp = 1;
      if (nd.gpu_type.Valid()) {
        sp = j.SpeedOn(nd.gpu_type);
        if (!s.tj->speeds.empty()) {
          auto it = s.tj->speeds.find(fleet.gpu_type_name(nd.gpu_type));
          sp = it != s.tj->speeds.end() ? it->second : 1.0;
        }
      }
      speed = std::min(speed, sp > 0 ? sp : 1.0);
      rate += nd.gpus > 0 ? nd.price_hour * double(gpus) / double(nd.gpus) / 3600.0 : 0;
      regions.insert(nd.region.value());
      s.gp.gpus_per_node.push_back(gpus);
    }
    const WanPenalty wan = PenaltyOf(fleet, regions);
    s.gp.sync_factor = wan.factor;
    s.gp.extra_sync_s = wan.extra_s;
    s.speed = std::isinf(speed) ? 1.0 : speed;
    // Fixed model, elastic job resized: work goes linearly with its GPUs
    // against the size it asked for.
    const int32_t asked = s.tj->replicas * std::max(1, s.tj->shape.gpus);
    if (policy.elastic && asked > 0) s.speed *= double(TotalGpus(a)) / double(asked);
    s.cost_rate = rate;
    if (s.app != nullptr)
      s.gs.batch = options.goodput->ChooseBatch(*s.app, s.gp, s.range, s.gs.epoch);
  };

  PolicyResult r;
  r.policy = policy.name;
  r.jobs_total = int64_t(n);
  std::vector<double> jcts;
  jcts.reserve(n);
  const double cap_gpu = std::max(1.0, double(fleet.total_capacity().gpu_milli) / 1000.0);
  std::vector<std::pair<double, double>> util_series, queue_series;
  std::vector<double> slowdown_sum(w.tenants.size(), 0);
  std::vector<int64_t> slowdown_n(w.tenants.size(), 0);
  const double first_submit = n > 0 ? w.jobs.front().submit_time_s : 0;
  double util_integral = 0, last_finish = first_submit;
  int64_t done = 0, started = 0;
  const int64_t progress_step = std::max<int64_t>(1, int64_t(n) / 100);
  int64_t next_progress = progress_step;
  size_t next = 0;
  std::vector<size_t> active;
  std::vector<RoundJob> rj;
  double t = R * std::ceil(first_submit / R);
  while (true) {
    if (options.max_time_s > 0 && t > options.max_time_s) break;
    while (next < n && w.jobs[next].submit_time_s <= t) active.push_back(next++);
    std::erase_if(active, [&](size_t i) { return js[i].finished; });
    if (active.empty()) {
      if (next >= n) break;
      t = std::max(t + R, R * std::ceil(w.jobs[next].submit_time_s / R));
      continue;
    }
    rj.clear();
    for (size_t i : active) {
      const JobRun& s = js[i];
      RoundJob x;
      x.id = w.jobs[i].id;
      x.submit_s = w.jobs[i].submit_time_s;
      x.min_gpus = s.min_gpus;
      x.max_gpus = s.max_gpus;
      for (const GpuChoice& c : w.jobs[i].gpu_types) x.speeds.push_back({c.type, c.speed});
      x.current = s.current;
      x.attained_gpu_s = s.attained_gpu_s;
      x.age_s = t - x.submit_s;
      x.restarts = s.restarts;
      if (s.app != nullptr && policy.elastic)
        x.goodput = [&predicted, &s](int32_t g, int32_t nd, int32_t reg) {
          return predicted(s, g, nd, reg);
        };
      rj.push_back(std::move(x));
    }
    RoundInput in;
    in.now_s = t;
    in.nodes = &nodes;
    in.jobs = &rj;
    in.restart_penalty_s = options.restart_penalty_s;
    in.gpu_type_names = &type_names;
    in.min_reallocation_s = options.allocation_reset_s;
    const std::vector<NodeGpus> allocs = allocator.Allocate(in);
    int64_t running = 0, pending = 0;
    for (size_t k = 0; k < active.size(); ++k) {
      const size_t i = active[k];
      JobRun& s = js[i];
      if (!Same(allocs[k], s.current)) {
        if (allocs[k].empty()) {
          ++r.preemptions;
          s.current.clear();
          s.penalty_left = 0;
        } else {
          if (s.started) {
            ++s.restarts;
          } else {
            s.started = true;
            ++started;
            r.avg_queue_s += t - w.jobs[i].submit_time_s;
          }
          apply(i, allocs[k]);
        }
      }
      (s.current.empty() ? pending : running) += 1;
    }
    // One round of progress.
    double used_gpus = 0;
    for (size_t i : active) {
      JobRun& s = js[i];
      if (s.current.empty()) continue;
      const double delay = std::min(s.penalty_left, R);
      s.penalty_left -= delay;
      const double run = R - delay;
      double done_at = -1;
      if (s.app != nullptr) {
        const double u = options.goodput->Advance(*s.app, s.gp, s.range, run, s.gs);
        if (u >= 0) done_at = t + delay + u;
      } else if (s.remaining <= run * s.speed) {
        done_at = t + delay + s.remaining / s.speed;
      } else {
        s.remaining -= run * s.speed;
      }
      const double held = done_at >= 0 ? done_at - t : R;
      const int32_t gpus = TotalGpus(s.current);
      s.attained_gpu_s += held * gpus;
      util_integral += held * gpus;
      used_gpus += gpus;
      r.cost_usd += s.cost_rate * held;
      if (done_at >= 0) {
        s.finished = true;
        ++done;
        const Job& j = w.jobs[i];
        const double jct = done_at - j.submit_time_s;
        jcts.push_back(jct);
        slowdown_sum[j.tenant.index()] += j.duration_s > 0 ? jct / j.duration_s : 1;
        ++slowdown_n[j.tenant.index()];
        last_finish = std::max(last_finish, done_at);
      }
    }
    util_series.push_back({t, used_gpus / cap_gpu});
    queue_series.push_back({t, double(pending)});
    if (progress && done >= next_progress) {
      progress(done, int64_t(n));
      next_progress = done + progress_step;
    }
    if (running == 0 && next >= n) break;  // nothing left can ever run
    if (running == 0 && next < n)          // wait for the next arrival
      t = std::max(t + R, R * std::ceil(w.jobs[next].submit_time_s / R));
    else
      t += R;
  }

  r.jobs_completed = done;
  r.jobs_unschedulable = int64_t(n) - done;
  if (options.max_time_s > 0) r.jobs_unschedulable = 0;
  if (started > 0) r.avg_queue_s /= double(started);
  SetJctStats(std::move(jcts), &r);
  r.makespan_s = last_finish - first_submit;
  r.gpu_util = r.makespan_s > 0 ? util_integral / cap_gpu / r.makespan_s : 0;
  r.fairness = JainIndexOfMeans(slowdown_sum, slowdown_n);
  r.utilization = DownsampleSeries(util_series, 1000);
  r.queue_length = DownsampleSeries(queue_series, 1000);
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace meridian::sim::internal
