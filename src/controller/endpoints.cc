#include "controller/endpoints.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <algorithm>
#include <cmath>
#include <future>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/validate.h"
#include "core/model_format.h"
#include "nlohmann/json.hpp"

namespace meridian::controller {
namespace {

constexpr const char* kChildPrefix = "ep-";

// "ep-NAME-gGEN-N" -> (NAME, GEN, N); false for other job names.
bool ParseChildName(const std::string& job, std::string* name, int32_t* gen, int32_t* n) {
  if (job.rfind(kChildPrefix, 0) != 0) return false;
  size_t last = job.rfind('-');
  if (last == std::string::npos || last < 4) return false;
  size_t prev = job.rfind('-', last - 1);
  if (prev == std::string::npos || prev < 3 || job[prev + 1] != 'g') return false;
  if (!absl::SimpleAtoi(job.substr(last + 1), n) ||
      !absl::SimpleAtoi(job.substr(prev + 2, last - prev - 2), gen))
    return false;
  *name = job.substr(3, prev - 3);
  return !name->empty();
}

}  // namespace

int32_t Autoscaler::Decide(double now_s, std::optional<double> in_flight, int32_t current,
                           const spec::EndpointSpec& spec) {
  if (spec.max_replicas <= spec.min_replicas) return current;
  if (!in_flight) {
    above_since_ = below_since_ = -1;
    return current;
  }
  // Clamped as a double: the quotient may be huge (or not a number, which
  // ReportLoad refuses), and converting one outside int32's range is undefined.
  double wanted = std::ceil(*in_flight / spec.target_in_flight - 1e-9);
  if (!(wanted >= spec.min_replicas)) wanted = spec.min_replicas;  // NaN too
  if (wanted > spec.max_replicas) wanted = spec.max_replicas;
  int32_t want = static_cast<int32_t>(wanted);
  if (want > current) {
    below_since_ = -1;
    if (above_since_ < 0) above_since_ = now_s;
    if (now_s - above_since_ >= spec.scale_up_delay_s) {
      reason_ = absl::StrCat("scaled up to ", want, ": ", *in_flight,
                             " requests in flight, target ", spec.target_in_flight, " per replica");
      above_since_ = -1;
      return want;
    }
  } else if (want < current) {
    above_since_ = -1;
    if (below_since_ < 0) below_since_ = now_s;
    if (now_s - below_since_ >= spec.scale_down_delay_s) {
      reason_ = absl::StrCat("scaled down to ", want, ": ", *in_flight,
                             " requests in flight, target ", spec.target_in_flight, " per replica");
      below_since_ = -1;
      return want;
    }
  } else {
    above_since_ = below_since_ = -1;
  }
  return current;
}

EndpointManager::EndpointManager(EndpointManagerOptions options, Controller* controller,
                                 store::Store* store, const Clock* clock)
    : options_(std::move(options)), controller_(controller), store_(store), clock_(clock) {}

EndpointManager::~EndpointManager() { Stop(); }

absl::Status EndpointManager::Start() {
  absl::StatusOr<store::Snapshot> snap = store_->Load();
  if (!snap.ok()) return snap.status();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const store::EndpointRecord& r : snap->endpoints) {
      absl::StatusOr<spec::EndpointSpec> s = spec::ParseEndpointSpec(r.spec, r.name, nullptr);
      if (!s.ok()) continue;  // accepted once; cannot fail unless the parser changed
      Entry& e = endpoints_[r.name];
      e.rec = r;
      e.spec = *s;
    }
  }
  if (options_.start_loop) loop_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void EndpointManager::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
}

void EndpointManager::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    l.unlock();
    Tick();
    l.lock();
    cv_.wait_for(l, std::chrono::duration<double>(options_.interval_s), [&] { return stopping_; });
  }
}

// With a shared directory the controller can read: the model must be there
// and be a Meridian model, or every replica would crash-loop on it.
absl::Status EndpointManager::CheckModelFile(const spec::EndpointSpec& s,
                                             const std::string& filename) const {
  if (options_.shared_dir.empty() || s.model.empty()) return absl::OkStatus();
  std::error_code ec;
  if (!std::filesystem::is_directory(options_.shared_dir, ec)) return absl::OkStatus();
  const std::string path = absl::StrCat(options_.shared_dir, "/", s.tenant, "/", s.model);
  std::string where = filename;
  for (const spec::SharedPath& p : s.shared_paths)
    if (p.field == "model") where = absl::StrCat(filename, ":", p.line, ":", p.column);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": model: ", QuoteInput(s.model, 64),
        errno == ENOENT ? " does not exist" : " cannot be read",
        " in tenant ", s.tenant, "'s shared directory (", QuoteInput(path, 200),
        "); write it first (`meridian train --save`, or a training job's `save:`)"));
  char head[sizeof(kModelMagic)] = {};
  struct stat st;
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ssize_t n = regular ? ::read(fd, head, sizeof head) : 0;
  ::close(fd);
  if (!regular || n != static_cast<ssize_t>(sizeof head) ||
      std::memcmp(head, kModelMagic, sizeof head) != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": model: ", QuoteInput(s.model, 64),
        " is not a Meridian model (write one with `meridian train --save`; other formats need "
        "an endpoint that runs its own server)"));
  return absl::OkStatus();
}

absl::StatusOr<v1::Endpoint> EndpointManager::Apply(const std::string& text,
                                                    const std::string& filename,
                                                    const ApplyCheck& check) {
  absl::StatusOr<spec::EndpointSpec> s =
      spec::ParseEndpointSpec(text, filename.empty() ? "spec" : filename, nullptr);
  if (!s.ok()) return s.status();
  if (absl::Status st = CheckSharedPaths(options_.shared_dir, s->tenant, s->shared_paths,
                                         filename.empty() ? "spec" : filename);
      !st.ok())
    return st;
  if (absl::Status st = CheckModelFile(*s, filename.empty() ? "spec" : filename); !st.ok())
    return st;
  if (check) {
    std::string current;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = endpoints_.find(s->name);
      if (it != endpoints_.end() && !it->second.rec.deleted) current = it->second.spec.tenant;
    }
    if (absl::Status st = check(*s, current); !st.ok()) return st;
  }
  std::set<std::string> known;
  for (const v1::Region& r : controller_->ListRegions()) known.insert(r.name());
  for (size_t i = 0; i < s->regions.size(); ++i)
    if (!known.count(s->regions[i].name))
      return absl::InvalidArgumentError(
          absl::StrCat(filename.empty() ? "spec" : filename, ": regions[", i,
                       "]: no registered node in region ", QuoteInput(s->regions[i].name, 64),
                       "; regions: ", known.empty() ? "none" : absl::StrJoin(known, ", ")));
  store::EndpointRecord rec;
  std::string what;
  {
    std::lock_guard<std::mutex> l(mu_);
    double now = clock_->NowSeconds();
    auto it = endpoints_.find(s->name);
    if (it == endpoints_.end() || it->second.rec.deleted) {
      rec.name = s->name;
      rec.generation = it == endpoints_.end() ? 1 : it->second.rec.generation + 1;
      rec.desired = s->min_replicas;
      rec.created_s = now;
      what = "created";
    } else {
      rec = it->second.rec;
      const spec::EndpointSpec& old = it->second.spec;
      bool replace = old.model != s->model || old.cpu_milli != s->cpu_milli ||
                     old.memory_mib != s->memory_mib || old.gpus != s->gpus ||
                     old.tenant != s->tenant;
      std::vector<std::string> a, b;
      for (const auto& r : old.regions) a.push_back(absl::StrCat(r.name, "=", r.weight));
      for (const auto& r : s->regions) b.push_back(absl::StrCat(r.name, "=", r.weight));
      replace |= a != b;
      if (replace) ++rec.generation;
      rec.desired = std::clamp(rec.desired, s->min_replicas, s->max_replicas);
      what = replace ? absl::StrCat("updated: rolling out generation ", rec.generation)
                     : "updated in place";
    }
    rec.spec = text;
    rec.updated_s = now;
    rec.deleted = false;
  }
  store::Batch batch;
  batch.endpoints.push_back(rec);
  if (absl::Status st = store_->Write(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = endpoints_[rec.name];
  e.rec = rec;
  e.spec = *std::move(s);
  e.message = what;
  e.last_event = what;
  return ToProto(e);
}

absl::StatusOr<v1::Endpoint> EndpointManager::Get(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = endpoints_.find(name);
  if (it == endpoints_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, e] : endpoints_) names.push_back(n);
    constexpr size_t kShow = 20;
    std::string shown =
        names.empty()
            ? "none"
            : absl::StrJoin(names.begin(), names.begin() + std::min(names.size(), kShow), ", ");
    if (names.size() > kShow) absl::StrAppend(&shown, ", ... (", names.size() - kShow, " more)");
    return absl::NotFoundError(
        absl::StrCat("endpoint ", QuoteInput(name), " not found; endpoints: ", shown));
  }
  return ToProto(it->second);
}

std::vector<v1::Endpoint> EndpointManager::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::Endpoint> out;
  for (const auto& [name, e] : endpoints_) out.push_back(ToProto(e));
  return out;
}

absl::StatusOr<v1::Endpoint> EndpointManager::Delete(const std::string& name) {
  store::EndpointRecord rec;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = endpoints_.find(name);
    if (it == endpoints_.end() || it->second.rec.deleted)
      return absl::NotFoundError(absl::StrCat("endpoint ", QuoteInput(name), " not found"));
    rec = it->second.rec;
    rec.deleted = true;
    rec.updated_s = clock_->NowSeconds();
  }
  store::Batch batch;
  batch.endpoints.push_back(rec);
  if (absl::Status st = store_->Write(std::move(batch)); !st.ok()) return st;
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = endpoints_[name];
  e.rec = rec;
  e.message = "deleting: stopping its replicas";
  return ToProto(e);
}

absl::Status EndpointManager::ReportLoad(const v1::ReportLoadRequest& report) {
  // All or nothing: one bad value and nothing of the report is recorded.
  if (report.gateway().empty()) return absl::InvalidArgumentError("gateway: must not be empty");
  if (absl::Status st = ValidateRequest(report); !st.ok()) return st;
  for (int i = 0; i < report.loads_size(); ++i) {
    double v = report.loads(i).in_flight();
    if (!std::isfinite(v) || v < 0 || v > kMaxInFlight)  // ValidateRequest says so; kept local
      return absl::InvalidArgumentError(
          absl::StrCat("loads[", i, "].in_flight: must be in [0, ", kMaxInFlight, "], got ", v));
  }
  std::lock_guard<std::mutex> l(mu_);
  double now = clock_->NowSeconds();
  for (const v1::EndpointLoad& load : report.loads()) {
    auto it = endpoints_.find(load.name());
    if (it == endpoints_.end()) continue;
    it->second.loads[report.gateway()] = {now, load.in_flight()};
  }
  return absl::OkStatus();
}

std::string EndpointManager::ChildSpec(const Entry& e, int32_t n, const std::string& region,
                                       const std::string& zone) const {
  using Json = nlohmann::json;
  std::string shape =
      absl::StrCat("{cpu: ", e.spec.cpu_milli, "m, memory: ", e.spec.memory_mib, "Mi",
                   e.spec.gpus > 0 ? absl::StrCat(", gpus: ", e.spec.gpus) : "", "}");
  Json command = Json::array({options_.meridian, "serve", "--model", e.spec.model, "--listen",
                              "job", "--drain-seconds", "1"});
  return absl::StrCat(
      "kind: job\n", "name: ", kChildPrefix, e.rec.name, "-g", e.rec.generation, "-", n, "\n",
      "tenant: ", Json(e.spec.tenant).dump(), "\n", "replicas: 1\n", "shape: ", shape, "\n",
      "allowed_regions: [", Json(region).dump(), "]\n",
      zone.empty()
          ? ""
          : absl::StrCat("allowed_zones: [", Json(absl::StrCat(region, "/", zone)).dump(), "]\n"),
      "retries: 100\n", "backoff: 1s\n", "grace: 5s\n", "readiness_path: /readyz\n",
      "env: {MERIDIAN_ENDPOINT: ", Json(e.rec.name).dump(), "}\n", "command: ", command.dump(),
      "\n");
}

void EndpointManager::Tick() {
  {
    // No endpoints: nothing to list (a controller busy with jobs only pays nothing).
    std::lock_guard<std::mutex> l(mu_);
    if (endpoints_.empty()) return;
  }
  double now = clock_->NowSeconds();
  // What the controller has: ready regions and zones, node hosts and room,
  // live replica jobs.
  std::map<std::string, std::string> node_host, node_zone;
  std::set<std::string> ready_regions, all_regions;
  std::map<std::string, std::set<std::string>> ready_zones;  // region -> zones
  struct Room {
    std::string region, zone;
    int64_t cpu_milli, memory_mib;
    int32_t gpus;
  };
  std::vector<Room> rooms;  // free resources of the ready, uncordoned nodes
  for (const v1::Node& n : controller_->ListNodes()) {
    node_host[n.name()] = HostOfAddress(n.address());
    node_zone[n.name()] = n.zone();
    all_regions.insert(n.region());
    if (n.ready() && !n.cordoned()) {
      ready_regions.insert(n.region());
      ready_zones[n.region()].insert(n.zone());
      rooms.push_back(Room{n.region(), n.zone(), n.cpu_milli() - n.used().cpu_milli(),
                           n.memory_mib() - n.used().memory_mib(), n.gpus() - n.used().gpus()});
    }
  }
  std::map<std::string, std::vector<Child>> children;
  std::map<std::string, int32_t> max_n;
  std::set<uint64_t> live_ids;
  for (const v1::Job& j :
       controller_->ListJobs({v1::JOB_PENDING, v1::JOB_SCHEDULED, v1::JOB_RUNNING}, 0)) {
    std::string name;
    int32_t gen = 0, n = 0;
    if (!ParseChildName(j.name(), &name, &gen, &n)) continue;
    Child c;
    c.job_id = j.id();
    c.generation = gen;
    c.state = j.state();
    c.failures = j.failures();
    c.message = j.message();
    live_ids.insert(j.id());
    max_n[name] = std::max(max_n[name], n);
    if (j.replica_status_size() > 0 && !j.replica_status(0).node().empty()) {
      c.node = j.replica_status(0).node();
      c.answering = j.state() == v1::JOB_RUNNING && j.replica_status(0).ready();
      if (j.master_port() > 0) c.address = absl::StrCat(node_host[c.node], ":", j.master_port());
    }
    std::optional<Pin> pin;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto r = child_pin_.find(j.id());
      if (r != child_pin_.end()) pin = r->second;
    }
    if (!pin) {
      // Read once from the job's spec: `allowed_regions: ["REGION"]` and
      // maybe `allowed_zones: ["REGION/ZONE"]`.
      pin.emplace();
      absl::StatusOr<v1::Job> full = controller_->GetJob(j.id());
      if (full.ok()) {
        auto first = [&](const std::string& key) -> std::string {
          const std::string& t = full->spec();
          size_t at = t.find(key);
          if (at == std::string::npos) return "";
          size_t start = at + key.size(), end = t.find(']', start);
          nlohmann::json v = nlohmann::json::parse(t.substr(start, end - start), nullptr, false);
          return v.is_string() ? v.get<std::string>() : "";
        };
        pin->region = first("allowed_regions: [");
        std::string zone = first("allowed_zones: [");
        if (absl::StartsWith(zone, pin->region + "/"))
          pin->zone = zone.substr(pin->region.size() + 1);
      }
      std::lock_guard<std::mutex> l(mu_);
      child_pin_[j.id()] = *pin;
    }
    c.region = pin->region;
    c.pinned_zone = pin->zone;
    c.zone = c.node.empty() ? pin->zone : node_zone[c.node];
    children[name].push_back(std::move(c));
  }

  struct Submit {
    std::string endpoint, spec;
    int32_t n;
    std::string region, zone;
  };
  std::vector<Submit> submits;
  std::vector<std::pair<uint64_t, std::string>> cancels;  // job, why
  std::vector<store::EndpointRecord> writes;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = running_since_.begin(); it != running_since_.end();)
      it = live_ids.count(it->first) ? std::next(it) : running_since_.erase(it);
    for (auto it = child_pin_.begin(); it != child_pin_.end();)
      it = live_ids.count(it->first) ? std::next(it) : child_pin_.erase(it);
    for (auto eit = endpoints_.begin(); eit != endpoints_.end();) {
      Entry& e = eit->second;
      std::vector<Child>& mine = children[eit->first];
      std::string failing;  // a replica that keeps failing says why
      for (Child& c : mine) {
        if (c.answering) {
          auto [r, inserted] = running_since_.emplace(c.job_id, now);
          c.ready = now - r->second >= e.spec.min_ready_s;
        } else {
          running_since_.erase(c.job_id);  // min_ready counts from its last ready probe
        }
        if (!c.ready && c.failures > 0)
          failing = absl::StrCat("replica job ", c.job_id, " failed ", c.failures,
                                 c.failures == 1 ? " time: " : " times: ", c.message);
      }
      e.children = mine;
      e.next_child = std::max(e.next_child, max_n[eit->first] + 1);
      if (e.rec.deleted) {
        for (const Child& c : mine) cancels.emplace_back(c.job_id, "endpoint deleted");
        if (mine.empty()) {
          eit = endpoints_.erase(eit);
          continue;
        }
        ++eit;
        continue;
      }
      std::string event = failing;
      // Regions this endpoint may use, with weights; usable = with a ready node.
      std::map<std::string, double> weight;
      if (e.spec.regions.empty()) {
        for (const std::string& r : all_regions) weight[r] = 1;
      } else {
        for (const auto& r : e.spec.regions) weight[r.name] = r.weight;
      }
      std::vector<Child> live;
      for (const Child& c : mine) {
        if (!c.region.empty() && !ready_regions.count(c.region)) {
          cancels.emplace_back(c.job_id, absl::StrCat("region ", c.region, " has no ready node"));
          event = absl::StrCat("replica job ", c.job_id, " moved: region ", c.region,
                               " has no ready node");
        } else if (!c.pinned_zone.empty() && !ready_zones[c.region].count(c.pinned_zone)) {
          cancels.emplace_back(
              c.job_id, absl::StrCat("zone ", c.region, "/", c.pinned_zone, " has no ready node"));
          event = absl::StrCat("replica job ", c.job_id, " moved: zone ", c.region, "/",
                               c.pinned_zone, " has no ready node");
        } else {
          live.push_back(c);
        }
      }
      // Autoscaling.
      std::optional<double> in_flight;  // none: no gateway reported lately
      for (auto lit = e.loads.begin(); lit != e.loads.end();) {
        if (now - lit->second.first > options_.load_stale_s) {
          lit = e.loads.erase(lit);
        } else {
          in_flight = in_flight.value_or(0) + lit->second.second;
          ++lit;
        }
      }
      int32_t desired = e.autoscaler.Decide(now, in_flight, e.rec.desired, e.spec);
      if (desired != e.rec.desired) {
        e.rec.desired = desired;
        e.rec.updated_s = now;
        event = e.autoscaler.last_reason();
        writes.push_back(e.rec);
      }
      int32_t gen = e.rec.generation, want = e.rec.desired;
      std::vector<Child> cur, old;
      for (const Child& c : live) (c.generation == gen ? cur : old).push_back(c);
      std::map<std::string, int> count, zcount;  // replicas per region, per "REGION/ZONE"
      auto zkey = [](const std::string& region, const std::string& zone) {
        return absl::StrCat(region, "/", zone);
      };
      for (const Child& c : cur) {
        ++count[c.region];
        if (!c.zone.empty()) ++zcount[zkey(c.region, c.zone)];
      }
      // The zone of `region` for one more replica: fewest replicas among
      // zones with a node that has room for it; "" when the region has one
      // zone, or no zone has room. Takes the room it counts on.
      auto pick_zone = [&](const std::string& region) -> std::string {
        const std::set<std::string>& zones = ready_zones[region];
        if (zones.size() < 2) return "";
        std::string best;
        Room* best_room = nullptr;
        for (const std::string& z : zones) {
          Room* room = nullptr;
          for (Room& r : rooms)
            if (r.region == region && r.zone == z && r.cpu_milli >= e.spec.cpu_milli &&
                r.memory_mib >= e.spec.memory_mib && r.gpus >= e.spec.gpus &&
                (room == nullptr || r.cpu_milli > room->cpu_milli))
              room = &r;
          if (room == nullptr) continue;
          if (best.empty() || zcount[zkey(region, z)] < zcount[zkey(region, best)]) {
            best = z;
            best_room = room;
          }
        }
        if (best_room != nullptr) {
          best_room->cpu_milli -= e.spec.cpu_milli;
          best_room->memory_mib -= e.spec.memory_mib;
          best_room->gpus -= e.spec.gpus;
        }
        return best;
      };
      size_t total = live.size();
      size_t cap = static_cast<size_t>(want) + (old.empty() ? 0 : 1);  // surge one while rolling
      while (static_cast<int32_t>(cur.size()) < want && total < cap) {
        std::string best;
        double best_score = 0;
        for (const auto& [r, w] : weight) {
          if (!ready_regions.count(r) || w <= 0) continue;
          double score = (count[r] + 1) / w;
          if (best.empty() || score < best_score) {
            best = r;
            best_score = score;
          }
        }
        if (best.empty()) {
          event = "no region with a ready node for its replicas";
          break;
        }
        int32_t n = e.next_child++;
        std::string zone = pick_zone(best);
        submits.push_back(Submit{e.rec.name, ChildSpec(e, n, best, zone), n, best, zone});
        ++count[best];
        if (!zone.empty()) ++zcount[zkey(best, zone)];
        cur.push_back(Child{});
        ++total;
      }
      // Retire the old generation while enough replicas stay ready.
      int ready = 0;
      for (const Child& c : live) ready += c.ready ? 1 : 0;
      std::stable_sort(old.begin(), old.end(),
                       [](const Child& a, const Child& b) { return !a.ready && b.ready; });
      for (const Child& c : old) {
        if (!c.ready) {
          cancels.emplace_back(c.job_id, "replaced by a newer generation");
        } else if (ready - 1 >= want) {
          cancels.emplace_back(c.job_id, "replaced by a newer generation");
          --ready;
        }
      }
      // Scale down: the not-ready first, then the most crowded region, then
      // the most crowded zone.
      if (old.empty() && static_cast<int32_t>(cur.size()) > want) {
        std::vector<Child> order = cur;
        std::stable_sort(order.begin(), order.end(), [&](const Child& a, const Child& b) {
          if (a.ready != b.ready) return !a.ready;
          double wa = weight.count(a.region) ? weight[a.region] : 1;
          double wb = weight.count(b.region) ? weight[b.region] : 1;
          double ca = count[a.region] / wa, cb = count[b.region] / wb;
          if (ca != cb) return ca > cb;
          return zcount[zkey(a.region, a.zone)] > zcount[zkey(b.region, b.zone)];
        });
        for (size_t i = 0; i < cur.size() - static_cast<size_t>(want); ++i) {
          cancels.emplace_back(order[i].job_id, "scaled down");
          --count[order[i].region];
          --zcount[zkey(order[i].region, order[i].zone)];
        }
      }
      // The message: where things stand, then the last event.
      int ready_cur = 0;
      for (const Child& c : cur) ready_cur += c.ready ? 1 : 0;
      if (!event.empty()) e.last_event = event;
      std::string status;
      if (!old.empty()) {
        status = absl::StrCat("rolling out generation ", gen, ": ", ready_cur, " of ", want,
                              " ready, ", old.size(), " old still serving");
      } else if (ready_cur < want) {
        status = absl::StrCat("starting replicas: ", ready_cur, " of ", want, " ready");
      } else {
        status = absl::StrCat(want, " replicas of generation ", gen, " ready");
      }
      // A replica that keeps failing: say why, so nobody has to find its node.
      for (const Child& c : cur)
        if (!c.ready && c.failures > 0) {
          absl::StrAppend(&status, "; replica job ", c.job_id, " failed ", c.failures,
                          c.failures == 1 ? " time: " : " times: ", c.message);
          break;
        }
      e.message = e.last_event.empty() ? status : absl::StrCat(status, "; last: ", e.last_event);
      ++eit;
    }
  }
  for (const auto& [id, why] : cancels) (void)controller_->Cancel(id);
  for (const Submit& s : submits) {
    std::promise<absl::StatusOr<v1::Job>> p;
    auto f = p.get_future();
    controller_->Submit(s.spec, absl::StrCat("endpoint ", s.endpoint),
                        [&p](absl::StatusOr<v1::Job> j) { p.set_value(std::move(j)); });
    absl::StatusOr<v1::Job> j = f.get();
    std::lock_guard<std::mutex> l(mu_);
    auto it = endpoints_.find(s.endpoint);
    if (!j.ok()) {
      if (it != endpoints_.end())
        it->second.message = absl::StrCat("cannot start a replica: ", j.status().message());
      continue;
    }
    child_pin_[j->id()] = Pin{s.region, s.zone};
  }
  if (!writes.empty()) {
    store::Batch b;
    b.endpoints = std::move(writes);
    (void)store_->Write(std::move(b));
  }
}

v1::Endpoint EndpointManager::ToProto(const Entry& e) const {
  v1::Endpoint out;
  out.set_name(e.rec.name);
  out.set_tenant(e.spec.tenant);
  out.set_model(e.spec.model);
  out.set_generation(e.rec.generation);
  out.set_min_replicas(e.spec.min_replicas);
  out.set_max_replicas(e.spec.max_replicas);
  out.set_desired_replicas(e.rec.desired);
  for (const auto& r : e.spec.regions) out.add_regions(r.name);
  if (!e.spec.token_secret.empty()) {
    absl::StatusOr<std::string> t = secrets_ ? secrets_(e.spec.tenant, e.spec.token_secret)
                                             : absl::NotFoundError("no secret store");
    out.set_token(t.ok() ? *t : "");  // no token: the gateway answers 401 to everyone
  } else {
    out.set_token(e.spec.token);
  }
  double in_flight = 0;
  for (const auto& [g, l] : e.loads) in_flight += l.second;
  out.set_in_flight(in_flight);
  out.set_message(e.message);
  out.set_created_at(e.rec.created_s);
  out.set_updated_at(e.rec.updated_s);
  out.set_spec(e.rec.spec);
  out.set_deleted(e.rec.deleted);
  for (const Child& c : e.children) {
    v1::EndpointReplica* r = out.add_replicas();
    r->set_job_id(c.job_id);
    r->set_address(c.address);
    r->set_region(c.region);
    r->set_zone(c.zone);
    r->set_node(c.node);
    r->set_generation(c.generation);
    r->set_state(c.state);
    r->set_ready(c.ready);
    r->set_failures(c.failures);
    r->set_message(c.message);
  }
  return out;
}

}  // namespace meridian::controller
