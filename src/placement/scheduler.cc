#include "placement/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"

namespace meridian {

namespace {
constexpr double kNever = 1e12;  // "no estimate": finite so rankings stay well-defined

bool AtLeastGuarantee(const Resources& usage, const Resources& g) {
  return (g.cpu_milli <= 0 || usage.cpu_milli >= g.cpu_milli) &&
         (g.memory_mib <= 0 || usage.memory_mib >= g.memory_mib) &&
         (g.gpu_milli <= 0 || usage.gpu_milli >= g.gpu_milli);
}

std::string Gpus(int64_t milli) { return absl::StrFormat("%g", double(milli) / 1000.0); }
}  // namespace

const char* DecisionKindName(DecisionKind k) {
  switch (k) {
    case DecisionKind::kPlaced:
      return "placed";
    case DecisionKind::kBackfilled:
      return "backfilled";
    case DecisionKind::kPreempting:
      return "placed-by-preemption";
    case DecisionKind::kPreempted:
      return "preempted";
    case DecisionKind::kWaiting:
      return "waiting";
  }
  return "?";
}

Scheduler::Scheduler(const Fleet* fleet, SchedulerOptions options, const Clock* clock, Rng* rng)
    : fleet_(fleet), options_(std::move(options)), clock_(clock), rng_(rng), state_(fleet) {
  pool_ends_.resize(state_.num_pools());
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const Fleet* fleet,
                                                             const PolicyRegistry& registry,
                                                             SchedulerOptions options,
                                                             const Clock* clock, Rng* rng) {
  if (options.max_waiting_per_pass < 0)
    return absl::InvalidArgumentError("max_waiting_per_pass must be >= 0");
  if (!(options.task_mix_half_life >= 1) || options.task_mix_half_life > 1e12)
    return absl::InvalidArgumentError("task_mix_half_life must be in [1, 1e12] replicas");
  auto engine = PlacementEngine::Create(registry, options.engine);
  if (!engine.ok()) return engine.status();
  auto queue = registry.MakeQueuePolicy(options.queue_policy, options.queue_policy_options);
  if (!queue.ok()) return queue.status();
  std::unique_ptr<Scheduler> s(new Scheduler(fleet, options, clock, rng));
  s->engine_ = *std::move(engine);
  s->queue_policy_ = *std::move(queue);
  s->planner_ = std::make_unique<RegionPlanner>(fleet, s->engine_.get(), options.planner);
  return s;
}

absl::Status Scheduler::AddTenant(const Tenant& t) {
  if (t.id.value() != static_cast<int32_t>(tenants_.size()))
    return absl::InvalidArgumentError(
        absl::StrCat("tenant '", t.name, "': ids must be dense and added in order"));
  if (!(t.weight > 0))
    return absl::InvalidArgumentError(absl::StrCat("tenant '", t.name, "': weight must be > 0"));
  tenants_.push_back({t, Resources{}});
  for (auto& [prio, per_tenant] : pending_) per_tenant.resize(tenants_.size());
  return absl::OkStatus();
}

absl::Status Scheduler::Submit(const Job& job) {
  if (!job.tenant.Valid() || job.tenant.index() >= tenants_.size())
    return absl::InvalidArgumentError(absl::StrCat("job '", job.name, "': unknown tenant"));
  if (jobs_.contains(job.id))
    return absl::AlreadyExistsError(absl::StrCat("job id ", job.id.value(), " already submitted"));
  const TaskShape& s = job.shape;
  if (job.replicas < 1 || s.cpu_milli < 0 || s.memory_mib < 0 || s.gpus < 0 ||
      s.gpu_milli < 1 || s.gpu_milli > 1000 || (s.gpu_milli < 1000 && s.gpus != 1) ||
      !(job.duration_s > 0))
    return absl::InvalidArgumentError(absl::StrCat("job '", job.name, "': invalid shape"));
  Entry e;
  e.job = job;
  Entry& stored = jobs_.emplace(job.id, std::move(e)).first->second;
  Enqueue(stored);
  if (!task_mix_fixed_)
    LearnShape(s, job.replicas, job.gpu_types.size() == 1 ? job.gpu_types[0].type : GpuTypeId());
  return absl::OkStatus();
}

absl::Status Scheduler::Adopt(const Job& job, const std::vector<NodeId>& nodes) {
  if (nodes.size() != static_cast<size_t>(job.replicas))
    return absl::InvalidArgumentError(absl::StrCat("job '", job.name, "': ", nodes.size(),
                                                   " nodes for ", job.replicas, " replicas"));
  // Check that every replica fits before taking anything.
  std::vector<Allocation> taken;
  for (NodeId n : nodes) {
    if (!n.Valid() || n.index() >= fleet_->nodes().size() || !state_.Fits(n, job.shape)) {
      for (const Allocation& a : taken) state_.Release(a);
      return absl::FailedPreconditionError(
          absl::StrCat("job '", job.name, "': a replica no longer fits its node"));
    }
    taken.push_back(state_.Allocate(n, job.shape));
  }
  if (absl::Status st = Submit(job); !st.ok()) {
    for (const Allocation& a : taken) state_.Release(a);
    return st;
  }
  Plan plan;
  plan.placed = true;
  for (Allocation& a : taken) {
    const Node& node = fleet_->node(a.node);
    auto it = std::find_if(plan.shares.begin(), plan.shares.end(), [&](const RegionShare& s) {
      return s.region == node.region && s.gpu_type == node.gpu_type;
    });
    if (it == plan.shares.end()) {
      plan.shares.push_back(RegionShare{node.region, node.gpu_type, 1});
    } else {
      ++it->replicas;
    }
    ReplicaPlacement r;
    r.allocation = std::move(a);
    plan.replicas.push_back(std::move(r));
  }
  Start(jobs_.at(job.id), plan);
  return absl::OkStatus();
}

void Scheduler::Enqueue(Entry& e) {
  e.pending_key = {queue_policy_->Key(QueuedJob{e.job, e.attained_gpu_s}, 0.0),
                   e.job.submit_time_s, e.job.id};
  auto& per_tenant = pending_[e.job.priority];
  per_tenant.resize(tenants_.size());
  per_tenant[e.job.tenant.index()].insert(e.pending_key);
}

void Scheduler::Dequeue(Entry& e) {
  auto it = pending_.find(e.job.priority);
  MERIDIAN_CHECK(it != pending_.end(), "pending job missing from its queue");
  size_t erased = it->second[e.job.tenant.index()].erase(e.pending_key);
  MERIDIAN_CHECK(erased == 1, "pending job missing from its queue");
}

void Scheduler::SetTaskMix(std::vector<TaskClass> mix) {
  task_mix_ = std::move(mix);
  task_mix_fixed_ = true;
  task_mix_dirty_ = false;
}

void Scheduler::LearnShape(const TaskShape& s, int32_t replicas, GpuTypeId type) {
  // Exponential decay by submissions: instead of scaling every count down,
  // later submissions count more (the increment grows by 2 per half-life).
  const double half_life = options_.task_mix_half_life;
  shape_counts_[{s.cpu_milli, s.memory_mib, s.gpus, s.gpus == 0 ? 1000 : s.gpu_milli,
                 type.Valid() ? type.value() : -1}] += mix_increment_ * replicas;
  mix_increment_ *= std::exp2(double(replicas) / half_life);
  if (mix_increment_ > 1e200 || shape_counts_.size() > 4096) {
    // Rescale (and forget shapes whose weight decayed to nothing).
    for (auto it = shape_counts_.begin(); it != shape_counts_.end();) {
      it->second /= mix_increment_;
      it = it->second < 1e-6 ? shape_counts_.erase(it) : std::next(it);
    }
    mix_increment_ = 1;
  }
  task_mix_dirty_ = true;
}

void Scheduler::RebuildTaskMix() {
  std::vector<ShapeCount> counts;
  counts.reserve(shape_counts_.size());
  for (const auto& [k, n] : shape_counts_)
    counts.push_back({TaskShape{std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k)}, n,
                      GpuTypeId(std::get<4>(k))});
  task_mix_ = BuildTaskMix(counts);
  task_mix_dirty_ = false;
}

const Job* Scheduler::job(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second.job;
}

bool Scheduler::IsRunning(JobId id) const {
  auto it = jobs_.find(id);
  return it != jobs_.end() && it->second.state == State::kRunning;
}

std::vector<JobId> Scheduler::pending() const {
  std::vector<JobId> out;
  for (const auto& [id, e] : jobs_)
    if (e.state == State::kPending) out.push_back(id);
  return out;
}

std::vector<JobId> Scheduler::running() const { return {running_.begin(), running_.end()}; }

const std::vector<Allocation>& Scheduler::allocations(JobId id) const {
  static const std::vector<Allocation> kEmpty;
  auto it = jobs_.find(id);
  return it == jobs_.end() ? kEmpty : it->second.allocations;
}

double Scheduler::Attained(const Entry& e) const {
  double a = e.attained_gpu_s;
  if (e.state == State::kRunning)
    a += (clock_->NowSeconds() - e.start_s) * double(e.job.Demand().gpu_milli) / 1000.0;
  return a;
}

double Scheduler::attained_gpu_s(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? 0 : Attained(it->second);
}

int32_t Scheduler::TierOf(const Entry& e) const {
  return queue_policy_->Tier(QueuedJob{e.job, Attained(e)});
}

void Scheduler::Start(Entry& e, const Plan& plan) {
  Dequeue(e);
  e.allocations.clear();
  e.pool_gpu.clear();
  for (const ReplicaPlacement& r : plan.replicas) {
    e.allocations.push_back(r.allocation);
    int pool = state_.node_pool(r.allocation.node);
    auto it = std::find_if(e.pool_gpu.begin(), e.pool_gpu.end(),
                           [&](const auto& p) { return p.first == pool; });
    if (it == e.pool_gpu.end())
      e.pool_gpu.push_back({pool, r.allocation.resources.gpu_milli});
    else
      it->second += r.allocation.resources.gpu_milli;
  }
  double speed = std::numeric_limits<double>::infinity();
  for (const RegionShare& s : plan.shares)
    speed = std::min(speed, s.gpu_type.Valid() ? e.job.SpeedOn(s.gpu_type) : 1.0);
  if (!(speed > 0) || std::isinf(speed)) speed = 1.0;
  e.state = State::kRunning;
  e.start_s = clock_->NowSeconds();
  e.expected_end_s = e.start_s + e.job.duration_s / speed;
  for (const auto& [pool, milli] : e.pool_gpu)
    if (milli > 0) pool_ends_[size_t(pool)].insert({e.expected_end_s, e.job.id, milli});
  running_.insert(e.job.id);
  victim_bound_.valid = false;
  tenants_[e.job.tenant.index()].usage += e.job.Demand();
}

void Scheduler::Stop(Entry& e) {
  MERIDIAN_CHECK(e.state == State::kRunning, "Stop of a job that is not running");
  for (const Allocation& a : e.allocations) state_.Release(a);
  for (const auto& [pool, milli] : e.pool_gpu)
    if (milli > 0) pool_ends_[size_t(pool)].erase({e.expected_end_s, e.job.id, milli});
  e.attained_gpu_s = Attained(e);
  e.allocations.clear();
  e.pool_gpu.clear();
  e.state = State::kPending;
  running_.erase(e.job.id);
  ++capacity_version_;
  victim_bound_.valid = false;
  tenants_[e.job.tenant.index()].usage -= e.job.Demand();
}

absl::Status Scheduler::Finish(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.state != State::kRunning)
    return absl::NotFoundError(absl::StrCat("job ", id.value(), " is not running"));
  Stop(it->second);
  jobs_.erase(it);  // Stop does not enqueue: the job is gone
  return absl::OkStatus();
}

absl::Status Scheduler::Remove(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id.value(), " unknown"));
  if (it->second.state == State::kRunning) {
    Stop(it->second);
  } else {
    Dequeue(it->second);
  }
  jobs_.erase(it);
  return absl::OkStatus();
}

std::vector<JobId> Scheduler::SetNodeHealthy(NodeId node, bool healthy) {
  std::vector<JobId> requeued;
  if (!healthy) {
    for (JobId id : std::vector<JobId>(running_.begin(), running_.end())) {
      Entry& e = jobs_.at(id);
      bool hit = false;
      for (const Allocation& a : e.allocations) hit |= a.node == node;
      if (hit) {
        Stop(e);
        Enqueue(e);
        requeued.push_back(id);
      }
    }
  }
  state_.SetHealthy(node, healthy);
  if (healthy) ++capacity_version_;
  return requeued;
}

bool Scheduler::QuotaAllows(const Entry& e, std::string* why) const {
  const TenantEntry& t = tenants_[e.job.tenant.index()];
  Resources after = t.usage + e.job.Demand();
  Resources limit = t.spec.guarantee + t.spec.borrow_limit;
  if (limit.Contains(after)) return true;
  // Name the first dimension over its limit, with the numbers.
  auto fmt = [](int64_t v, double unit) { return absl::StrFormat("%g", double(v) / unit); };
  const char* what = "GPUs";
  int64_t a = after.gpu_milli, g = t.spec.guarantee.gpu_milli, b = t.spec.borrow_limit.gpu_milli;
  double unit = 1000;
  if (after.gpu_milli <= limit.gpu_milli) {
    if (after.cpu_milli > limit.cpu_milli) {
      what = "CPU cores", a = after.cpu_milli, g = t.spec.guarantee.cpu_milli;
      b = t.spec.borrow_limit.cpu_milli;
    } else {
      what = "memory GiB", a = after.memory_mib, g = t.spec.guarantee.memory_mib;
      b = t.spec.borrow_limit.memory_mib, unit = 1024;
    }
  }
  *why = absl::StrCat("quota: tenant '", t.spec.name, "' would hold ", fmt(a, unit), " ", what,
                      ", over its guarantee of ", fmt(g, unit), " + borrowing limit of ",
                      fmt(b, unit));
  return false;
}

double Scheduler::PoolFreeAt(int pool, int64_t demand, int64_t* extra) const {
  const double now = clock_->NowSeconds();
  int64_t free = state_.pool_free_gpu_milli(pool);
  if (free >= demand) {
    if (extra) *extra = free - demand;
    return now;
  }
  for (const auto& [end, id, freed] : pool_ends_[size_t(pool)]) {
    free += freed;
    if (free >= demand) {
      if (extra) *extra = free - demand;
      return std::max(now, end);
    }
  }
  return std::numeric_limits<double>::infinity();
}

double Scheduler::EstimateWaitSeconds(const ClusterState& state, const Job& job, RegionId region,
                                      GpuTypeId gpu_type) const {
  if (!gpu_type.Valid()) return 0;  // CPU-only work: not modelled, assume no wait
  int pool = state.FindPool(region, gpu_type);
  if (pool < 0) return kNever;
  double t = PoolFreeAt(pool, job.Demand().gpu_milli, nullptr);
  return std::isinf(t) ? kNever : t - clock_->NowSeconds();
}

bool Scheduler::TryPreempt(Entry& e, Decision& d, std::vector<Decision>& out) {
  if (running_.empty()) return false;
  const double now = clock_->NowSeconds();
  if (!victim_bound_.valid || victim_bound_.at_s != now) {
    victim_bound_ = VictimBound{true, now, std::numeric_limits<int32_t>::max(), 0};
    for (JobId rid : running_) {
      const Entry& v = jobs_.at(rid);
      victim_bound_.min_priority = std::min(victim_bound_.min_priority, v.job.priority);
      victim_bound_.max_tier = std::max(victim_bound_.max_tier, TierOf(v));
    }
  }
  if (victim_bound_.min_priority >= e.job.priority && victim_bound_.max_tier <= TierOf(e))
    return false;  // nobody running could ever be a victim
  std::vector<RegionEstimate> ranked = planner_->Rank(state_, e.job, this);
  struct Trial {
    std::vector<Entry*> victims;
    size_t option = 0;
    int64_t priority_sum = 0;
  };
  std::optional<Trial> best;
  for (size_t oi = 0; oi < ranked.size(); ++oi) {
    const RegionEstimate& opt = ranked[oi];
    const int pool = opt.gpu_type.Valid() ? state_.FindPool(opt.region, opt.gpu_type) : -1;
    std::vector<Entry*> cands;
    const int32_t my_tier = TierOf(e);
    for (JobId rid : running_) {
      Entry& v = jobs_.at(rid);
      bool lower = v.job.priority < e.job.priority ||
                   (v.job.priority == e.job.priority && TierOf(v) > my_tier);
      if (!lower) continue;
      bool here = false;
      for (const Allocation& a : v.allocations)
        here |= fleet_->node(a.node).region == opt.region &&
                (pool < 0 || state_.node_pool(a.node) == pool);
      if (here) cands.push_back(&v);
    }
    if (cands.empty()) continue;
    if (pool >= 0) {
      // Even evicting every candidate would not free enough GPUs here.
      int64_t freeable = state_.pool_free_gpu_milli(pool);
      for (const Entry* v : cands)
        for (const auto& [p, milli] : v->pool_gpu)
          if (p == pool) freeable += milli;
      if (freeable < e.job.Demand().gpu_milli) continue;
    }
    std::sort(cands.begin(), cands.end(), [&](const Entry* a, const Entry* b) {
      if (a->job.priority != b->job.priority) return a->job.priority < b->job.priority;
      if (int32_t ta = TierOf(*a), tb = TierOf(*b); ta != tb) return ta > tb;
      if (a->start_s != b->start_s) return a->start_s > b->start_s;
      if (a->job.Demand().gpu_milli != b->job.Demand().gpu_milli)
        return a->job.Demand().gpu_milli < b->job.Demand().gpu_milli;
      return a->job.id < b->job.id;
    });
    if (cands.size() > size_t(options_.max_victim_candidates))
      cands.resize(size_t(options_.max_victim_candidates));

    std::vector<Resources> removed(tenants_.size());
    auto can_evict = [&](const Entry* v) {
      const TenantEntry& t = tenants_[v->job.tenant.index()];
      Resources after = t.usage - removed[v->job.tenant.index()] - v->job.Demand();
      return AtLeastGuarantee(after, t.spec.guarantee);
    };
    auto release = [&](Entry* v) {
      for (const Allocation& a : v->allocations) state_.Release(a);
    };
    auto restore = [&](Entry* v) {
      for (const Allocation& a : v->allocations) state_.Restore(a);
    };
    auto fits = [&]() {
      Plan p = planner_->PlaceOnly(state_, e.job, std::span<const RegionEstimate>(&opt, 1), task_mix_, *rng_);
      for (const ReplicaPlacement& r : p.replicas) state_.Release(r.allocation);
      return p.placed;
    };
    std::vector<Entry*> chosen;
    bool ok = false;
    for (Entry* v : cands) {
      if (!can_evict(v)) continue;
      release(v);
      chosen.push_back(v);
      removed[v->job.tenant.index()] += v->job.Demand();
      if (fits()) {
        ok = true;
        break;
      }
    }
    if (ok) {
      // Drop victims that turn out unnecessary: the set becomes irreducible.
      for (size_t i = chosen.size(); i-- > 0;) {
        restore(chosen[i]);
        if (fits()) {
          chosen.erase(chosen.begin() + long(i));
        } else {
          release(chosen[i]);
        }
      }
    }
    for (Entry* v : chosen) restore(v);
    if (!ok) continue;
    int64_t psum = 0;
    for (Entry* v : chosen) psum += v->job.priority;
    if (!best || chosen.size() < best->victims.size() ||
        (chosen.size() == best->victims.size() && psum < best->priority_sum))
      best = Trial{chosen, oi, psum};
  }
  if (!best) return false;
  for (Entry* v : best->victims) {
    Stop(*v);
    Enqueue(*v);
    Decision pd;
    pd.job = v->job.id;
    pd.kind = DecisionKind::kPreempted;
    pd.reasons.push_back(absl::StrCat("preempted by job '", e.job.name, "' (priority ",
                                      e.job.priority, " vs ", v->job.priority, ", queue tier ",
                                      TierOf(e), " vs ", TierOf(*v), ")"));
    out.push_back(std::move(pd));
    d.victims.push_back(v->job.id);
  }
  Plan p = planner_->PlaceOnly(state_, e.job, std::span<const RegionEstimate>(&ranked[best->option], 1), task_mix_, *rng_);
  if (!p.placed) {
    // Only possible with a randomised selector; the victims are pending again
    // and will be re-placed by the next pass.
    d.reasons.push_back("preemption freed room but the gang still did not fit");
    return false;
  }
  p.ranked = std::move(ranked);
  Start(e, p);
  d.kind = DecisionKind::kPreempting;
  d.plan = std::move(p);
  return true;
}

std::vector<Decision> Scheduler::Schedule() {
  if (task_mix_dirty_) RebuildTaskMix();
  std::vector<Decision> out;
  const double now = clock_->NowSeconds();
  const Resources& total = fleet_->total_capacity();

  std::optional<Reservation> res;
  int32_t waiting = 0;
  const bool limited = options_.max_waiting_per_pass > 0;
  for (auto level = pending_.begin(); level != pending_.end(); ++level) {
    std::vector<std::set<PendingKey>>& per_tenant = level->second;
    per_tenant.resize(tenants_.size());
    // Cursor per tenant; a job is skipped past before it is processed, so
    // erasing it (placement) never invalidates a cursor.
    std::vector<std::set<PendingKey>::iterator> cursor(per_tenant.size());
    for (size_t t = 0; t < per_tenant.size(); ++t) cursor[t] = per_tenant[t].begin();
    const bool by_share = queue_policy_->UsesTenantShare();
    while (!(limited && waiting >= options_.max_waiting_per_pass)) {
      // Tournament over tenant heads: smallest policy key with the tenant's
      // current dominant share (weighted DRF for "drf"), then submit, then id.
      int pick = -1;
      std::tuple<double, double, JobId> pick_key;
      for (size_t t = 0; t < per_tenant.size(); ++t) {
        if (cursor[t] == per_tenant[t].end()) continue;
        std::tuple<double, double, JobId> key = *cursor[t];
        if (by_share) {
          double share = DominantShare(tenants_[t].usage, total) / tenants_[t].spec.weight;
          const Entry& head = jobs_.at(std::get<2>(key));
          std::get<0>(key) = queue_policy_->Key(QueuedJob{head.job, head.attained_gpu_s}, share);
        }
        if (pick < 0 || key < pick_key) pick = int(t), pick_key = key;
      }
      if (pick < 0) break;
      JobId id = std::get<2>(*cursor[size_t(pick)]);
      ++cursor[size_t(pick)];
      Entry& e = jobs_.at(id);
      if (e.state != State::kPending) continue;
      Decision d;
      d.job = id;
      std::string why;
      if (!QuotaAllows(e, &why)) {
        d.reasons.push_back(std::move(why));
        if (options_.explain)
          for (size_t ri = 0; ri < fleet_->regions().size(); ++ri)
            d.plan.why_not.push_back(
                planner_->ExplainRegion(state_, e.job, RegionId(static_cast<int32_t>(ri))));
        out.push_back(std::move(d));
        ++waiting;
        continue;
      }
      // Skip a placement that failed before when no capacity was freed since
      // (it would fail again), unless this job may become the reservation holder.
      const bool skip = e.failed_version == capacity_version_ &&
                        (res.has_value() || !options_.enable_backfill);
      Plan plan;
      if (!skip) {
        plan = planner_->PlaceJob(state_, e.job, this, task_mix_, *rng_, false);
        if (!plan.placed) e.failed_version = capacity_version_;
      }
      if (plan.placed && res) {
        // EASY backfill: the job must not delay the reservation holder.
        bool delays = false;
        int64_t extra = res->extra_gpu_milli;
        double speed = e.job.SpeedOn(plan.shares[0].gpu_type);
        double end = now + e.job.duration_s / (speed > 0 ? speed : 1.0);
        for (const RegionShare& s : plan.shares) {
          int pool = s.gpu_type.Valid() ? state_.FindPool(s.region, s.gpu_type) : -1;
          if (pool != res->pool || end <= res->start_s) continue;
          int64_t need = int64_t{s.replicas} * e.job.shape.total_gpu_milli();
          if (need <= extra)
            extra -= need;
          else
            delays = true;
        }
        if (delays) {
          for (const ReplicaPlacement& r : plan.replicas) state_.Release(r.allocation);
          plan.placed = false;
          plan.replicas.clear();
          plan.shares.clear();
          d.reasons.push_back(absl::StrFormat(
              "backfill: would delay job '%s', which holds a reservation from t=%.0fs",
              jobs_.at(res->holder).job.name, res->start_s));
        } else {
          res->extra_gpu_milli = extra;
        }
      }
      if (plan.placed) {
        Start(e, plan);
        d.kind = res ? DecisionKind::kBackfilled : DecisionKind::kPlaced;
        d.plan = std::move(plan);
        out.push_back(std::move(d));
        continue;
      }
      if (options_.enable_preemption && !res && TryPreempt(e, d, out)) {
        out.push_back(std::move(d));
        continue;
      }
      d.kind = DecisionKind::kWaiting;
      if (skip)
        d.reasons.push_back("no capacity freed since the last attempt");
      else if (plan.ranked.empty())
        d.reasons.push_back("no allowed region has nodes with an allowed GPU type");
      if (options_.enable_backfill && !res && e.job.shape.gpus > 0 && d.reasons.empty()) {
        double best_t = std::numeric_limits<double>::infinity();
        for (const RegionEstimate& o : plan.ranked) {
          int pool = state_.FindPool(o.region, o.gpu_type);
          int64_t extra = 0;
          double t = pool < 0 ? best_t : PoolFreeAt(pool, e.job.Demand().gpu_milli, &extra);
          if (t < best_t) {
            best_t = t;
            res = Reservation{id, pool, t, extra};
          }
        }
        if (res) {
          d.reservation_start_s = res->start_s;
          d.reasons.push_back(absl::StrFormat(
              "holds the backfill reservation: estimated start at t=%.0fs in %s (%s)",
              res->start_s, fleet_->region(state_.pool_region(res->pool)).name,
              fleet_->gpu_type_name(state_.pool_gpu_type(res->pool))));
        } else {
          d.reasons.push_back(absl::StrCat("never fits: needs ", Gpus(e.job.Demand().gpu_milli),
                                           " GPUs of an allowed type in one region, more than "
                                           "any allowed region has"));
        }
      }
      if (options_.explain)
        for (size_t ri = 0; ri < fleet_->regions().size(); ++ri)
          d.plan.why_not.push_back(
              planner_->ExplainRegion(state_, e.job, RegionId(static_cast<int32_t>(ri))));
      d.plan.ranked = std::move(plan.ranked);
      out.push_back(std::move(d));
      if (!skip) ++waiting;  // skipped jobs cost almost nothing: do not count them
    }
  }
  return out;
}

}  // namespace meridian
