// ParseWorkload: workload spec document -> validated Workload, with fleet
// references (GPU types, regions, datasets) resolved against a Fleet.
#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/fleet.h"
#include "core/names.h"
#include "core/workload.h"
#include "spec/document.h"
#include "spec/quantities.h"
#include "spec/quote.h"
#include "spec/spec.h"

namespace meridian::spec {

namespace {

using internal::DiagnosticSink;
using internal::IndexPath;
using internal::MapReader;
using internal::NameAt;
using internal::Need;
using internal::Range;

constexpr int64_t kMaxReplicas = 100'000;
constexpr int64_t kMaxGpusPerTask = 1024;
constexpr double kMaxTenantGpus = 1e7;
constexpr char kDefaultTenant[] = "default";

class WorkloadParser {
 public:
  WorkloadParser(DiagnosticSink* sink, const Fleet* fleet) : sink_(sink), fleet_(fleet) {}

  std::optional<Workload> Parse(absl::string_view text, absl::string_view filename);
  std::optional<JobSpec> ParseJobDoc(absl::string_view text, absl::string_view filename);
  bool ParseTraining(MapReader& top, JobSpec* spec);

 private:
  void ParsePriorityClasses(const YAML::Node& seq);
  void ParseTenants(const YAML::Node& seq);
  // Fills `out` from a {gpus, cpu, memory} mapping; omitted fields keep
  // their value in `out`. False when something was invalid.
  bool ParseResources(MapReader& parent, absl::string_view key, Resources* out);
  void ParseJobs(const YAML::Node& seq);
  std::optional<Job> ParseJob(MapReader& m);
  bool ParseShape(MapReader& job, TaskShape* shape);
  bool ParseGpuTypes(MapReader& job, std::vector<GpuChoice>* out);
  bool ParsePriority(MapReader& job, int32_t* out);
  // A command argument or env value: no NUL, at most kMaxArgBytes.
  bool CheckRunText(const YAML::Node& n, const std::string& path, const std::string& text);

  DiagnosticSink* sink_;
  const Fleet* fleet_;
  Workload workload_;
  absl::flat_hash_map<std::string, int> class_lines_;
  absl::flat_hash_map<std::string, TenantId> tenant_ids_;
  std::vector<std::string> tenant_names_;
  std::vector<std::string> class_names_;
};

bool IsEnvName(const std::string& key) {
  bool valid = !key.empty() && !(key[0] >= '0' && key[0] <= '9');
  for (char c : key)
    valid &=
        (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
  return valid;
}

bool WorkloadParser::CheckRunText(const YAML::Node& n, const std::string& path,
                                  const std::string& text) {
  if (text.find('\0') != std::string::npos) {
    sink_->Add(n.Mark(), path,
               "contains a NUL byte, which no program argument or variable can hold");
    return false;
  }
  if (text.size() > kMaxArgBytes) {
    sink_->Add(n.Mark(), path,
               absl::StrCat("is ", text.size(), " bytes; at most ", kMaxArgBytes, " each"));
    return false;
  }
  return true;
}

std::vector<std::string> RegionNames(const Fleet& fleet) {
  std::vector<std::string> out;
  for (const Region& r : fleet.regions()) out.push_back(r.name);
  return out;
}

std::vector<std::string> ZoneNames(const Fleet& fleet) {
  std::vector<std::string> out;
  for (const Zone& z : fleet.zones()) out.push_back(z.name);
  return out;
}

std::vector<std::string> DatasetNames(const Fleet& fleet) {
  std::vector<std::string> out;
  for (const Dataset& d : fleet.datasets()) out.push_back(d.name);
  return out;
}

std::optional<Workload> WorkloadParser::Parse(absl::string_view text, absl::string_view filename) {
  std::optional<YAML::Node> root = internal::LoadDocument(text, filename, sink_);
  if (!root) return std::nullopt;
  MapReader top(sink_, *root, "", {"kind", "priority_classes", "tenants", "jobs"});
  if (!top.ok()) return std::nullopt;
  internal::CheckKind(&top, "workload");
  if (std::optional<YAML::Node> pcs = top.Get("priority_classes", Need::kOptional)) {
    if (internal::CheckSequence(sink_, *pcs, "priority_classes")) ParsePriorityClasses(*pcs);
  }
  if (std::optional<YAML::Node> tenants = top.Get("tenants", Need::kOptional)) {
    if (internal::CheckSequence(sink_, *tenants, "tenants")) ParseTenants(*tenants);
  }
  std::optional<YAML::Node> jobs = top.Get("jobs", Need::kOptional);
  if (!jobs || (jobs->IsSequence() && jobs->size() == 0)) {
    top.Error("jobs", "a workload needs at least one job");
  } else if (internal::CheckSequence(sink_, *jobs, "jobs")) {
    ParseJobs(*jobs);
  }
  if (!sink_->empty()) return std::nullopt;
  return std::move(workload_);
}

void WorkloadParser::ParsePriorityClasses(const YAML::Node& seq) {
  size_t i = 0;
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("priority_classes", i++), {"name", "value"});
    if (!m.ok()) continue;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    std::optional<int64_t> value =
        m.Int("value", Need::kRequired, std::numeric_limits<int32_t>::min(),
              std::numeric_limits<int32_t>::max());
    if (!name || !value) continue;
    auto [it, inserted] = class_lines_.emplace(*name, m.node().Mark().line + 1);
    if (!inserted) {
      m.Error("name", absl::StrCat("duplicate priority class ", QuoteInput(*name, 64),
                                   " (first at line ", it->second, ")"));
      continue;
    }
    workload_.priority_classes.push_back(PriorityClass{*name, static_cast<int32_t>(*value)});
    class_names_.push_back(*name);
  }
}

bool WorkloadParser::ParseResources(MapReader& parent, absl::string_view key, Resources* out) {
  std::optional<YAML::Node> node = parent.Get(key, Need::kOptional);
  if (!node) return true;
  MapReader m(sink_, *node, parent.Path(key), {"gpus", "cpu", "memory"});
  if (!m.ok()) return false;
  bool ok = true;
  if (m.Has("gpus")) {
    std::optional<double> gpus = m.Number("gpus", Need::kRequired, Range{0, kMaxTenantGpus});
    if (gpus) {
      out->gpu_milli = std::llround(*gpus * 1000.0);
    } else {
      ok = false;
    }
  }
  if (m.Has("cpu")) {
    std::optional<int64_t> cpu = m.Cpu("cpu", Need::kRequired, /*allow_zero=*/true);
    if (cpu) {
      out->cpu_milli = *cpu;
    } else {
      ok = false;
    }
  }
  if (m.Has("memory")) {
    std::optional<int64_t> mem = m.Memory("memory", Need::kRequired, /*allow_zero=*/true);
    if (mem) {
      out->memory_mib = *mem;
    } else {
      ok = false;
    }
  }
  return ok;
}

void WorkloadParser::ParseTenants(const YAML::Node& seq) {
  size_t i = 0;
  absl::flat_hash_map<std::string, int> lines;
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("tenants", i++),
                {"name", "weight", "guarantee", "borrow_limit"});
    if (!m.ok()) continue;
    Tenant t;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    std::optional<double> weight = m.Number("weight", Need::kOptional, Range{0, 1e6, true});
    bool ok = name.has_value() && (weight || !m.Has("weight"));
    ok &= ParseResources(m, "guarantee", &t.guarantee);
    ok &= ParseResources(m, "borrow_limit", &t.borrow_limit);
    if (!ok) continue;
    auto [it, inserted] = lines.emplace(*name, m.node().Mark().line + 1);
    if (!inserted) {
      m.Error("name", absl::StrCat("duplicate tenant ", QuoteInput(*name, 64), " (first at line ",
                                   it->second, ")"));
      continue;
    }
    t.name = *name;
    t.weight = weight.value_or(1.0);
    t.id = TenantId(static_cast<int32_t>(workload_.tenants.size()));
    tenant_ids_[t.name] = t.id;
    tenant_names_.push_back(t.name);
    workload_.tenants.push_back(std::move(t));
  }
}

bool WorkloadParser::ParseShape(MapReader& job, TaskShape* shape) {
  std::optional<YAML::Node> node = job.Get("shape", Need::kRequired);
  if (!node) return false;
  MapReader m(sink_, *node, job.Path("shape"), {"cpu", "memory", "gpus", "gpu_milli"});
  if (!m.ok()) return false;
  std::optional<int64_t> cpu = m.Cpu("cpu", Need::kRequired, /*allow_zero=*/false);
  std::optional<int64_t> mem = m.Memory("memory", Need::kRequired, /*allow_zero=*/false);
  bool ok = cpu && mem;
  shape->cpu_milli = cpu.value_or(0);
  shape->memory_mib = mem.value_or(0);
  shape->gpus = 0;
  shape->gpu_milli = 1000;
  bool fractional = false;
  if (m.Has("gpus")) {
    std::optional<double> gpus =
        m.Number("gpus", Need::kRequired, Range{0, static_cast<double>(kMaxGpusPerTask)});
    if (!gpus) {
      ok = false;
    } else if (std::floor(*gpus) == *gpus) {
      shape->gpus = static_cast<int32_t>(*gpus);
    } else if (*gpus < 1) {
      int64_t milli = std::llround(*gpus * 1000.0);
      if (milli < 1 || milli > 999) {
        m.Error("gpus",
                absl::StrCat("fractional gpus must be between 0.001 and 0.999, got ", *gpus));
        ok = false;
      } else {
        shape->gpus = 1;
        shape->gpu_milli = static_cast<int32_t>(milli);
        fractional = true;
      }
    } else {
      m.Error("gpus",
              absl::StrCat("gpus must be a whole number or a fraction below 1, got ", *gpus));
      ok = false;
    }
  }
  if (m.Has("gpu_milli")) {
    std::optional<int64_t> milli = m.Int("gpu_milli", Need::kRequired, 1, 999);
    if (!milli) {
      ok = false;
    } else if (fractional) {
      m.Error("gpu_milli", "give either a fractional 'gpus' or 'gpu_milli', not both");
      ok = false;
    } else if (m.Has("gpus") && shape->gpus != 1) {
      m.Error("gpu_milli",
              absl::StrCat("gpu_milli needs gpus: 1 (or gpus omitted), got gpus: ", shape->gpus));
      ok = false;
    } else {
      shape->gpus = 1;
      shape->gpu_milli = static_cast<int32_t>(*milli);
    }
  }
  return ok;
}

bool WorkloadParser::ParseGpuTypes(MapReader& job, std::vector<GpuChoice>* out) {
  std::optional<YAML::Node> node = job.Get("gpu_types", Need::kOptional);
  if (!node) return true;
  std::string path = job.Path("gpu_types");
  if (!internal::CheckSequence(sink_, *node, path)) return false;
  bool ok = true;
  std::vector<std::string> seen;
  size_t i = 0;
  for (const YAML::Node& item : *node) {
    std::string item_path = IndexPath(path, i++);
    std::optional<std::string> type;
    double speed = 1.0;
    if (item.IsMap()) {
      MapReader m(sink_, item, item_path, {"type", "speed"});
      type = m.Name("type", Need::kRequired);
      std::optional<double> s = m.Number("speed", Need::kOptional, Range{0, 1e3, true});
      if (m.Has("speed") && !s) ok = false;
      speed = s.value_or(1.0);
      if (type) item_path = m.Path("type");
    } else if (item.IsScalar()) {
      type = internal::ReadName(sink_, item, item_path);
    } else {
      sink_->Add(item.Mark(), item_path,
                 absl::StrCat("expected a GPU type name or {type, speed}, got ",
                              internal::Describe(item)));
    }
    if (!type) {
      ok = false;
      continue;
    }
    if (std::find(seen.begin(), seen.end(), *type) != seen.end()) {
      sink_->Add(item.Mark(), item_path,
                 absl::StrCat("GPU type ", QuoteInput(*type, 64), " listed twice"));
      ok = false;
      continue;
    }
    seen.push_back(*type);
    GpuChoice choice;
    choice.speed = speed;
    if (fleet_ != nullptr) {
      choice.type = fleet_->FindGpuType(*type);
      if (!choice.type.Valid()) {
        sink_->Add(item.IsMap() ? item["type"].Mark() : item.Mark(), item_path,
                   internal::UnknownName("GPU type", *type, fleet_->gpu_types()));
        ok = false;
        continue;
      }
    }
    out->push_back(choice);
  }
  return ok;
}

bool WorkloadParser::ParsePriority(MapReader& job, int32_t* out) {
  std::optional<YAML::Node> node = job.Get("priority", Need::kOptional);
  if (!node) return true;
  std::string path = job.Path("priority");
  if (!node->IsScalar()) {
    sink_->Add(node->Mark(), path,
               absl::StrCat("expected a priority class name or an integer, got ",
                            internal::Describe(*node)));
    return false;
  }
  if (node->Tag() != "!") {
    absl::StatusOr<int64_t> v = internal::ParseInteger(node->Scalar());
    if (v.ok()) {
      if (*v < std::numeric_limits<int32_t>::min() || *v > std::numeric_limits<int32_t>::max()) {
        sink_->Add(node->Mark(), path, absl::StrCat("priority ", *v, " is out of range"));
        return false;
      }
      *out = static_cast<int32_t>(*v);
      return true;
    }
  }
  const std::string& name = node->Scalar();
  for (const PriorityClass& pc : workload_.priority_classes) {
    if (pc.name == name) {
      *out = pc.value;
      return true;
    }
  }
  sink_->Add(node->Mark(), path, internal::UnknownName("priority class", name, class_names_));
  return false;
}

std::optional<Job> WorkloadParser::ParseJob(MapReader& m) {
  Job job;
  bool ok = true;
  std::optional<std::string> tenant = m.Name("tenant", Need::kOptional);
  if (m.Has("tenant") && !tenant) ok = false;
  std::string tenant_name = tenant.value_or(kDefaultTenant);
  if (tenant_name != kDefaultTenant || tenant_ids_.contains(kDefaultTenant)) {
    auto it = tenant_ids_.find(tenant_name);
    if (it == tenant_ids_.end()) {
      if (ok) m.Error("tenant", internal::UnknownName("tenant", tenant_name, tenant_names_));
      ok = false;
    } else {
      job.tenant = it->second;
    }
  } else {
    // Created on demand, after every declared tenant.
    TenantId id(static_cast<int32_t>(workload_.tenants.size()));
    Tenant t;
    t.name = kDefaultTenant;
    t.id = id;
    workload_.tenants.push_back(std::move(t));
    tenant_ids_[kDefaultTenant] = id;
    tenant_names_.push_back(kDefaultTenant);
    job.tenant = id;
  }
  std::optional<int64_t> replicas = m.Int("replicas", Need::kOptional, 1, kMaxReplicas);
  ok &= replicas || !m.Has("replicas");
  job.replicas = static_cast<int32_t>(replicas.value_or(1));
  ok &= ParseShape(m, &job.shape);
  ok &= ParseGpuTypes(m, &job.gpu_types);
  if (job.shape.gpus == 0 && !job.gpu_types.empty()) {
    m.Error("gpu_types", "a job without GPUs (gpus: 0) cannot list gpu_types");
    ok = false;
  }
  std::optional<double> duration = m.Duration("duration", Need::kOptional, false);
  ok &= duration || !m.Has("duration");
  job.duration_s = duration.value_or(job.duration_s);
  if (std::optional<std::string> ds = m.Name("dataset", Need::kOptional)) {
    if (fleet_ != nullptr) {
      job.dataset = fleet_->FindDataset(*ds);
      if (!job.dataset.Valid()) {
        m.Error("dataset", internal::UnknownName("dataset", *ds, DatasetNames(*fleet_)));
        ok = false;
      }
    }
  } else if (m.Has("dataset")) {
    ok = false;
  }
  if (std::optional<std::vector<NameAt>> regions = m.NameList("allowed_regions", Need::kOptional)) {
    for (const NameAt& r : *regions) {
      RegionId id;
      if (fleet_ != nullptr) {
        id = fleet_->FindRegion(r.name);
        if (!id.Valid()) {
          sink_->Add(r.mark, r.path, internal::UnknownName("region", r.name, RegionNames(*fleet_)));
          ok = false;
          continue;
        }
      }
      job.allowed_regions.push_back(id);
    }
  } else if (m.Has("allowed_regions")) {
    ok = false;
  }
  if (std::optional<std::vector<NameAt>> zones = m.NameList("allowed_zones", Need::kOptional)) {
    // A zone implies its region: with no allowed_regions, the zones' regions
    // become the allowed ones; with them, every zone must be in one.
    bool regions_given = !job.allowed_regions.empty();
    for (const NameAt& z : *zones) {
      ZoneId id;
      if (fleet_ != nullptr) {
        id = fleet_->FindZone(z.name);
        if (!id.Valid()) {
          sink_->Add(z.mark, z.path, internal::UnknownName("zone", z.name, ZoneNames(*fleet_)));
          ok = false;
          continue;
        }
        RegionId r = fleet_->zone(id).region;
        if (regions_given && !job.AllowsRegion(r)) {
          sink_->Add(z.mark, z.path,
                     absl::StrCat("zone '", z.name, "' is in region '", fleet_->region(r).name,
                                  "', which allowed_regions does not list"));
          ok = false;
          continue;
        }
        if (!regions_given && std::find(job.allowed_regions.begin(), job.allowed_regions.end(),
                                        r) == job.allowed_regions.end())
          job.allowed_regions.push_back(r);
      }
      job.allowed_zones.push_back(id);
    }
  } else if (m.Has("allowed_zones")) {
    ok = false;
  }
  if (std::optional<std::string> obj = m.String("objective", Need::kOptional)) {
    if (*obj == "cost") {
      job.objective = Objective::kCost;
    } else if (*obj == "time") {
      job.objective = Objective::kTime;
    } else if (*obj == "weighted") {
      job.objective = Objective::kWeighted;
    } else {
      m.Error("objective", absl::StrCat("unknown objective ", QuoteInput(*obj, 64),
                                        "; expected cost, time or weighted"));
      ok = false;
    }
  } else if (m.Has("objective")) {
    ok = false;
  }
  std::optional<double> cost_weight = m.Number("cost_weight", Need::kOptional, Range{0, 1});
  ok &= cost_weight || !m.Has("cost_weight");
  job.cost_weight = cost_weight.value_or(job.cost_weight);
  std::optional<bool> spot = m.Bool("spot", Need::kOptional);
  ok &= spot || !m.Has("spot");
  job.spot_allowed = spot.value_or(false);
  std::optional<bool> cross = m.Bool("cross_region", Need::kOptional);
  ok &= cross || !m.Has("cross_region");
  job.cross_region_allowed = cross.value_or(false);
  ok &= ParsePriority(m, &job.priority);
  if (std::optional<std::vector<NameAt>> tol = m.NameList("tolerations", Need::kOptional)) {
    for (const NameAt& t : *tol) job.tolerations.push_back(t.name);
  } else if (m.Has("tolerations")) {
    ok = false;
  }
  std::optional<double> submit = m.Duration("submit_time", Need::kOptional, true);
  ok &= submit || !m.Has("submit_time");
  job.submit_time_s = submit.value_or(0);
  if (!ok) return std::nullopt;
  return job;
}

std::optional<JobSpec> WorkloadParser::ParseJobDoc(absl::string_view text,
                                                   absl::string_view filename) {
  std::optional<YAML::Node> root = internal::LoadDocument(text, filename, sink_);
  if (!root) return std::nullopt;
  MapReader m(sink_, *root, "",
              {"kind", "name", "tenant", "replicas", "shape", "gpu_types", "duration", "dataset",
               "allowed_regions", "allowed_zones", "objective", "cost_weight", "spot",
               "cross_region", "priority", "tolerations", "command", "env", "retries", "backoff",
               "grace", "readiness_path", "training", "service_account"});
  if (!m.ok()) return std::nullopt;
  bool training = false;
  if (root->IsMap() && (*root)["kind"] && (*root)["kind"].IsScalar() &&
      absl::AsciiStrToLower((*root)["kind"].Scalar()) == "training") {
    training = true;
  } else {
    internal::CheckKind(&m, "job");
    if (m.Has("training"))
      m.Error("training", "a training block needs 'kind: training'");
  }
  JobSpec spec;
  // Built-in priority classes; the tenant named by the document exists.
  workload_.priority_classes = {{"low", 0}, {"normal", 50}, {"high", 100}};
  class_names_ = {"low", "normal", "high"};
  std::optional<std::string> tenant;
  if (std::optional<YAML::Node> t = m.Get("tenant", Need::kOptional))
    tenant = internal::ReadTenant(sink_, *t, m.Path("tenant"));
  spec.tenant = tenant.value_or(kDefaultTenant);
  tenant_ids_[spec.tenant] = TenantId(0);
  tenant_names_.push_back(spec.tenant);
  std::optional<std::string> name = m.Name("name", Need::kRequired);
  std::optional<Job> job = ParseJob(m);
  bool ok = name && job;
  if (training) {
    ok &= ParseTraining(m, &spec);
  }
  // command: a list of strings (argv) or one string run by `sh -c`.
  if (training) {
    if (m.Has("command")) {
      m.Error("command", "a training job runs `meridian train --worker`; it takes no command");
      ok = false;
    }
  } else if (std::optional<YAML::Node> cmd = m.Get("command", Need::kRequired)) {
    std::string path = m.Path("command");
    if (cmd->IsScalar()) {
      if (std::optional<std::string> line = internal::ReadString(sink_, *cmd, path)) {
        if (line->empty()) {
          m.Error("command", "command must not be empty");
          ok = false;
        } else if (!CheckRunText(*cmd, path, *line)) {
          ok = false;
        } else {
          spec.command = {"/bin/sh", "-c", *line};
        }
      } else {
        ok = false;
      }
    } else if (internal::CheckSequence(sink_, *cmd, path)) {
      size_t i = 0;
      for (const YAML::Node& item : *cmd) {
        std::string arg_path = IndexPath(path, i++);
        std::optional<std::string> arg = internal::ReadString(sink_, item, arg_path);
        if (!arg || !CheckRunText(item, arg_path, *arg)) {
          ok = false;
          continue;
        }
        spec.command.push_back(*arg);
      }
      if (spec.command.empty() || spec.command[0].empty()) {
        m.Error("command", "command needs at least a program name");
        ok = false;
      }
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (std::optional<YAML::Node> env = m.Get("env", Need::kOptional)) {
    std::string path = m.Path("env");
    if (!env->IsMap()) {
      sink_->Add(env->Mark(), path,
                 absl::StrCat("expected a mapping of NAME: value, got ", internal::Describe(*env)));
      ok = false;
    } else {
      for (const auto& kv : *env) {
        std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
        std::string item_path = internal::JoinPath(path, internal::PathKey(key));
        if (!IsEnvName(key)) {
          sink_->Add(kv.first.Mark(), item_path,
                     "environment variable names are letters, digits and '_', not starting "
                     "with a digit");
          ok = false;
          continue;
        }
        if (kv.second.IsMap()) {  // NAME: {secret: SECRET}
          std::optional<std::string> secret = internal::ReadSecretRef(sink_, kv.second, item_path);
          if (!secret) {
            ok = false;
            continue;
          }
          spec.secret_env.emplace_back(key, *secret);
          continue;
        }
        if (!kv.second.IsScalar()) {
          sink_->Add(kv.second.Mark(), item_path,
                     absl::StrCat("expected a string or {secret: NAME}, got ",
                                  internal::Describe(kv.second)));
          ok = false;
          continue;
        }
        std::optional<std::string> value = internal::ReadString(sink_, kv.second, item_path);
        if (!value || !CheckRunText(kv.second, item_path, *value)) {
          ok = false;
          continue;
        }
        spec.env.emplace_back(key, *value);
      }
    }
  }
  // The whole of what a replica is started with is bounded too.
  if (ok) {
    size_t total = 0;
    for (const std::string& arg : spec.command) total += arg.size() + 1;
    for (const auto& [k, v] : spec.env) total += k.size() + v.size() + 2;
    if (total > kMaxCommandEnvBytes) {
      m.Error(m.Has("env") ? "env" : "command",
              absl::StrCat("command and env together are ", total, " bytes; at most ",
                           kMaxCommandEnvBytes));
      ok = false;
    }
  }
  std::optional<int64_t> retries = m.Int("retries", Need::kOptional, 0, 100);
  ok &= retries || !m.Has("retries");
  // A training job restarts from its last checkpoint after a lost rank.
  spec.max_retries = static_cast<int32_t>(retries.value_or(training ? 3 : 0));
  std::optional<double> backoff = m.Duration("backoff", Need::kOptional, true);
  ok &= backoff || !m.Has("backoff");
  spec.backoff_s = backoff.value_or(spec.backoff_s);
  std::optional<double> grace = m.Duration("grace", Need::kOptional, true);
  ok &= grace || !m.Has("grace");
  spec.grace_s = grace.value_or(spec.grace_s);
  // readiness_path: an HTTP path the agent probes on MASTER_ADDR:MASTER_PORT.
  if (std::optional<std::string> path = m.String("readiness_path", Need::kOptional)) {
    bool valid = !path->empty() && (*path)[0] == '/' && path->size() <= 256;
    for (char c : *path) valid &= c > ' ' && c < 127;
    if (!valid) {
      m.Error("readiness_path",
              "expected an HTTP path: '/' then at most 255 visible characters, no spaces");
      ok = false;
    } else {
      spec.readiness_path = *path;
    }
  } else if (m.Has("readiness_path")) {
    ok = false;
  }
  // service_account: the identity the job's replicas act as towards the
  // controller (a token file in their working directory); none by default.
  if (std::optional<std::string> sa = m.String("service_account", Need::kOptional)) {
    if (!IsValidName(*sa)) {
      m.Error("service_account",
              "expected a service account name: [a-z0-9][a-z0-9._-]{0,62}");
      ok = false;
    } else {
      spec.service_account = *sa;
    }
  } else if (m.Has("service_account")) {
    ok = false;
  }
  if (!ok || !sink_->empty()) return std::nullopt;
  spec.job = *std::move(job);
  spec.job.name = *name;
  return spec;
}

// `kind: training`: the job's command is `meridian train --worker` with the
// training block's settings as flags; the rest comes from the environment
// Meridian gives every replica (RANK, MASTER_ADDR/PORT, MERIDIAN_ATTEMPT, ...).
bool WorkloadParser::ParseTraining(MapReader& top, JobSpec* spec) {
  std::optional<YAML::Node> node = top.Get("training", Need::kOptional);
  spec->command = {"meridian", "train", "--worker"};
  if (!node) return true;
  MapReader t(sink_, *node, top.Path("training"),
              {"mode", "dataset", "samples", "epochs", "batch", "lr", "hidden", "local_steps",
               "outer_lr", "outer_momentum", "compression", "overlap", "shares", "seed",
               "checkpoint_dir", "checkpoint_every", "target_accuracy", "eval_every",
               "eval_samples", "save"});
  if (!t.ok()) return false;
  bool ok = true;
  auto add = [spec](const char* flag, const std::string& value) {
    spec->command.push_back(flag);
    spec->command.push_back(value);
  };
  auto choice = [&](const char* key, const char* flag, std::vector<std::string> allowed) {
    std::optional<std::string> v = t.String(key, Need::kOptional);
    if (!v) {
      ok &= !t.Has(key);
      return;
    }
    if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
      t.Error(key,
              absl::StrCat(QuoteInput(*v, 64), " is not one of ", absl::StrJoin(allowed, ", ")));
      ok = false;
      return;
    }
    add(flag, *v);
  };
  auto integer = [&](const char* key, const char* flag, int64_t lo, int64_t hi) {
    std::optional<int64_t> v = t.Int(key, Need::kOptional, lo, hi);
    if (v) add(flag, absl::StrCat(*v));
    ok &= v || !t.Has(key);
  };
  auto number = [&](const char* key, const char* flag, Range r) {
    std::optional<double> v = t.Number(key, Need::kOptional, r);
    if (v) add(flag, absl::StrCat(*v));
    ok &= v || !t.Has(key);
  };
  choice("mode", "--mode", {"allreduce", "central", "hierarchical", "diloco"});
  choice("compression", "--compression", {"none", "fp16", "int8"});
  choice("shares", "--shares", {"dynamic", "equal"});
  // A built-in dataset by name, else a CSV file in the shared directory.
  if (std::optional<YAML::Node> d = t.Get("dataset", Need::kOptional)) {
    std::optional<std::string> v = internal::ReadString(sink_, *d, t.Path("dataset"));
    if (v && (*v == "digits" || *v == "synthetic" || *v == "large")) {
      add("--dataset", *v);
    } else if (v && internal::ReadSharedPath(sink_, *d, t.Path("dataset"), &spec->shared_paths)) {
      add("--dataset", *v);
    } else {
      ok = false;
    }
  } else {
    ok &= !t.Has("dataset");
  }
  integer("samples", "--samples", 10, 10000000);
  integer("epochs", "--epochs", 1, 100000);
  integer("batch", "--batch", 1, 1 << 20);
  number("lr", "--lr", Range{0, 10, true});
  integer("local_steps", "--local-steps", 1, 1000000);
  number("outer_lr", "--outer-lr", Range{0, 10, true});
  number("outer_momentum", "--outer-momentum", Range{0, 0.999});
  integer("seed", "--seed", 0, int64_t(1) << 62);
  integer("checkpoint_every", "--checkpoint-every", 1, 1000000);
  number("target_accuracy", "--target-accuracy", Range{0, 1});
  integer("eval_every", "--eval-every", 0, 1000000);
  integer("eval_samples", "--eval-samples", 0, 100000000);
  if (std::optional<bool> o = t.Bool("overlap", Need::kOptional)) {
    if (*o) spec->command.push_back("--overlap");
  } else {
    ok &= !t.Has("overlap");
  }
  if (std::optional<YAML::Node> h = t.Get("hidden", Need::kOptional)) {
    std::string path = t.Path("hidden");
    if (internal::CheckSequence(sink_, *h, path)) {
      size_t i = 0;
      for (const YAML::Node& item : *h) {
        std::optional<int64_t> w = internal::ReadInt(sink_, item, IndexPath(path, i++), 1, 1 << 16);
        if (w) add("--hidden", absl::StrCat(*w));
        ok &= w.has_value();
      }
    } else {
      ok = false;
    }
  }
  std::optional<std::string> save, dir;
  if (std::optional<YAML::Node> n = t.Get("save", Need::kOptional))
    save = internal::ReadSharedPath(sink_, *n, t.Path("save"), &spec->shared_paths);
  if (std::optional<YAML::Node> n = t.Get("checkpoint_dir", Need::kOptional))
    dir = internal::ReadSharedPath(sink_, *n, t.Path("checkpoint_dir"), &spec->shared_paths);
  if (save) {
    add("--save", *save);
  } else {
    ok &= !t.Has("save");
  }
  if (dir) {
    if (!t.Has("checkpoint_every")) {
      t.Error("checkpoint_dir", "checkpoint_dir needs checkpoint_every (steps)");
      ok = false;
    }
    add("--checkpoint-dir", *dir);
  } else {
    ok &= !t.Has("checkpoint_dir");
  }
  return ok;
}

void WorkloadParser::ParseJobs(const YAML::Node& seq) {
  size_t i = 0;
  absl::flat_hash_map<std::string, int> lines;
  for (const YAML::Node& item : seq) {
    MapReader m(sink_, item, IndexPath("jobs", i++),
                {"name", "tenant", "replicas", "shape", "gpu_types", "duration", "dataset",
                 "allowed_regions", "allowed_zones", "objective", "cost_weight", "spot",
                 "cross_region", "priority", "tolerations", "submit_time"});
    if (!m.ok()) continue;
    std::optional<std::string> name = m.Name("name", Need::kRequired);
    if (name) {
      auto [it, inserted] = lines.emplace(*name, m.node().Mark().line + 1);
      if (!inserted) {
        m.Error("name", absl::StrCat("duplicate job name ", QuoteInput(*name, 64),
                                     " (first at line ", it->second, ")"));
        name.reset();
      }
    }
    std::optional<Job> job = ParseJob(m);
    if (!name || !job) continue;
    job->name = *name;
    job->id = JobId(static_cast<int32_t>(workload_.jobs.size()));
    workload_.jobs.push_back(*std::move(job));
  }
}

}  // namespace

absl::StatusOr<Workload> ParseWorkload(std::string_view text_in, std::string_view filename_in,
                                       const Fleet* fleet, std::vector<Diagnostic>* diags) {
  absl::string_view text = internal::ToAbsl(text_in);
  absl::string_view filename = internal::ToAbsl(filename_in);
  DiagnosticSink sink(filename);
  std::optional<Workload> workload;
  try {
    WorkloadParser parser(&sink, fleet);
    workload = parser.Parse(text, filename);
  } catch (const std::exception& e) {
    sink.AddDocument(absl::StrCat("internal error while reading the workload: ", e.what()));
  } catch (...) {
    sink.AddDocument("internal error while reading the workload");
  }
  if (absl::Status st = sink.Finish(diags); !st.ok()) return st;
  if (!workload)
    return absl::InternalError("workload parser returned nothing without a diagnostic");
  return *std::move(workload);
}

absl::StatusOr<JobSpec> ParseJobSpec(std::string_view text_in, std::string_view filename_in,
                                     const Fleet* fleet, std::vector<Diagnostic>* diags) {
  absl::string_view text = internal::ToAbsl(text_in);
  absl::string_view filename = internal::ToAbsl(filename_in);
  DiagnosticSink sink(filename);
  std::optional<JobSpec> spec;
  try {
    WorkloadParser parser(&sink, fleet);
    spec = parser.ParseJobDoc(text, filename);
  } catch (const std::exception& e) {
    sink.AddDocument(absl::StrCat("internal error while reading the job: ", e.what()));
  } catch (...) {
    sink.AddDocument("internal error while reading the job");
  }
  if (absl::Status st = sink.Finish(diags); !st.ok()) return st;
  if (!spec) return absl::InternalError("job parser returned nothing without a diagnostic");
  return *std::move(spec);
}

}  // namespace meridian::spec
