#include "controller/controller.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "controller/validate.h"
#include "core/check.h"

namespace meridian::controller {

namespace {

constexpr char kCordonTaint[] = "meridian.io/cordoned";

bool ReplicaActiveState(int s) { return s == v1::REPLICA_SCHEDULED || s == v1::REPLICA_RUNNING; }

std::string StateWord(int s) {
  switch (s) {
    case v1::JOB_PENDING:
      return "pending";
    case v1::JOB_SCHEDULED:
      return "scheduled";
    case v1::JOB_RUNNING:
      return "running";
    case v1::JOB_SUCCEEDED:
      return "succeeded";
    case v1::JOB_FAILED:
      return "failed";
    case v1::JOB_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string FormatShape(const TaskShape& s) {
  std::string out = absl::StrCat("cpu ", s.cpu_milli / 1000.0, ", memory ", s.memory_mib, "Mi");
  if (s.gpus > 0) absl::StrAppend(&out, ", gpus ", s.total_gpu_milli() / 1000.0);
  return out;
}

}  // namespace

Controller::Controller(ControllerOptions options, store::Store* store, const Clock* clock)
    : options_(std::move(options)), store_(store), clock_(clock) {
  RegisterBuiltinPolicies(registry_);
}

Controller::~Controller() { Stop(); }

bool Controller::IsFinal(int state) const {
  return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED || state == v1::JOB_CANCELLED;
}

absl::Status Controller::Start() {
  absl::StatusOr<store::Snapshot> snap = store_->Load();
  if (!snap.ok()) return snap.status();
  std::lock_guard<std::mutex> l(mu_);
  double now = clock_->NowSeconds();
  for (store::NodeRecord& n : snap->nodes) {
    NodeEntry e;
    e.rec = std::move(n);
    // Grace after a restart: agents get a full timeout to report in.
    e.ready = true;
    e.last_heartbeat_s = now;
    std::string name = e.rec.name;
    nodes_.emplace(name, std::move(e));
  }
  for (store::JobRecord& r : snap->jobs) {
    JobEntry j;
    j.rec = std::move(r);
    next_job_id_ = std::max(next_job_id_, j.rec.id + 1);
    if (!tenants_.contains(j.rec.tenant))
      tenants_.emplace(j.rec.tenant, TenantId(static_cast<int32_t>(tenants_.size())));
    // Structure only; Rebuild() resolves against the fleet.
    absl::StatusOr<spec::JobSpec> spec = spec::ParseJobSpec(j.rec.spec, "spec", nullptr, nullptr);
    if (spec.ok()) {
      j.spec = *std::move(spec);
    } else {
      j.spec_ok = false;
    }
    uint64_t id = j.rec.id;
    jobs_.emplace(id, std::move(j));
  }
  for (store::ReplicaRecord& r : snap->replicas) {
    auto it = jobs_.find(r.job_id);
    if (it == jobs_.end()) continue;
    JobEntry& j = it->second;
    if (r.index < 0 || r.index >= 100000) continue;
    if (j.replicas.size() <= size_t(r.index)) j.replicas.resize(size_t(r.index) + 1);
    j.replicas[size_t(r.index)].rec = std::move(r);
  }
  for (auto& [id, j] : jobs_) {
    if (IsFinal(j.rec.state)) continue;
    if (j.rec.master_port > 0) ports_in_use_.insert(j.rec.master_port);
    for (ReplicaEntry& r : j.replicas) {
      if (!ReplicaActiveState(r.rec.state)) continue;
      auto n = nodes_.find(r.rec.node);
      if (n != nodes_.end()) n->second.replicas.insert({id, r.rec.index});
    }
    if (j.rec.state == v1::JOB_PENDING) unscheduled_.insert(id);
  }
  topology_dirty_ = true;
  dirty_ = true;
  RunPass();
  if (options_.start_loop) loop_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Controller::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  loop_cv_.notify_all();
  events_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
}

void Controller::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    loop_cv_.wait_for(l, std::chrono::duration<double>(options_.loop_interval_s));
    if (stopping_) break;
    RunPass();
  }
}

void Controller::Tick() {
  std::lock_guard<std::mutex> l(mu_);
  RunPass();
}

// ---------------------------------------------------------------- helpers

std::string Controller::RunKey(uint64_t job, int32_t replica, int32_t attempt) const {
  return absl::StrCat("j", job, "-r", replica, "-a", attempt);
}

std::string HostOfAddress(const std::string& a) {
  size_t colon = a.rfind(':');
  std::string host = colon == std::string::npos ? a : a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host.empty() ? "127.0.0.1" : host;
}

std::string Controller::NodeHost(const NodeEntry& n) const { return HostOfAddress(n.rec.address); }

void Controller::Persist(JobEntry& j, store::Batch* batch, bool replicas) {
  j.rec.updated_s = clock_->NowSeconds();
  batch->jobs.push_back(j.rec);
  if (replicas)
    for (const ReplicaEntry& r : j.replicas) batch->replicas.push_back(r.rec);
  touched_.push_back(&j);
}

uint64_t Controller::Commit(store::Batch batch, store::Store::Done done) {
  if (batch.empty() && !done) {
    touched_.clear();
    return 0;
  }
  uint64_t seq =
      store_->Enqueue(std::move(batch), [done = std::move(done)](const absl::Status& st) {
        // A controller that cannot persist must not keep answering: crash and
        // let the restart recover from the store.
        MERIDIAN_CHECK(st.ok(), "store commit failed");
        if (done) done(st);
      });
  for (JobEntry* j : touched_) j->seq = seq;
  touched_.clear();
  return seq;
}

void Controller::Emit(const JobEntry& j) {
  v1::JobEvent ev;
  ev.set_sequence(next_event_++);
  *ev.mutable_job() = ToProto(j, false);
  events_.push_back(std::move(ev));
  while (events_.size() > options_.max_events) events_.pop_front();
  events_cv_.notify_all();
}

int32_t Controller::AllocatePort() {
  for (int32_t i = 0; i < options_.master_port_count; ++i) {
    int32_t p = options_.master_port_base + (next_port_++ % options_.master_port_count);
    if (!ports_in_use_.contains(p)) {
      ports_in_use_.insert(p);
      return p;
    }
  }
  return options_.master_port_base;  // every port in use: share (very unlikely)
}

v1::Job Controller::ToProto(const JobEntry& j, bool with_spec) const {
  v1::Job out;
  out.set_id(j.rec.id);
  out.set_name(j.rec.name);
  out.set_tenant(j.rec.tenant);
  out.set_state(static_cast<v1::JobState>(j.rec.state));
  out.set_replicas(static_cast<int32_t>(j.replicas.size()));
  v1::Shape* s = out.mutable_shape();
  s->set_cpu_milli(j.spec.job.shape.cpu_milli);
  s->set_memory_mib(j.spec.job.shape.memory_mib);
  s->set_gpus(j.spec.job.shape.gpus);
  s->set_gpu_milli(j.spec.job.shape.gpu_milli);
  out.set_attempt(j.rec.attempt);
  out.set_failures(j.rec.failures);
  out.set_max_retries(j.spec.max_retries);
  out.set_message(j.rec.message);
  out.set_created_at(j.rec.created_s);
  out.set_updated_at(j.rec.updated_s);
  out.set_priority(j.spec.job.priority);
  for (const ReplicaEntry& r : j.replicas) {
    v1::Replica* p = out.add_replica_status();
    p->set_index(r.rec.index);
    p->set_attempt(r.rec.attempt);
    p->set_node(r.rec.node);
    auto n = nodes_.find(r.rec.node);
    if (n != nodes_.end()) p->set_region(n->second.rec.region);
    p->set_state(static_cast<v1::ReplicaState>(r.rec.state));
    p->set_exit_code(r.rec.exit_code);
    p->set_message(r.rec.message);
    p->set_ready(r.rec.state == v1::REPLICA_RUNNING && r.ready);
  }
  for (const std::string& a : j.spec.command) out.add_command(a);
  if (with_spec) out.set_spec(j.rec.spec);
  out.set_master_port(j.rec.master_port);
  return out;
}

v1::Node Controller::ToProto(const NodeEntry& n) const {
  v1::Node out;
  out.set_name(n.rec.name);
  out.set_region(n.rec.region);
  out.set_zone(n.rec.zone);
  out.set_gpu_type(n.rec.gpu_type);
  out.set_gpus(n.rec.gpus);
  out.set_cpu_milli(n.rec.cpu_milli);
  out.set_memory_mib(n.rec.memory_mib);
  out.set_address(n.rec.address);
  out.set_ready(n.ready);
  out.set_cordoned(n.rec.cordoned);
  out.set_last_heartbeat(n.last_heartbeat_s);
  out.set_limits(n.rec.limits);
  int64_t cpu = 0, mem = 0, gpu = 0;
  for (const auto& [jid, idx] : n.replicas) {
    auto it = jobs_.find(jid);
    if (it == jobs_.end()) continue;
    const TaskShape& s = it->second.spec.job.shape;
    cpu += s.cpu_milli;
    mem += s.memory_mib;
    gpu += s.total_gpu_milli();
  }
  out.set_replicas(static_cast<int32_t>(n.replicas.size()));
  out.mutable_used()->set_cpu_milli(cpu);
  out.mutable_used()->set_memory_mib(mem);
  out.mutable_used()->set_gpus(static_cast<int32_t>(gpu / 1000));
  out.mutable_used()->set_gpu_milli(static_cast<int32_t>(gpu % 1000));
  return out;
}

// ---------------------------------------------------------------- jobs

void Controller::Submit(const std::string& text, const std::string& filename, SubmitDone done,
                        const SubmitCheck& check) {
  std::shared_ptr<const Fleet> fleet;
  uint64_t generation;
  {
    std::lock_guard<std::mutex> l(mu_);
    fleet = fleet_;
    generation = fleet_generation_;
  }
  std::string fname = filename.empty() ? "spec" : filename;
  absl::StatusOr<spec::JobSpec> spec = spec::ParseJobSpec(text, fname, fleet.get(), nullptr);
  if (spec.ok()) {
    if (absl::Status st =
            CheckSharedPaths(options_.shared_dir, spec->tenant, spec->shared_paths, fname);
        !st.ok())
      spec = st;
  }
  if (!spec.ok()) {
    done(spec.status());
    return;
  }
  if (check) {
    if (absl::Status st = check(*spec); !st.ok()) {
      done(st);
      return;
    }
  }
  std::unique_lock<std::mutex> l(mu_);
  if (stopping_) {
    l.unlock();
    done(absl::UnavailableError("controller is shutting down"));
    return;
  }
  if (generation != fleet_generation_) {  // the fleet changed meanwhile: resolve again
    spec = spec::ParseJobSpec(text, fname, fleet_.get(), nullptr);
    if (!spec.ok()) {
      l.unlock();
      done(spec.status());
      return;
    }
  }
  if (!tenants_.contains(spec->tenant)) {
    TenantId tid(static_cast<int32_t>(tenants_.size()));
    tenants_.emplace(spec->tenant, tid);
    if (scheduler_) {
      Tenant t;
      t.name = spec->tenant;
      t.id = tid;
      MERIDIAN_CHECK(scheduler_->AddTenant(t).ok(), "tenant rejected");
    }
  }
  JobEntry j;
  j.rec.id = next_job_id_++;
  j.rec.name = spec->job.name;
  j.rec.tenant = spec->tenant;
  j.rec.spec = text;
  j.rec.state = v1::JOB_PENDING;
  j.rec.created_s = clock_->NowSeconds();
  j.rec.message = "queued";
  j.spec = *std::move(spec);
  j.replicas.resize(size_t(j.spec.job.replicas));
  for (size_t i = 0; i < j.replicas.size(); ++i) {
    j.replicas[i].rec.job_id = j.rec.id;
    j.replicas[i].rec.index = static_cast<int32_t>(i);
    j.replicas[i].rec.state = v1::REPLICA_PENDING;
  }
  uint64_t id = j.rec.id;
  JobEntry& stored = jobs_.emplace(id, std::move(j)).first->second;
  unscheduled_.insert(id);
  dirty_ = true;
  store::Batch batch;
  Persist(stored, &batch, true);
  Emit(stored);
  v1::Job view = ToProto(stored, false);
  Commit(std::move(batch), [done = std::move(done), view = std::move(view)](
                               const absl::Status&) mutable { done(std::move(view)); });
}

void Controller::SetAddress(const std::string& address) {
  std::lock_guard<std::mutex> l(mu_);
  options_.address = address;
}

absl::StatusOr<v1::Job> Controller::GetJob(uint64_t id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return ToProto(it->second, true);
}

std::vector<v1::Job> Controller::ListJobs(const std::set<int>& states, size_t limit) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::Job> out;
  for (const auto& [id, j] : jobs_) {
    if (!states.empty() && !states.contains(j.rec.state)) continue;
    out.push_back(ToProto(j, false));
    if (limit > 0 && out.size() >= limit) break;
  }
  return out;
}

absl::StatusOr<v1::Job> Controller::Cancel(uint64_t id) {
  uint64_t seq = 0;
  v1::Job view;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
    JobEntry& j = it->second;
    if (IsFinal(j.rec.state))
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " already ", StateWord(j.rec.state)));
    store::Batch batch;
    StopReplicas(j, "cancelled");
    RemoveFromScheduler(j);
    j.rec.state = v1::JOB_CANCELLED;
    j.rec.message = "cancelled by request";
    Persist(j, &batch, true);
    Emit(j);
    dirty_ = true;
    view = ToProto(j, false);
    seq = Commit(std::move(batch));
  }
  store_->WaitCommitted(seq);
  return view;
}

std::vector<v1::JobEvent> Controller::WaitEvents(uint64_t after, uint64_t job_id,
                                                 double timeout_s) const {
  std::unique_lock<std::mutex> l(mu_);
  auto has_new = [&] {
    return stopping_ || (!events_.empty() && events_.back().sequence() > after);
  };
  events_cv_.wait_for(l, std::chrono::duration<double>(timeout_s), has_new);
  std::vector<v1::JobEvent> out;
  for (const v1::JobEvent& e : events_) {
    if (e.sequence() <= after) continue;
    if (job_id != 0 && e.job().id() != job_id) continue;
    out.push_back(e);
  }
  if (out.empty() && !events_.empty() && events_.back().sequence() > after) {
    // Nothing for this job: move the caller's cursor past what it has seen.
    v1::JobEvent marker;
    marker.set_sequence(events_.back().sequence());
    out.push_back(std::move(marker));
  }
  return out;
}

uint64_t Controller::LatestEvent() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_event_ - 1;
}

absl::StatusOr<Controller::LogLocation> Controller::LogSource(
    uint64_t id, int32_t replica, std::optional<int32_t> attempt) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  const JobEntry& j = it->second;
  if (replica < 0 || size_t(replica) >= j.replicas.size())
    return absl::InvalidArgumentError(
        absl::StrCat("job ", id, " has replicas 0..", j.replicas.size() - 1, ", not ", replica));
  const ReplicaEntry& r = j.replicas[size_t(replica)];
  std::string node;
  int32_t shown = r.rec.attempt;
  if (attempt && *attempt != r.rec.attempt) {
    auto e = r.earlier_nodes.find(*attempt);
    if (e == r.earlier_nodes.end()) {
      std::vector<std::string> known;
      for (const auto& [a, n] : r.earlier_nodes) known.push_back(absl::StrCat(a));
      if (!r.rec.node.empty()) known.push_back(absl::StrCat(r.rec.attempt));
      return absl::NotFoundError(absl::StrCat(
          "job ", id, " replica ", replica, " attempt ", *attempt, ": not known here (attempts ",
          known.empty() ? "none" : absl::StrJoin(known, ", "), ")"));
    }
    node = e->second;
    shown = *attempt;
  } else if (!r.rec.node.empty()) {
    node = r.rec.node;
  } else if (!attempt && !r.earlier_nodes.empty()) {
    // Waiting for a retry: the latest attempt that ran says why it failed.
    node = r.earlier_nodes.rbegin()->second;
    shown = r.earlier_nodes.rbegin()->first;
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " replica ", replica, " has not been placed yet"));
  }
  auto n = nodes_.find(node);
  if (n == nodes_.end())
    return absl::UnavailableError(absl::StrCat("node ", node, " is unknown"));
  return LogLocation{n->second.rec.address, RunKey(id, replica, shown), node, shown};
}

bool Controller::ReplicaActive(uint64_t id, int32_t replica, const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || replica < 0 || size_t(replica) >= it->second.replicas.size())
    return false;
  const ReplicaEntry& r = it->second.replicas[size_t(replica)];
  return ReplicaActiveState(r.rec.state) && RunKey(id, replica, r.rec.attempt) == key;
}

std::optional<std::pair<std::string, std::string>> Controller::RunServiceAccount(
    const std::string& key) const {
  uint64_t id = 0;
  int32_t replica = 0, attempt = 0;
  std::vector<absl::string_view> parts = absl::StrSplit(key, '-');
  if (parts.size() != 3 || parts[0].size() < 2 || parts[0][0] != 'j' || parts[1].size() < 2 ||
      parts[1][0] != 'r' || parts[2].size() < 2 || parts[2][0] != 'a' ||
      !absl::SimpleAtoi(parts[0].substr(1), &id) ||
      !absl::SimpleAtoi(parts[1].substr(1), &replica) ||
      !absl::SimpleAtoi(parts[2].substr(1), &attempt))
    return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.spec.service_account.empty() || replica < 0 ||
      size_t(replica) >= it->second.replicas.size())
    return std::nullopt;
  const ReplicaEntry& r = it->second.replicas[size_t(replica)];
  if (!ReplicaActiveState(r.rec.state) || r.rec.attempt != attempt) return std::nullopt;
  return std::make_pair(it->second.spec.service_account, it->second.rec.tenant);
}

// ---------------------------------------------------------------- nodes

std::vector<v1::Node> Controller::ListNodes() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::Node> out;
  for (const auto& [name, n] : nodes_) out.push_back(ToProto(n));
  return out;
}

absl::StatusOr<v1::Node> Controller::Cordon(const std::string& name, bool cordon) {
  uint64_t seq = 0;
  v1::Node view;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = nodes_.find(name);
    if (it == nodes_.end())
      return absl::NotFoundError(absl::StrCat("node ", QuoteInput(name), " not found"));
    NodeEntry& n = it->second;
    if (n.rec.cordoned != cordon) {
      n.rec.cordoned = cordon;
      topology_dirty_ = true;
    }
    store::Batch batch;
    batch.nodes.push_back(n.rec);
    view = ToProto(n);
    seq = Commit(std::move(batch));
  }
  store_->WaitCommitted(seq);
  loop_cv_.notify_all();
  return view;
}

absl::StatusOr<v1::DrainResponse> Controller::Drain(const std::string& name) {
  uint64_t seq = 0;
  v1::DrainResponse resp;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = nodes_.find(name);
    if (it == nodes_.end())
      return absl::NotFoundError(absl::StrCat("node ", QuoteInput(name), " not found"));
    NodeEntry& n = it->second;
    n.rec.cordoned = true;
    topology_dirty_ = true;
    store::Batch batch;
    batch.nodes.push_back(n.rec);
    std::set<uint64_t> ids;
    for (const auto& [jid, idx] : n.replicas) ids.insert(jid);
    for (uint64_t jid : ids) {
      JobEntry& j = jobs_.at(jid);
      RemoveFromScheduler(j);
      Requeue(j, absl::StrCat("node ", name, " drained"), &batch);
      resp.add_requeued_jobs(jid);
    }
    *resp.mutable_node() = ToProto(n);
    seq = Commit(std::move(batch));
  }
  store_->WaitCommitted(seq);
  loop_cv_.notify_all();
  return resp;
}

std::vector<v1::Region> Controller::ListRegions() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, v1::Region> regions;
  for (const auto& [name, n] : nodes_) {
    v1::Region& r = regions[n.rec.region];
    r.set_name(n.rec.region);
    r.set_nodes(r.nodes() + 1);
    if (n.ready) r.set_ready_nodes(r.ready_nodes() + 1);
    r.set_gpus(r.gpus() + n.rec.gpus);
    r.set_cpu_milli(r.cpu_milli() + n.rec.cpu_milli);
    r.set_memory_mib(r.memory_mib() + n.rec.memory_mib);
    r.set_running_replicas(r.running_replicas() + static_cast<int32_t>(n.replicas.size()));
  }
  std::vector<v1::Region> out;
  for (auto& [name, r] : regions) out.push_back(std::move(r));
  return out;
}

// ---------------------------------------------------------------- agents

absl::StatusOr<v1::RegisterResponse> Controller::Register(const v1::Node& node) {
  auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("node.", field, ": ", why));
  };
  auto name_ok = [](const std::string& s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
        return false;
    return true;
  };
  if (!name_ok(node.name())) return bad("name", "1-128 letters, digits, '-', '_' or '.'");
  if (!name_ok(node.region())) return bad("region", "1-128 letters, digits, '-', '_' or '.'");
  if (!node.zone().empty() && !name_ok(node.zone()))
    return bad("zone", "letters, digits, '-', '_' or '.'");
  if (node.cpu_milli() <= 0) return bad("cpu_milli", "must be positive");
  if (node.memory_mib() <= 0) return bad("memory_mib", "must be positive");
  if (node.gpus() < 0 || node.gpus() > 1024) return bad("gpus", "must be 0..1024");
  if (node.gpus() > 0 && node.gpu_type().empty()) return bad("gpu_type", "needed when gpus > 0");
  if (node.address().empty()) return bad("address", "the agent's log service address is needed");
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    NodeEntry& n = nodes_[node.name()];
    store::NodeRecord rec;
    rec.name = node.name();
    rec.region = node.region();
    rec.zone = node.zone().empty() ? "default" : node.zone();
    rec.gpu_type = node.gpus() > 0 ? node.gpu_type() : "";
    rec.gpus = node.gpus();
    rec.cpu_milli = node.cpu_milli();
    rec.memory_mib = node.memory_mib();
    rec.address = node.address();
    rec.limits = node.limits();
    rec.cordoned = n.rec.cordoned;
    bool shape_changed = n.rec.name.empty() || n.rec.region != rec.region ||
                         n.rec.zone != rec.zone || n.rec.gpu_type != rec.gpu_type ||
                         n.rec.gpus != rec.gpus || n.rec.cpu_milli != rec.cpu_milli ||
                         n.rec.memory_mib != rec.memory_mib;
    n.rec = rec;
    if (shape_changed || !n.ready) topology_dirty_ = true;
    n.ready = true;
    n.last_heartbeat_s = clock_->NowSeconds();
    dirty_ = true;
    store::Batch batch;
    batch.nodes.push_back(rec);
    seq = Commit(std::move(batch));
  }
  store_->WaitCommitted(seq);
  loop_cv_.notify_all();
  v1::RegisterResponse resp;
  resp.set_heartbeat_interval_s(options_.heartbeat_interval_s);
  return resp;
}

v1::Assignment Controller::MakeAssignment(const JobEntry& j, const ReplicaEntry& r) const {
  v1::Assignment a;
  a.set_key(RunKey(j.rec.id, r.rec.index, r.rec.attempt));
  a.set_job_id(j.rec.id);
  a.set_replica(r.rec.index);
  a.set_attempt(r.rec.attempt);
  for (const std::string& s : j.spec.command) a.add_argv(s);
  a.mutable_shape()->set_cpu_milli(j.spec.job.shape.cpu_milli);
  a.mutable_shape()->set_memory_mib(j.spec.job.shape.memory_mib);
  a.mutable_shape()->set_gpus(j.spec.job.shape.gpus);
  a.mutable_shape()->set_gpu_milli(j.spec.job.shape.gpu_milli);
  a.set_grace_s(j.spec.grace_s);
  a.set_readiness_path(j.spec.readiness_path);
  a.set_tenant(j.rec.tenant);
  auto& env = *a.mutable_env();
  for (const auto& [k, v] : j.spec.env) env[k] = v;
  // Secrets are opened here, for this run's assignment only: they travel to
  // its node inside the heartbeat answer (mutual TLS) and are stored nowhere
  // in clear.
  for (const auto& [var, name] : j.spec.secret_env) {
    absl::StatusOr<std::string> v =
        secrets_ ? secrets_(j.rec.tenant, name) : absl::NotFoundError("no secret store");
    if (v.ok()) env[var] = *v;
  }
  if (!j.spec.service_account.empty() && run_tokens_)
    a.set_service_token(run_tokens_(a.key(), j.spec.service_account));
  const NodeEntry* master = nullptr;
  if (!j.replicas.empty()) {
    auto m = nodes_.find(j.replicas[0].rec.node);
    if (m != nodes_.end()) master = &m->second;
  }
  int local_rank = 0, local_world = 0;
  std::vector<std::string> peers, regions;
  for (const ReplicaEntry& o : j.replicas) {
    if (o.rec.node == r.rec.node) {
      if (o.rec.index < r.rec.index) ++local_rank;
      ++local_world;
    }
    auto n = nodes_.find(o.rec.node);
    peers.push_back(n == nodes_.end() ? "" : NodeHost(n->second));
    regions.push_back(n == nodes_.end() ? "" : n->second.rec.region);
  }
  auto self = nodes_.find(r.rec.node);
  env["MASTER_ADDR"] = master ? NodeHost(*master) : "127.0.0.1";
  env["MASTER_PORT"] = absl::StrCat(j.rec.master_port);
  env["RANK"] = absl::StrCat(r.rec.index);
  env["WORLD_SIZE"] = absl::StrCat(j.replicas.size());
  env["LOCAL_RANK"] = absl::StrCat(local_rank);
  env["LOCAL_WORLD_SIZE"] = absl::StrCat(local_world);
  env["MERIDIAN_JOB_ID"] = absl::StrCat(j.rec.id);
  env["MERIDIAN_JOB_NAME"] = j.rec.name;
  env["MERIDIAN_TENANT"] = j.rec.tenant;
  env["MERIDIAN_REPLICA"] = absl::StrCat(r.rec.index);
  env["MERIDIAN_ATTEMPT"] = absl::StrCat(r.rec.attempt);
  env["MERIDIAN_NODE"] = r.rec.node;
  env["MERIDIAN_REGION"] = self == nodes_.end() ? "" : self->second.rec.region;
  env["MERIDIAN_ZONE"] = self == nodes_.end() ? "" : self->second.rec.zone;
  env["MERIDIAN_PEERS"] = absl::StrJoin(peers, ",");
  env["MERIDIAN_PEER_REGIONS"] = absl::StrJoin(regions, ",");
  env["MERIDIAN_GPUS"] = absl::StrCat(j.spec.job.shape.total_gpu_milli() / 1000.0);
  env["MERIDIAN_CONTROLLER"] = options_.address;
  env["MERIDIAN_RUN_KEY"] = a.key();
  return a;
}

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& req) {
  v1::HeartbeatResponse resp;
  std::lock_guard<std::mutex> l(mu_);
  auto nit = nodes_.find(req.node());
  if (nit == nodes_.end()) {
    resp.set_reregister(true);
    return resp;
  }
  NodeEntry& node = nit->second;
  double now = clock_->NowSeconds();
  node.last_heartbeat_s = now;
  if (!node.ready) {
    node.ready = true;
    if (scheduler_ && node.id.Valid()) scheduler_->SetNodeHealthy(node.id, true);
    dirty_ = true;
  }
  uint64_t committed = store_->committed();
  store::Batch batch;
  for (const v1::RunReport& run : req.runs()) {
    bool terminal = run.state() == v1::REPLICA_SUCCEEDED || run.state() == v1::REPLICA_FAILED ||
                    run.state() == v1::REPLICA_STOPPED;
    auto jit = jobs_.find(run.job_id());
    bool known = jit != jobs_.end() && run.replica() >= 0 &&
                 size_t(run.replica()) < jit->second.replicas.size();
    if (!known) {
      if (terminal) resp.add_acknowledged(run.key());
      continue;
    }
    JobEntry& j = jit->second;
    ReplicaEntry& r = j.replicas[size_t(run.replica())];
    bool current = r.rec.attempt == run.attempt() && r.rec.node == req.node();
    if (!current) {
      // An old attempt: nothing to record, once the newer state is durable.
      if (terminal && j.seq <= committed) resp.add_acknowledged(run.key());
      continue;
    }
    if (!ReplicaActiveState(r.rec.state)) {
      // Already recorded (or stopped by us): acknowledge once that is durable.
      if (terminal && j.seq <= committed) resp.add_acknowledged(run.key());
      continue;
    }
    if (run.state() == v1::REPLICA_RUNNING) {
      bool ready = j.spec.readiness_path.empty() || run.ready();
      bool changed = ready != r.ready && r.rec.state == v1::REPLICA_RUNNING;
      r.ready = ready;
      if (changed) Emit(j);
      if (r.rec.state == v1::REPLICA_SCHEDULED) {
        r.rec.state = v1::REPLICA_RUNNING;
        bool all = std::all_of(j.replicas.begin(), j.replicas.end(), [](const ReplicaEntry& o) {
          return o.rec.state == v1::REPLICA_RUNNING || o.rec.state == v1::REPLICA_SUCCEEDED;
        });
        if (all && j.rec.state == v1::JOB_SCHEDULED) {
          j.rec.state = v1::JOB_RUNNING;
          j.rec.message = "running";
        }
        Persist(j, &batch, true);
        Emit(j);
      }
      continue;
    }
    if (!terminal) continue;
    r.rec.exit_code = run.exit_code();
    r.rec.message = run.message();
    if (run.state() == v1::REPLICA_SUCCEEDED) {
      r.rec.state = v1::REPLICA_SUCCEEDED;
      node.replicas.erase({j.rec.id, r.rec.index});
      bool all = std::all_of(j.replicas.begin(), j.replicas.end(), [](const ReplicaEntry& o) {
        return o.rec.state == v1::REPLICA_SUCCEEDED;
      });
      if (all) {
        RemoveFromScheduler(j);
        ReleasePort(j);
        j.rec.state = v1::JOB_SUCCEEDED;
        j.rec.message = "every replica exited 0";
        dirty_ = true;
      }
    } else {
      r.rec.state = v1::REPLICA_FAILED;
      node.replicas.erase({j.rec.id, r.rec.index});
      std::string why = run.state() == v1::REPLICA_STOPPED
                            ? absl::StrCat("replica ", r.rec.index, " stopped on ", req.node(),
                                           ": ", run.message())
                            : absl::StrCat("replica ", r.rec.index, " exited with code ",
                                           run.exit_code(), " on ", req.node());
      // The agent adds the run's last stderr line: the reason, in `job get`.
      if (run.state() != v1::REPLICA_STOPPED && !run.message().empty())
        absl::StrAppend(&why, ": ", run.message().substr(0, 300));
      EndAttempt(j, why, &batch);
    }
    Persist(j, &batch, true);
    Emit(j);
  }
  for (const auto& [jid, idx] : node.replicas) {
    const JobEntry& j = jobs_.at(jid);
    const ReplicaEntry& r = j.replicas[size_t(idx)];
    if (!ReplicaActiveState(r.rec.state) || j.assign_seq > committed) continue;
    *resp.add_assignments() = MakeAssignment(j, r);
  }
  Commit(std::move(batch));
  if (dirty_) loop_cv_.notify_all();
  return resp;
}

// ---------------------------------------------------------------- state changes

void Controller::StopReplicas(JobEntry& j, const std::string& why) {
  for (ReplicaEntry& r : j.replicas) {
    if (!ReplicaActiveState(r.rec.state)) continue;
    r.rec.state = v1::REPLICA_STOPPED;
    r.rec.message = why;
    auto n = nodes_.find(r.rec.node);
    if (n != nodes_.end()) n->second.replicas.erase({j.rec.id, r.rec.index});
  }
}

void Controller::RemoveFromScheduler(JobEntry& j) {
  if (j.in_scheduler && scheduler_) (void)scheduler_->Remove(JobId(static_cast<int32_t>(j.rec.id)));
  j.in_scheduler = false;
  unscheduled_.erase(j.rec.id);
}

void Controller::ReleasePort(JobEntry& j) {
  if (j.rec.master_port > 0) ports_in_use_.erase(j.rec.master_port);
}

void Controller::ResetReplicas(JobEntry& j) {
  ++j.rec.attempt;
  for (ReplicaEntry& r : j.replicas) {
    if (!r.rec.node.empty()) {
      r.earlier_nodes[r.rec.attempt] = r.rec.node;
      if (r.earlier_nodes.size() > 16) r.earlier_nodes.erase(r.earlier_nodes.begin());
    }
    auto n = nodes_.find(r.rec.node);
    if (n != nodes_.end()) n->second.replicas.erase({j.rec.id, r.rec.index});
    r.rec.attempt = j.rec.attempt;
    r.rec.node.clear();
    r.rec.state = v1::REPLICA_PENDING;
    r.rec.exit_code = 0;
    r.rec.message.clear();
  }
  ReleasePort(j);
  j.rec.master_port = 0;
  j.rec.state = v1::JOB_PENDING;
}

void Controller::EndAttempt(JobEntry& j, const std::string& why, store::Batch* batch) {
  StopReplicas(j, absl::StrCat("gang stopped: ", why));
  RemoveFromScheduler(j);
  ++j.rec.failures;
  dirty_ = true;
  if (j.rec.failures > j.spec.max_retries) {
    ReleasePort(j);
    j.rec.state = v1::JOB_FAILED;
    j.rec.message =
        j.spec.max_retries == 0 ? why : absl::StrCat(why, " (after ", j.rec.failures, " attempts)");
    return;
  }
  // Record the failed attempt's replicas, then start a new attempt later.
  Persist(j, batch, true);
  Emit(j);
  double delay = j.spec.backoff_s * std::pow(2.0, j.rec.failures - 1);
  ResetReplicas(j);
  j.rec.not_before_s = clock_->NowSeconds() + delay;
  j.last_event = why;
  j.rec.message =
      absl::StrCat(why, "; retry ", j.rec.failures, "/", j.spec.max_retries, " in ", delay, "s");
  unscheduled_.insert(j.rec.id);
}

void Controller::Requeue(JobEntry& j, const std::string& why, store::Batch* batch) {
  StopReplicas(j, why);
  ResetReplicas(j);
  j.rec.not_before_s = 0;
  j.rec.message = absl::StrCat(why, "; re-queued whole");
  j.last_event = why;
  if (!j.in_scheduler) unscheduled_.insert(j.rec.id);
  dirty_ = true;
  Persist(j, batch, true);
  Emit(j);
}

// ---------------------------------------------------------------- scheduling

void Controller::DetectFailures(double now, store::Batch* batch) {
  for (auto& [name, n] : nodes_) {
    if (!n.ready || now - n.last_heartbeat_s <= options_.heartbeat_timeout_s) continue;
    n.ready = false;
    std::string why =
        absl::StrCat("node ", name, " lost (no heartbeat for ", options_.heartbeat_timeout_s, "s)");
    std::set<uint64_t> ids;
    for (const auto& [jid, idx] : n.replicas) ids.insert(jid);
    for (uint64_t jid : ids) {
      JobEntry& j = jobs_.at(jid);
      RemoveFromScheduler(j);
      Requeue(j, why, batch);
    }
    if (scheduler_ && n.id.Valid()) scheduler_->SetNodeHealthy(n.id, false);
  }
}

void Controller::Rebuild() {
  scheduler_.reset();
  fleet_.reset();
  node_names_.clear();
  ++fleet_generation_;
  for (auto& [name, n] : nodes_) n.id = NodeId();
  for (auto& [id, j] : jobs_) j.in_scheduler = false;
  if (!nodes_.empty()) {
    FleetBuilder b;
    std::map<std::string, RegionId> regions;
    std::map<std::string, ZoneId> zones;
    bool ok = true;
    for (auto& [name, n] : nodes_) {
      auto r = regions.find(n.rec.region);
      if (r == regions.end()) {
        Region reg;
        reg.name = n.rec.region;
        reg.cloud = "meridian";
        absl::StatusOr<RegionId> id = b.AddRegion(reg);
        if (!id.ok()) {
          ok = false;
          break;
        }
        r = regions.emplace(n.rec.region, *id).first;
      }
      std::string zkey = absl::StrCat(n.rec.region, "/", n.rec.zone);
      auto z = zones.find(zkey);
      if (z == zones.end()) {
        absl::StatusOr<ZoneId> id = b.AddZone(zkey, r->second);
        if (!id.ok()) {
          ok = false;
          break;
        }
        z = zones.emplace(zkey, *id).first;
      }
      NodeGroup g;
      g.name = name;
      g.region = r->second;
      g.zone = z->second;
      if (n.rec.gpus > 0) g.gpu_type = b.AddGpuType(n.rec.gpu_type);
      g.gpus_per_node = n.rec.gpus;
      g.cpu_milli = n.rec.cpu_milli;
      g.memory_mib = n.rec.memory_mib;
      g.count = 1;
      if (n.rec.cordoned) g.taints.push_back(kCordonTaint);
      absl::StatusOr<NodeGroupId> gid = b.AddNodeGroup(g);
      if (!gid.ok()) {
        ok = false;
        break;
      }
      if (!n.ready) (void)b.SetNodeHealth(*gid, 0, false);
    }
    absl::StatusOr<Fleet> fleet =
        ok ? std::move(b).Build() : absl::StatusOr<Fleet>(absl::InternalError("fleet"));
    if (fleet.ok()) fleet_ = std::make_shared<const Fleet>(*std::move(fleet));
  }
  if (fleet_) {
    node_names_.resize(fleet_->nodes().size());
    for (auto& [name, n] : nodes_) {
      n.id = fleet_->FindNode(absl::StrCat(name, "-0"));
      if (n.id.Valid()) node_names_[n.id.index()] = name;
    }
    SchedulerOptions so;
    so.max_waiting_per_pass = 64;
    so.enable_preemption = true;
    absl::StatusOr<std::unique_ptr<Scheduler>> s =
        Scheduler::Create(fleet_.get(), registry_, so, clock_, &rng_);
    MERIDIAN_CHECK(s.ok(), "scheduler creation failed");
    scheduler_ = *std::move(s);
    std::vector<std::pair<TenantId, std::string>> order;
    for (const auto& [name, id] : tenants_) order.push_back({id, name});
    std::sort(order.begin(), order.end());
    for (const auto& [id, name] : order) {
      Tenant t;
      t.name = name;
      t.id = id;
      MERIDIAN_CHECK(scheduler_->AddTenant(t).ok(), "tenant rejected");
    }
  }
  double now = clock_->NowSeconds();
  store::Batch batch;
  for (auto& [id, j] : jobs_) {
    if (IsFinal(j.rec.state)) continue;
    absl::StatusOr<spec::JobSpec> spec =
        spec::ParseJobSpec(j.rec.spec, "spec", fleet_.get(), nullptr);
    j.spec_ok = spec.ok();
    if (spec.ok()) j.spec = *std::move(spec);
    if (!scheduler_) continue;
    if (!j.spec_ok) {
      if (j.rec.state == v1::JOB_PENDING) {
        j.rec.state = v1::JOB_FAILED;
        j.rec.message =
            absl::StrCat("spec no longer matches the cluster: ", spec.status().message());
        unscheduled_.erase(id);
        Persist(j, &batch, true);
        Emit(j);
      }
      continue;
    }
    Job job = j.spec.job;
    job.id = JobId(static_cast<int32_t>(id));
    job.tenant = tenants_.at(j.rec.tenant);
    job.submit_time_s = j.rec.created_s;
    if (j.rec.state == v1::JOB_SCHEDULED || j.rec.state == v1::JOB_RUNNING) {
      std::vector<NodeId> nodes;
      for (const ReplicaEntry& r : j.replicas) {
        auto n = nodes_.find(r.rec.node);
        nodes.push_back(n == nodes_.end() ? NodeId() : n->second.id);
      }
      if (scheduler_->Adopt(job, nodes).ok()) {
        j.in_scheduler = true;
      } else {
        Requeue(j, "placement no longer valid after a cluster change", &batch);
      }
    }
  }
  // Jobs on nodes that are already NotReady are re-queued by DetectFailures;
  // pending ones are submitted by RunPass.
  for (auto& [id, j] : jobs_)
    if (j.rec.state == v1::JOB_PENDING && !IsFinal(j.rec.state)) unscheduled_.insert(id);
  (void)now;
  Commit(std::move(batch));
}

void Controller::Assign(JobEntry& j, const Plan& plan, store::Batch* batch) {
  MERIDIAN_CHECK(plan.replicas.size() == j.replicas.size(), "plan size mismatch");
  j.rec.state = v1::JOB_SCHEDULED;
  j.rec.master_port = AllocatePort();
  std::set<std::string> regions;
  for (size_t i = 0; i < j.replicas.size(); ++i) {
    ReplicaEntry& r = j.replicas[i];
    const std::string& node = node_names_[plan.replicas[i].allocation.node.index()];
    r.rec.node = node;
    r.rec.attempt = j.rec.attempt;
    r.rec.state = v1::REPLICA_SCHEDULED;
    r.rec.exit_code = 0;
    r.rec.message.clear();
    NodeEntry& n = nodes_.at(node);
    n.replicas.insert({j.rec.id, r.rec.index});
    regions.insert(n.rec.region);
  }
  j.rec.message = absl::StrCat("placed in ", absl::StrJoin(regions, ", "));
  j.last_event.clear();
  Persist(j, batch, true);
  Emit(j);
}

void Controller::RunPass() {
  if (stopping_) return;
  double now = clock_->NowSeconds();
  store::Batch batch;
  DetectFailures(now, &batch);
  if (topology_dirty_) {
    Commit(std::move(batch));  // keep order: earlier changes first
    batch = store::Batch();
    Rebuild();
    topology_dirty_ = false;
    dirty_ = true;
  }
  if (scheduler_) {
    for (auto it = unscheduled_.begin(); it != unscheduled_.end();) {
      JobEntry& j = jobs_.at(*it);
      if (j.rec.state != v1::JOB_PENDING || !j.spec_ok) {
        it = unscheduled_.erase(it);
        continue;
      }
      if (j.rec.not_before_s > now) {
        ++it;
        continue;
      }
      Job job = j.spec.job;
      job.id = JobId(static_cast<int32_t>(j.rec.id));
      job.tenant = tenants_.at(j.rec.tenant);
      job.submit_time_s = j.rec.created_s;
      absl::Status st = scheduler_->Submit(job);
      if (st.ok()) {
        j.in_scheduler = true;
        dirty_ = true;
      } else {
        j.rec.state = v1::JOB_FAILED;
        j.rec.message = std::string(st.message());
        Persist(j, &batch, true);
        Emit(j);
      }
      it = unscheduled_.erase(it);
    }
    if (dirty_ || now - last_pass_s_ >= 1.0) {
      dirty_ = false;
      last_pass_s_ = now;
      std::vector<JobEntry*> assigned;
      for (const Decision& d : scheduler_->Schedule()) {
        auto it = jobs_.find(static_cast<uint64_t>(d.job.value()));
        if (it == jobs_.end()) continue;
        JobEntry& j = it->second;
        switch (d.kind) {
          case DecisionKind::kPlaced:
          case DecisionKind::kBackfilled:
          case DecisionKind::kPreempting:
            Assign(j, d.plan, &batch);
            assigned.push_back(&j);
            break;
          case DecisionKind::kPreempted:
            // The scheduler re-queued it already.
            Requeue(j, "preempted by higher-priority work", &batch);
            break;
          case DecisionKind::kWaiting: {
            std::string why =
                d.reasons.empty()
                    ? absl::StrCat("waiting: no node has room for ", j.replicas.size(), " × {",
                                   FormatShape(j.spec.job.shape), "} now")
                    : absl::StrCat("waiting: ", absl::StrJoin(d.reasons, "; "));
            if (!j.last_event.empty()) absl::StrAppend(&why, "; previous attempt: ", j.last_event);
            if (why != j.rec.message) {
              j.rec.message = why;
              Emit(j);
            }
            break;
          }
        }
      }
      uint64_t seq = Commit(std::move(batch));
      for (JobEntry* j : assigned) j->assign_seq = seq;
      return;
    }
  }
  Commit(std::move(batch));
}

}  // namespace meridian::controller
