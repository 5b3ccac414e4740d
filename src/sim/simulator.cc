#include "sim/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "placement/registry.h"
#include "sim/rounds.h"

namespace meridian::sim {

namespace {

enum class EventKind { kFinish, kTick, kNodeFail, kNodeRepair };

struct Event {
  double t;
  int64_t seq;
  EventKind kind;
  int32_t index;  // job or node
  int32_t epoch;  // kFinish: run number it belongs to
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct JobSim {
  double remaining = 0;  // work left, in seconds at speed 1
  double run_start = -1;
  double speed = 1;
  double cost_rate = 0;  // $/s while running
  double first_start = -1;
  int32_t epoch = 0;
  bool running = false;
  bool finished = false;
};

double Exponential(Rng& rng, double mean) { return -mean * std::log(1.0 - rng.UniformReal()); }

}  // namespace

Workload TraceToWorkload(const Fleet& fleet, const Trace& trace, const SimPolicy& policy,
                         const SimOptions& options) {
  Workload w;
  absl::flat_hash_map<std::string, TenantId> tenants;
  Rng rng(options.seed ^ 0x9e3779b97f4a7c15ULL);
  w.jobs.reserve(trace.jobs.size());
  for (size_t i = 0; i < trace.jobs.size(); ++i) {
    const TraceJob& tj = trace.jobs[i];
    std::string tname = tj.tenant.empty() ? "default" : tj.tenant;
    auto [it, inserted] = tenants.try_emplace(tname, TenantId(int32_t(w.tenants.size())));
    if (inserted) {
      Tenant t;
      t.name = tname;
      t.id = it->second;
      w.tenants.push_back(t);
    }
    Job j;
    j.name = tj.name.empty() ? absl::StrCat("job-", i) : tj.name;
    j.id = JobId(static_cast<int32_t>(i));
    j.tenant = it->second;
    j.replicas = tj.replicas;
    j.shape = tj.shape;
    j.duration_s = tj.duration_s;
    j.submit_time_s = tj.submit_s;
    j.priority = tj.priority;
    for (const std::string& g : tj.gpu_types) {
      GpuTypeId id = fleet.FindGpuType(g);
      if (id.Valid()) j.gpu_types.push_back({id, 1.0});
    }
    if (policy.heterogeneity_aware && !tj.speeds.empty() && j.shape.gpus > 0) {
      // Plan with the true speeds, restricted to the types the job allows.
      std::vector<GpuChoice> aware;
      for (const auto& [name, speed] : tj.speeds) {
        GpuTypeId id = fleet.FindGpuType(name);
        if (!id.Valid() || !(speed > 0)) continue;
        bool allowed = j.gpu_types.empty();
        for (const GpuChoice& c : j.gpu_types) allowed |= c.type == id;
        if (allowed) aware.push_back({id, speed});
      }
      if (!aware.empty()) j.gpu_types = std::move(aware);
    }
    if (tj.gpu_types.empty() && j.gpu_types.empty() && j.shape.gpus > 0)
      for (const auto& [name, speed] : options.gpu_speeds) {
        GpuTypeId id = fleet.FindGpuType(name);
        if (id.Valid()) j.gpu_types.push_back({id, speed});
      }
    j.objective = policy.objective.value_or(Objective::kTime);
    j.cost_weight = 0.5;
    if (options.assign_datasets && !fleet.datasets().empty()) {
      j.dataset = DatasetId(
          static_cast<int32_t>(rng.Uniform(0, int64_t(fleet.datasets().size()) - 1)));
      if (rng.UniformReal() < options.residency_share)
        j.allowed_regions.push_back(fleet.dataset(j.dataset).home);
    }
    w.jobs.push_back(std::move(j));
  }
  return w;
}

absl::StatusOr<PolicyResult> RunSimulation(const Fleet& fleet, const Trace& trace,
                                           const SimPolicy& policy, const SimOptions& options,
                                           const ProgressFn& progress) {
  if (trace.jobs.empty()) return absl::InvalidArgumentError("trace has no jobs");
  if (fleet.nodes().empty()) return absl::InvalidArgumentError("fleet has no nodes");
  if (options.round_s > 0)
    return internal::RunRoundSimulation(fleet, trace, policy, options, progress);
  if (policy.elastic)
    return absl::InvalidArgumentError(
        absl::StrCat("policy ", policy.name, " resizes jobs at rounds: it needs --round-s > 0"));
  if (options.goodput != nullptr)
    return absl::InvalidArgumentError(
        "the goodput job model needs scheduling rounds (--round-s > 0)");
  const auto wall0 = std::chrono::steady_clock::now();
  FakeClock clock(trace.jobs.front().submit_s);
  Rng rng(options.seed);
  PolicyRegistry registry;
  RegisterBuiltinPolicies(registry);
  auto sched_or = Scheduler::Create(&fleet, registry, policy.scheduler, &clock, &rng);
  if (!sched_or.ok()) return sched_or.status();
  Scheduler& sched = **sched_or;
  Workload w = TraceToWorkload(fleet, trace, policy, options);
  for (const Tenant& t : w.tenants)
    if (auto s = sched.AddTenant(t); !s.ok()) return s;
  sched.SetTaskMix(WorkloadTaskMix(w.jobs));

  const size_t n = w.jobs.size();
  std::vector<JobSim> js(n);
  for (size_t i = 0; i < n; ++i) js[i].remaining = w.jobs[i].duration_s;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  int64_t seq = 0;
  auto push = [&](double t, EventKind k, int32_t index, int32_t epoch = 0) {
    events.push(Event{t, seq++, k, index, epoch});
  };
  Rng fail_rng(options.seed ^ 0xfa11ULL);
  if (options.node_mtbf_s > 0)
    for (size_t i = 0; i < fleet.nodes().size(); ++i)
      push(clock.NowSeconds() + Exponential(fail_rng, options.node_mtbf_s), EventKind::kNodeFail,
           int32_t(i));

  const double cap_gpu = std::max<double>(1.0, double(fleet.total_capacity().gpu_milli));
  const double pass_interval = sched.pass_interval_s();
  PolicyResult r;
  r.policy = policy.name;
  r.jobs_total = int64_t(n);
  std::vector<double> jcts;
  jcts.reserve(n);
  std::vector<std::pair<double, double>> util_series, queue_series;
  std::vector<double> slowdown_sum(w.tenants.size(), 0);
  std::vector<int64_t> slowdown_n(w.tenants.size(), 0);
  double util_integral = 0, last_t = clock.NowSeconds(), last_finish = last_t;
  const double first_submit = last_t;
  int64_t pending = 0, running = 0, repairs = 0, done = 0;
  double arrived_gpu = 0;
  bool tick_scheduled = false, unallocated_recorded = false;
  size_t next_checkpoint = 0;
  size_t next_arrival = 0;
  const int64_t progress_step = std::max<int64_t>(1, int64_t(n) / 100);
  int64_t next_progress = progress_step;

  auto stop_run = [&](size_t i, double t) {
    JobSim& s = js[i];
    // The restart penalty at the start of the run made no progress.
    s.remaining = std::max(
        0.0, s.remaining - std::max(0.0, t - s.run_start - options.restart_penalty_s) * s.speed);
    r.cost_usd += s.cost_rate * (t - s.run_start);
    s.running = false;
    ++s.epoch;
    --running;
    ++pending;
  };

  while (true) {
    double t_next = std::numeric_limits<double>::infinity();
    if (next_arrival < n) t_next = w.jobs[next_arrival].submit_time_s;
    if (!events.empty()) t_next = std::min(t_next, events.top().t);
    if (std::isinf(t_next)) break;
    if (next_arrival >= n && running == 0 && repairs == 0) break;  // nothing can change any more
    if (options.max_time_s > 0 && t_next > options.max_time_s) break;
    // Integrate utilization over [last_t, t_next).
    double used = double(sched.state().total_used().gpu_milli);
    util_integral += used * (t_next - last_t);
    last_t = t_next;
    clock.Set(t_next);

    while (next_arrival < n && w.jobs[next_arrival].submit_time_s <= t_next) {
      const Job& j = w.jobs[next_arrival];
      if (auto s = sched.Submit(j); !s.ok()) return s;
      arrived_gpu += double(j.Demand().gpu_milli);
      ++pending;
      ++next_arrival;
    }
    while (!events.empty() && events.top().t <= t_next) {
      Event e = events.top();
      events.pop();
      switch (e.kind) {
        case EventKind::kFinish: {
          JobSim& s = js[size_t(e.index)];
          if (!s.running || s.epoch != e.epoch) break;  // stale: preempted since
          (void)sched.Finish(JobId(e.index));
          r.cost_usd += s.cost_rate * (t_next - s.run_start);
          s.running = false;
          s.finished = true;
          --running;
          ++done;
          const Job& j = w.jobs[size_t(e.index)];
          double jct = t_next - j.submit_time_s;
          jcts.push_back(jct);
          slowdown_sum[j.tenant.index()] += jct / j.duration_s;
          ++slowdown_n[j.tenant.index()];
          last_finish = t_next;
          break;
        }
        case EventKind::kTick:
          tick_scheduled = false;
          break;
        case EventKind::kNodeFail: {
          for (JobId id : sched.SetNodeHealthy(NodeId(e.index), false)) {
            stop_run(size_t(id.value()), t_next);
            ++r.preemptions;
          }
          push(t_next + options.node_repair_s, EventKind::kNodeRepair, e.index);
          ++repairs;
          break;
        }
        case EventKind::kNodeRepair:
          (void)sched.SetNodeHealthy(NodeId(e.index), true);
          --repairs;
          push(t_next + Exponential(fail_rng, options.node_mtbf_s), EventKind::kNodeFail, e.index);
          break;
      }
    }

    for (const Decision& d : sched.Schedule()) {
      if (options.on_decision) options.on_decision(t_next, d);
      const size_t i = size_t(d.job.value());
      JobSim& s = js[i];
      const Job& j = w.jobs[i];
      switch (d.kind) {
        case DecisionKind::kPlaced:
        case DecisionKind::kBackfilled:
        case DecisionKind::kPreempting: {
          // True speed: the trace's per-type speeds when it has them, else what
          // the scheduler was told; the slowest share sets the pace of a gang.
          double speed = std::numeric_limits<double>::infinity();
          const auto& true_speeds = trace.jobs[i].speeds;
          for (const RegionShare& sh : d.plan.shares) {
            double sp = sh.gpu_type.Valid() ? j.SpeedOn(sh.gpu_type) : 1.0;
            if (sh.gpu_type.Valid() && !true_speeds.empty()) {
              auto it = true_speeds.find(fleet.gpu_type_name(sh.gpu_type));
              sp = it != true_speeds.end() ? it->second : 1.0;
            }
            speed = std::min(speed, sp > 0 ? sp : 1.0);
          }
          s.speed = std::isinf(speed) ? 1.0 : speed;
          s.run_start = t_next;
          if (s.first_start < 0) {
            s.first_start = t_next;
            r.avg_queue_s += t_next - j.submit_time_s;
          }
          s.running = true;
          ++s.epoch;
          double rate = 0;
          for (const ReplicaPlacement& rp : d.plan.replicas) {
            const Node& node = fleet.node(rp.allocation.node);
            double share = node.capacity.gpu_milli > 0
                               ? double(rp.allocation.resources.gpu_milli) / double(node.capacity.gpu_milli)
                               : double(rp.allocation.resources.cpu_milli) / double(node.capacity.cpu_milli);
            rate += node.price_hour * share / 3600.0;
          }
          s.cost_rate = rate;
          if (j.dataset.Valid()) {
            const Dataset& ds = fleet.dataset(j.dataset);
            for (const RegionShare& sh : d.plan.shares)
              if (sh.region != ds.home) {
                // Each region share pulls the dataset once; cost_usd includes egress.
                const Link& l = fleet.link(ds.home, sh.region);
                r.egress_gb += ds.size_gb;
                r.cost_usd += ds.size_gb * (l.known ? l.egress_usd_per_gb : 0.12);
              }
          }
          --pending;
          ++running;
          if (options.departures)
            push(t_next + options.restart_penalty_s + s.remaining / s.speed, EventKind::kFinish,
                 int32_t(i), s.epoch);
          break;
        }
        case DecisionKind::kPreempted:
          stop_run(i, t_next);
          ++r.preemptions;
          break;
        case DecisionKind::kWaiting:
          break;
      }
    }
    used = double(sched.state().total_used().gpu_milli);
    util_series.push_back({t_next, used / cap_gpu});
    queue_series.push_back({t_next, double(pending)});
    if (!options.departures) {
      r.allocation_curve.push_back({arrived_gpu / cap_gpu, used / cap_gpu});
      if (!unallocated_recorded && arrived_gpu >= cap_gpu) {
        r.unallocated_gpu_share = 1.0 - used / cap_gpu;
        unallocated_recorded = true;
      }
      // A small tolerance: inflation stops as soon as the target is reached.
      while (next_checkpoint < options.arrival_checkpoints.size() &&
             arrived_gpu >= options.arrival_checkpoints[next_checkpoint] * cap_gpu - 1e-6) {
        r.checkpoints.push_back({options.arrival_checkpoints[next_checkpoint], 1.0 - used / cap_gpu,
                                 FragmentationRate(sched.state(), sched.task_mix())});
        ++next_checkpoint;
      }
    }
    if (pass_interval > 0 && pending > 0 && running > 0 && !tick_scheduled) {
      push(t_next + pass_interval, EventKind::kTick, -1);
      tick_scheduled = true;
    }
    if (progress && done + running >= next_progress) {
      progress(done + running, int64_t(n));
      next_progress = done + running + progress_step;
    }
  }

  if (!options.departures && !unallocated_recorded)
    r.unallocated_gpu_share = 1.0 - double(sched.state().total_used().gpu_milli) / cap_gpu;
  // Jobs still running at the end (max_time or no departures) pay until then.
  for (size_t i = 0; i < n; ++i)
    if (js[i].running) r.cost_usd += js[i].cost_rate * (last_t - js[i].run_start);
  r.jobs_completed = done;
  r.jobs_unschedulable = options.departures ? int64_t(n) - done - running : 0;
  int64_t started = 0;
  for (const JobSim& s : js) started += s.first_start >= 0;
  if (started > 0) r.avg_queue_s /= double(started);
  SetJctStats(std::move(jcts), &r);
  double end_t = options.departures ? last_finish : last_t;
  r.makespan_s = end_t - first_submit;
  r.gpu_util = r.makespan_s > 0 ? util_integral / cap_gpu / (last_t - first_submit) : 0;
  r.fairness = JainIndexOfMeans(slowdown_sum, slowdown_n);
  r.utilization = DownsampleSeries(util_series, 1000);
  r.queue_length = DownsampleSeries(queue_series, 1000);
  if (r.allocation_curve.size() > 1000) {
    std::vector<std::pair<double, double>> ds;
    size_t step = r.allocation_curve.size() / 1000 + 1;
    for (size_t i = 0; i < r.allocation_curve.size(); i += step) ds.push_back(r.allocation_curve[i]);
    ds.push_back(r.allocation_curve.back());
    r.allocation_curve = std::move(ds);
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace meridian::sim
