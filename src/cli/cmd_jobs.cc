// Client commands (`job`, `node`, `region`), the dev demo, the rendezvous
// check used by the example gang, and the registration of every
// control-plane subcommand.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/client.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "google/protobuf/util/json_util.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "netemu/netemu.h"
#include "rpc/rpc.h"
#include "spec/spec.h"

namespace meridian::cli {

namespace fs = std::filesystem;

std::function<int()>* g_action = nullptr;

namespace {

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string ReadAll(const std::string& path, bool* ok) {
  std::ifstream in(path);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

const char* JobStateName(int s) {
  switch (s) {
    case v1::JOB_PENDING:
      return "Pending";
    case v1::JOB_SCHEDULED:
      return "Scheduled";
    case v1::JOB_RUNNING:
      return "Running";
    case v1::JOB_SUCCEEDED:
      return "Succeeded";
    case v1::JOB_FAILED:
      return "Failed";
    case v1::JOB_CANCELLED:
      return "Cancelled";
    default:
      return "Unknown";
  }
}

const char* ReplicaStateName(int s) {
  switch (s) {
    case v1::REPLICA_PENDING:
      return "Pending";
    case v1::REPLICA_SCHEDULED:
      return "Scheduled";
    case v1::REPLICA_RUNNING:
      return "Running";
    case v1::REPLICA_SUCCEEDED:
      return "Succeeded";
    case v1::REPLICA_FAILED:
      return "Failed";
    case v1::REPLICA_STOPPED:
      return "Stopped";
    default:
      return "Unknown";
  }
}

bool FinalState(int s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = false;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// Prints rows as aligned columns (first row = header).
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string Age(double t) {
  if (t <= 0) return "-";
  double s = std::max(0.0, WallNow() - t);
  if (s < 120) return absl::StrCat(static_cast<int>(s), "s");
  if (s < 7200) return absl::StrCat(static_cast<int>(s / 60), "m");
  return absl::StrCat(static_cast<int>(s / 3600), "h");
}

std::string Cpu(int64_t milli) {
  return milli % 1000 == 0 ? absl::StrCat(milli / 1000) : absl::StrCat(milli / 1000.0);
}

std::string Mem(int64_t mib) {
  return mib % 1024 == 0 ? absl::StrCat(mib / 1024, "Gi") : absl::StrCat(mib, "Mi");
}

int Fail(const std::string& what, const grpc::Status& st) {
  const char* code = "error";
  int rc = kExitError;
  switch (st.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = "invalid argument";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = "not found";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code = "unauthenticated";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = "permission denied";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = "already exists";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = "failed precondition";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = "too large";
      rc = kExitInvalid;
      break;
    case grpc::StatusCode::UNAVAILABLE:
      code = "unavailable";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = "timed out";
      break;
    default:
      break;
  }
  std::fprintf(stderr, "meridian %s: %s: %s\n", what.c_str(), code, st.error_message().c_str());
  return rc;
}

namespace {

struct Clients {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::JobService::Stub> jobs;
  std::unique_ptr<v1::NodeService::Stub> nodes;
  std::unique_ptr<v1::RegionService::Stub> regions;
};

Clients Connect(const ClientConfig& c) {
  Clients out;
  out.channel = rpc::Connect(c.controller, c.security);
  out.jobs = v1::JobService::NewStub(out.channel);
  out.nodes = v1::NodeService::NewStub(out.channel);
  out.regions = v1::RegionService::NewStub(out.channel);
  return out;
}

void PrintJob(const v1::Job& j) {
  std::printf("job %llu  %s\n", static_cast<unsigned long long>(j.id()), j.name().c_str());
  std::printf("  state:     %s\n", JobStateName(j.state()));
  std::printf("  tenant:    %s   priority: %d\n", j.tenant().c_str(), j.priority());
  std::printf("  replicas:  %d x {cpu %s, memory %s%s}\n", j.replicas(),
              Cpu(j.shape().cpu_milli()).c_str(), Mem(j.shape().memory_mib()).c_str(),
              j.shape().gpus() > 0 ? absl::StrCat(", gpus ", j.shape().gpus()).c_str() : "");
  std::printf("  attempt:   %d (failures %d of %d retries)\n", j.attempt(), j.failures(),
              j.max_retries());
  std::printf("  command:   %s\n", absl::StrJoin(j.command(), " ").c_str());
  std::printf("  message:   %s\n", j.message().c_str());
  std::printf("  age:       %s\n", Age(j.created_at()).c_str());
  std::vector<std::vector<std::string>> rows = {
      {"  REPLICA", "ATTEMPT", "NODE", "REGION", "STATE", "EXIT", "MESSAGE"}};
  for (const v1::Replica& r : j.replica_status())
    rows.push_back({absl::StrCat("  ", r.index()), absl::StrCat(r.attempt()),
                    r.node().empty() ? "-" : r.node(), r.region().empty() ? "-" : r.region(),
                    ReplicaStateName(r.state()),
                    r.state() == v1::REPLICA_SUCCEEDED || r.state() == v1::REPLICA_FAILED
                        ? absl::StrCat(r.exit_code())
                        : "-",
                    r.message()});
  PrintTable(rows);
}

}  // namespace

absl::Status ResolveSecurity(ClientConfig* c) {
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v ? v : "";
  };
  if (c->data_dir.empty()) c->data_dir = env("MERIDIAN_DATA_DIR");
  if (!c->insecure && env("MERIDIAN_INSECURE") == "1") c->insecure = true;
  c->security = rpc::Security();
  if (c->insecure) {
    c->security.insecure = true;
    return absl::OkStatus();
  }
  if (c->ca_file.empty()) c->ca_file = env("MERIDIAN_CA_FILE");
  if (c->ca_file.empty() && !c->data_dir.empty()) {
    for (const std::string& p : {c->data_dir + "/tls/ca.crt", c->data_dir + "/controller/tls/ca.crt"})
      if (fs::exists(p)) {
        c->ca_file = p;
        break;
      }
  }
  if (c->ca_file.empty())
    return absl::InvalidArgumentError(
        "no CA certificate to check the controller with: give --ca-file FILE, set "
        "MERIDIAN_CA_FILE, or --data-dir of a running controller (its tls/ca.crt); --insecure "
        "only for a controller started with --insecure");
  absl::StatusOr<std::string> ca = rpc::ReadFile(c->ca_file);
  if (!ca.ok()) return ca.status();
  c->security.ca_pem = *ca;
  return absl::OkStatus();
}

absl::Status ResolveClient(ClientConfig* c, bool need_token) {
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v ? v : "";
  };
  if (c->data_dir.empty()) c->data_dir = env("MERIDIAN_DATA_DIR");
  if (c->controller.empty()) c->controller = env("MERIDIAN_CONTROLLER");
  if (c->controller.empty() && !c->data_dir.empty()) {
    bool ok = false;
    for (const std::string& p :
         {c->data_dir + "/controller.addr", c->data_dir + "/controller/controller.addr"}) {
      std::string a = ReadAll(p, &ok);
      if (ok && !a.empty()) {
        c->controller = a;
        break;
      }
    }
  }
  if (c->controller.empty())
    return absl::InvalidArgumentError(
        "no controller address: give --controller HOST:PORT, set MERIDIAN_CONTROLLER, or "
        "--data-dir / MERIDIAN_DATA_DIR of a running `meridian dev`");
  if (c->token.empty() && c->token_file.empty()) c->token = env("MERIDIAN_TOKEN");
  if (c->token.empty() && c->token_file.empty()) c->token_file = env("MERIDIAN_TOKEN_FILE");
  if (c->token.empty() && c->token_file.empty() && !c->data_dir.empty()) {
    for (const std::string& p : {c->data_dir + "/token", c->data_dir + "/controller/token"})
      if (fs::exists(p)) {
        c->token_file = p;
        break;
      }
  }
  if (c->token.empty() && !c->token_file.empty()) {
    absl::StatusOr<std::string> t = rpc::ReadTokenFile(c->token_file);
    if (!t.ok()) return t.status();
    c->token = *t;
  }
  if (c->token.empty() && need_token)
    return absl::InvalidArgumentError(
        "no token: give --token-file FILE, set MERIDIAN_TOKEN or MERIDIAN_TOKEN_FILE, or "
        "--data-dir of a running `meridian dev`");
  if (c->output != "table" && c->output != "json")
    return absl::InvalidArgumentError(
        absl::StrCat("-o: expected table or json, got '", c->output, "'"));
  return ResolveSecurity(c);
}

namespace {

int Resolve(ClientConfig* c, const char* what) {
  if (absl::Status s = ResolveClient(c); !s.ok()) {
    std::fprintf(stderr, "meridian %s: %s\n", what, std::string(s.message()).c_str());
    return kExitInvalid;
  }
  return kExitOk;
}

// ---------------------------------------------------------------- job

struct JobArgs {
  ClientConfig client;
  std::vector<std::string> files;
  uint64_t id = 0;
  int32_t replica = 0;
  bool stderr_stream = false;
  int32_t attempt = -1;  // job logs --attempt; -1: the current (or last that ran)
  bool follow = false;
  bool wait = false;
  std::vector<std::string> states;
  uint32_t limit = 0;
};

int WaitJob(Clients& cl, const ClientConfig& c, uint64_t id, v1::Job* final_job) {
  // Watch, falling back to polling if the stream breaks.
  for (;;) {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, c.token);
    v1::WatchJobsRequest req;
    req.set_id(id);
    auto reader = cl.jobs->Watch(&ctx, req);
    v1::JobEvent ev;
    while (reader->Read(&ev)) {
      if (FinalState(ev.job().state())) {
        *final_job = ev.job();
        ctx.TryCancel();
        reader->Finish();
        return kExitOk;
      }
    }
    grpc::Status st = reader->Finish();
    if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
        st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
      return Fail("job wait", st);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int JobSubmit(JobArgs a) {
  if (int rc = Resolve(&a.client, "job submit"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  int rc = kExitOk;
  std::vector<uint64_t> ids;
  for (const std::string& f : a.files) {
    bool ok = false;
    std::string text;
    if (f == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      text = ss.str();
      ok = true;
    } else {
      std::ifstream in(f);
      ok = static_cast<bool>(in);
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    if (!ok) {
      std::fprintf(stderr, "meridian job submit: cannot read %s\n", f.c_str());
      return kExitInvalid;
    }
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
    v1::SubmitJobRequest req;
    req.set_spec(text);
    req.set_filename(f == "-" ? "stdin" : f);
    v1::SubmitJobResponse resp;
    grpc::Status st = cl.jobs->Submit(&ctx, req, &resp);
    if (!st.ok()) return Fail("job submit", st);
    ids.push_back(resp.job().id());
    if (a.client.output == "json" && !a.wait) {
      std::printf("%s\n", ToJson(resp.job()).c_str());
    } else if (a.client.output != "json") {
      std::printf("job %llu submitted: %s (%s)\n", static_cast<unsigned long long>(resp.job().id()),
                  resp.job().name().c_str(), JobStateName(resp.job().state()));
    }
  }
  if (a.wait) {
    for (uint64_t id : ids) {
      v1::Job j;
      if (int w = WaitJob(cl, a.client, id, &j); w != kExitOk) return w;
      if (a.client.output == "json") {
        std::printf("%s\n", ToJson(j).c_str());
      } else {
        std::printf("job %llu %s: %s\n", static_cast<unsigned long long>(id),
                    JobStateName(j.state()), j.message().c_str());
      }
      if (j.state() != v1::JOB_SUCCEEDED) rc = kExitInvalid;
    }
  }
  std::fflush(stdout);
  return rc;
}

int JobList(JobArgs a) {
  if (int rc = Resolve(&a.client, "job list"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  v1::ListJobsRequest req;
  for (const std::string& s : a.states) {
    std::string l = s;
    for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    static const std::map<std::string, v1::JobState> kStates = {
        {"pending", v1::JOB_PENDING}, {"scheduled", v1::JOB_SCHEDULED},
        {"running", v1::JOB_RUNNING}, {"succeeded", v1::JOB_SUCCEEDED},
        {"failed", v1::JOB_FAILED},   {"cancelled", v1::JOB_CANCELLED}};
    auto it = kStates.find(l);
    if (it == kStates.end()) {
      std::fprintf(stderr,
                   "meridian job list: --state: unknown state '%s' (pending, scheduled, running, "
                   "succeeded, failed, cancelled)\n",
                   s.c_str());
      return kExitInvalid;
    }
    req.add_states(it->second);
  }
  req.set_limit(a.limit);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::ListJobsResponse resp;
  grpc::Status st = cl.jobs->List(&ctx, req, &resp);
  if (!st.ok()) return Fail("job list", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "TENANT", "STATE", "REPLICAS", "ATTEMPT", "REGIONS", "AGE", "MESSAGE"}};
  for (const v1::Job& j : resp.jobs()) {
    std::vector<std::string> regions;
    for (const v1::Replica& r : j.replica_status())
      if (!r.region().empty() &&
          std::find(regions.begin(), regions.end(), r.region()) == regions.end())
        regions.push_back(r.region());
    std::string msg = j.message();
    if (msg.size() > 70) msg = msg.substr(0, 67) + "...";
    rows.push_back({absl::StrCat(j.id()), j.name(), j.tenant(), JobStateName(j.state()),
                    absl::StrCat(j.replicas()), absl::StrCat(j.attempt()),
                    regions.empty() ? "-" : absl::StrJoin(regions, ","), Age(j.created_at()), msg});
  }
  PrintTable(rows);
  return kExitOk;
}

int JobGet(JobArgs a) {
  if (int rc = Resolve(&a.client, "job get"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::GetJobRequest req;
  req.set_id(a.id);
  v1::Job j;
  grpc::Status st = cl.jobs->Get(&ctx, req, &j);
  if (!st.ok()) return Fail("job get", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(j).c_str());
  } else {
    PrintJob(j);
  }
  return kExitOk;
}

int JobCancel(JobArgs a) {
  if (int rc = Resolve(&a.client, "job cancel"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::CancelJobRequest req;
  req.set_id(a.id);
  v1::Job j;
  grpc::Status st = cl.jobs->Cancel(&ctx, req, &j);
  if (!st.ok()) return Fail("job cancel", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(j).c_str());
  } else {
    std::printf("job %llu cancelled\n", static_cast<unsigned long long>(j.id()));
  }
  return kExitOk;
}

int JobLogs(JobArgs a) {
  if (int rc = Resolve(&a.client, "job logs"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.follow ? 0 : a.client.timeout_s);
  v1::LogsRequest req;
  req.set_id(a.id);
  req.set_replica(a.replica);
  req.set_stream(a.stderr_stream ? "stderr" : "stdout");
  req.set_follow(a.follow);
  if (a.attempt >= 0) req.set_attempt(a.attempt);
  auto reader = cl.jobs->Logs(&ctx, req);
  reader->WaitForInitialMetadata();
  for (const auto& [k, v] : ctx.GetServerInitialMetadata())
    if (k == "meridian-note")
      std::fprintf(stderr, "meridian job logs: %.*s\n", static_cast<int>(v.size()), v.data());
  v1::LogChunk c;
  while (reader->Read(&c)) {
    std::fwrite(c.data().data(), 1, c.data().size(), stdout);
    std::fflush(stdout);
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return Fail("job logs", st);
  return kExitOk;
}

int JobWatch(JobArgs a) {
  if (int rc = Resolve(&a.client, "job watch"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token);
  v1::WatchJobsRequest req;
  req.set_id(a.id);
  auto reader = cl.jobs->Watch(&ctx, req);
  v1::JobEvent ev;
  while (reader->Read(&ev)) {
    if (a.client.output == "json") {
      std::printf("%s\n", ToJson(ev).c_str());
    } else {
      std::printf("job %llu %-10s %s\n", static_cast<unsigned long long>(ev.job().id()),
                  JobStateName(ev.job().state()), ev.job().message().c_str());
    }
    std::fflush(stdout);
    if (a.id != 0 && FinalState(ev.job().state())) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) return Fail("job watch", st);
  return kExitOk;
}

// ---------------------------------------------------------------- node / region

struct NodeArgs {
  ClientConfig client;
  std::string name;
  bool undo = false;
};

int NodeList(NodeArgs a) {
  if (int rc = Resolve(&a.client, "node list"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::ListNodesResponse resp;
  grpc::Status st = cl.nodes->List(&ctx, v1::ListNodesRequest(), &resp);
  if (!st.ok()) return Fail("node list", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "REGION", "ZONE", "STATUS", "GPUS", "CPU",
                                                 "MEMORY", "REPLICAS", "CPU USED", "HEARTBEAT",
                                                 "LIMITS"}};
  for (const v1::Node& n : resp.nodes()) {
    std::string status = n.ready() ? "Ready" : "NotReady";
    if (n.cordoned()) status += ",Cordoned";
    rows.push_back({n.name(), n.region(), n.zone(), status,
                    n.gpus() > 0 ? absl::StrCat(n.gpus(), "x", n.gpu_type()) : "-",
                    Cpu(n.cpu_milli()), Mem(n.memory_mib()), absl::StrCat(n.replicas()),
                    Cpu(n.used().cpu_milli()), Age(n.last_heartbeat()) + " ago",
                    n.limits().substr(0, 40)});
  }
  PrintTable(rows);
  return kExitOk;
}

int NodeCordon(NodeArgs a) {
  if (int rc = Resolve(&a.client, "node cordon"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::CordonRequest req;
  req.set_name(a.name);
  req.set_uncordon(a.undo);
  v1::Node n;
  grpc::Status st = cl.nodes->Cordon(&ctx, req, &n);
  if (!st.ok()) return Fail("node cordon", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(n).c_str());
  } else {
    std::printf("node %s %s\n", n.name().c_str(), n.cordoned() ? "cordoned" : "uncordoned");
  }
  return kExitOk;
}

int NodeDrain(NodeArgs a) {
  if (int rc = Resolve(&a.client, "node drain"); rc != kExitOk) return rc;
  Clients cl = Connect(a.client);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::DrainRequest req;
  req.set_name(a.name);
  v1::DrainResponse r;
  grpc::Status st = cl.nodes->Drain(&ctx, req, &r);
  if (!st.ok()) return Fail("node drain", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(r).c_str());
  } else {
    std::printf("node %s drained; %d job(s) re-queued\n", r.node().name().c_str(),
                r.requeued_jobs_size());
  }
  return kExitOk;
}

int RegionList(ClientConfig c) {
  if (int rc = Resolve(&c, "region list"); rc != kExitOk) return rc;
  Clients cl = Connect(c);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, c.token, c.timeout_s);
  v1::ListRegionsResponse resp;
  grpc::Status st = cl.regions->List(&ctx, v1::ListRegionsRequest(), &resp);
  if (!st.ok()) return Fail("region list", st);
  if (c.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"REGION", "NODES", "READY", "GPUS", "CPU", "MEMORY", "REPLICAS"}};
  for (const v1::Region& r : resp.regions())
    rows.push_back({r.name(), absl::StrCat(r.nodes()), absl::StrCat(r.ready_nodes()),
                    absl::StrCat(r.gpus()), Cpu(r.cpu_milli()), Mem(r.memory_mib()),
                    absl::StrCat(r.running_replicas())});
  PrintTable(rows);
  return kExitOk;
}

// ---------------------------------------------------------------- rendezvous check

// Rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects and
// sends "rank world master job"; rank 0 checks that ranks are distinct and
// cover 1..WORLD_SIZE-1 and that everything else agrees, then answers each
// peer "ok" or "mismatch: ...". Exit 0 when consistent.
int RunRendezvousCheck(double timeout_s) {
  auto env = [](const char* k) -> std::string {
    const char* v = std::getenv(k);
    return v ? v : "";
  };
  std::string addr = env("MASTER_ADDR"), port_s = env("MASTER_PORT"), rank_s = env("RANK"),
              world_s = env("WORLD_SIZE"), job = env("MERIDIAN_JOB_ID");
  if (addr.empty() || port_s.empty() || rank_s.empty() || world_s.empty()) {
    std::fprintf(stderr,
                 "rendezvous-check: MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE must be set\n");
    return 2;
  }
  int port = std::atoi(port_s.c_str()), rank = std::atoi(rank_s.c_str()),
      world = std::atoi(world_s.c_str());
  std::string self = absl::StrCat(rank, " ", world, " ", addr, ":", port, " ", job);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "rendezvous-check: MASTER_ADDR %s is not an IPv4 address\n", addr.c_str());
    return 2;
  }
  double deadline = WallNow() + timeout_s;
  std::printf("rank %d of %d on %s (%s): rendezvous at %s:%d\n", rank, world,
              env("MERIDIAN_NODE").c_str(), env("MERIDIAN_REGION").c_str(), addr.c_str(), port);
  std::fflush(stdout);
  if (rank == 0) {
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(ls, 64) != 0) {
      std::fprintf(stderr, "rendezvous-check: cannot listen on %s:%d: %s\n", addr.c_str(), port,
                   strerror(errno));
      return 1;
    }
    std::vector<int> peers;
    std::map<int, std::string> seen;
    std::string problem;
    timeval tv{1, 0};
    ::setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (static_cast<int>(peers.size()) < world - 1 && WallNow() < deadline) {
      int fd = ::accept(ls, nullptr, nullptr);
      if (fd < 0) continue;
      char buf[512] = {};
      ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      std::string line = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
      while (!line.empty() && line.back() == '\n') line.pop_back();
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() != 4) {
        problem = absl::StrCat("malformed hello '", line, "'");
      } else {
        int r = std::atoi(f[0].c_str());
        if (f[1] != world_s || f[2] != absl::StrCat(addr, ":", port) || f[3] != job)
          problem = absl::StrCat("rank ", r, " disagrees: '", line, "' vs '", self, "'");
        else if (r <= 0 || r >= world)
          problem = absl::StrCat("rank ", r, " out of range 1..", world - 1);
        else if (seen.contains(r))
          problem = absl::StrCat("rank ", r, " twice");
        seen[r] = line;
      }
      peers.push_back(fd);
    }
    if (static_cast<int>(peers.size()) < world - 1)
      problem = absl::StrCat("only ", peers.size() + 1, " of ", world, " ranks arrived");
    std::string answer = problem.empty() ? absl::StrCat("ok world=", world, "\n")
                                         : absl::StrCat("mismatch: ", problem, "\n");
    for (int fd : peers) {
      (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
    ::close(ls);
    std::printf("rank 0: %s", answer.c_str());
    return problem.empty() ? 0 : 1;
  }
  // Other ranks: connect (rank 0 may not listen yet), say hello, read the verdict.
  while (WallNow() < deadline) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    std::string hello = self + "\n";
    (void)::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    timeval tv{static_cast<time_t>(timeout_s), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512] = {};
    ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string verdict = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "no answer\n";
    std::printf("rank %d: %s", rank, verdict.c_str());
    return verdict.rfind("ok", 0) == 0 ? 0 : 1;
  }
  std::fprintf(stderr, "rank %d: rank 0 never answered at %s:%d\n", rank, addr.c_str(), port);
  return 1;
}

}  // namespace

// ---------------------------------------------------------------- demo

int RunDemoImpl(const std::string& folder, double timeout_s, const ClientConfig& client,
                int expected_nodes) {
  Clients cl = Connect(client);
  // 1. Wait for every agent to register.
  double deadline = WallNow() + 30;
  int ready = 0;
  while (WallNow() < deadline) {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, client.token, 5);
    v1::ListNodesResponse resp;
    if (cl.nodes->List(&ctx, v1::ListNodesRequest(), &resp).ok()) {
      ready = 0;
      for (const v1::Node& n : resp.nodes()) ready += n.ready() ? 1 : 0;
      if (ready >= expected_nodes) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("== cluster: %d of %d nodes ready\n", ready, expected_nodes);
  {
    ClientConfig c = client;
    c.output = "table";
    RegionList(c);
  }
  if (ready < expected_nodes) return kExitError;
  // 2. Submit every spec in the folder, in name order.
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec))
    if (e.path().extension() == ".yaml" || e.path().extension() == ".yml")
      files.push_back(e.path());
  if (ec || files.empty()) {
    std::fprintf(stderr, "meridian dev: no job specs (*.yaml) in %s\n", folder.c_str());
    return kExitInvalid;
  }
  std::sort(files.begin(), files.end());
  std::vector<uint64_t> ids;
  // `kind: endpoint` specs are applied once the jobs have ended (they serve
  // what the training job wrote).
  std::vector<std::pair<fs::path, std::string>> endpoint_specs;
  for (auto it = files.begin(); it != files.end();) {
    bool ok = false;
    std::string text = ReadAll(it->string(), &ok);
    if (ok && spec::DetectKind(text, it->string()) == spec::DocumentKind::kEndpoint) {
      endpoint_specs.emplace_back(*it, text);
      it = files.erase(it);
    } else {
      ++it;
    }
  }
  std::printf("\n== submitting %zu jobs from %s\n", files.size(), folder.c_str());
  for (const fs::path& f : files) {
    bool ok = false;
    std::string text = ReadAll(f.string(), &ok);
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, client.token, 10);
    v1::SubmitJobRequest req;
    req.set_spec(text);
    req.set_filename(f.string());
    v1::SubmitJobResponse resp;
    grpc::Status st = cl.jobs->Submit(&ctx, req, &resp);
    if (!st.ok()) return Fail("dev", st);
    ids.push_back(resp.job().id());
    std::printf("job %llu %-16s submitted (%s)\n", static_cast<unsigned long long>(resp.job().id()),
                resp.job().name().c_str(), f.filename().c_str());
  }
  std::fflush(stdout);
  // 3. Follow the jobs until every one is final.
  std::printf("\n== events\n");
  std::map<uint64_t, v1::Job> last;
  deadline = WallNow() + timeout_s;
  std::map<uint64_t, int> shown_state;
  while (WallNow() < deadline) {
    bool all_final = true;
    for (uint64_t id : ids) {
      grpc::ClientContext ctx;
      rpc::Prepare(&ctx, client.token, 5);
      v1::GetJobRequest req;
      req.set_id(id);
      v1::Job j;
      if (!cl.jobs->Get(&ctx, req, &j).ok()) {
        all_final = false;
        continue;
      }
      if (shown_state[id] != j.state()) {
        shown_state[id] = j.state();
        std::printf("job %llu %-16s %-10s %s\n", static_cast<unsigned long long>(id),
                    j.name().c_str(), JobStateName(j.state()), j.message().c_str());
        std::fflush(stdout);
      }
      last[id] = j;
      all_final &= FinalState(j.state());
    }
    if (all_final) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // 4. Summary.
  std::printf("\n== summary\n");
  std::vector<std::vector<std::string>> rows = {
      {"JOB", "NAME", "STATE", "ATTEMPTS", "PLACEMENT (replica@node/region)"}};
  int ok = 0;
  for (uint64_t id : ids) {
    const v1::Job& j = last[id];
    std::vector<std::string> where;
    for (const v1::Replica& r : j.replica_status())
      where.push_back(absl::StrCat(r.index(), "@", r.node().empty() ? "-" : r.node(), "/",
                                   r.region().empty() ? "-" : r.region()));
    rows.push_back({absl::StrCat(id), j.name(), JobStateName(j.state()),
                    absl::StrCat(j.attempt() + 1), absl::StrJoin(where, " ")});
    ok += j.state() == v1::JOB_SUCCEEDED ? 1 : 0;
  }
  PrintTable(rows);
  // The gang's rank-0 output shows the rendezvous verdict.
  for (uint64_t id : ids) {
    const v1::Job& j = last[id];
    if (j.replicas() < 2 || j.state() != v1::JOB_SUCCEEDED) continue;
    std::printf("\n== logs of job %llu (%s), replica 0\n", static_cast<unsigned long long>(id),
                j.name().c_str());
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, client.token, 10);
    v1::LogsRequest req;
    req.set_id(id);
    req.set_replica(0);
    auto reader = cl.jobs->Logs(&ctx, req);
    v1::LogChunk c;
    while (reader->Read(&c)) std::fwrite(c.data().data(), 1, c.data().size(), stdout);
    reader->Finish();
  }
  std::printf("\n%d of %zu jobs succeeded\n", ok, ids.size());
  std::fflush(stdout);
  if (ok != static_cast<int>(ids.size())) return kExitInvalid;
  for (const auto& [file, text] : endpoint_specs)
    if (int rc = RunDemoEndpoint(file.string(), text, client); rc != kExitOk) return rc;
  return kExitOk;
}

// ---------------------------------------------------------------- registration

void AddClientFlags(CLI::App* cmd, ClientConfig* c) {
  cmd->add_option("--controller", c->controller,
                  "Controller address HOST:PORT (env MERIDIAN_CONTROLLER)");
  cmd->add_option("--token-file", c->token_file,
                  "File holding the bearer token (env MERIDIAN_TOKEN_FILE, or MERIDIAN_TOKEN)");
  cmd->add_option("--data-dir", c->data_dir,
                  "Data dir of a running `meridian dev` or controller (env MERIDIAN_DATA_DIR): "
                  "address and token are read from there");
  cmd->add_option("--ca-file", c->ca_file,
                  "Cluster CA certificate that checks the controller (env MERIDIAN_CA_FILE; "
                  "default DATA_DIR/tls/ca.crt)");
  cmd->add_flag("--insecure", c->insecure,
                "No TLS (only for a controller started with --insecure; env MERIDIAN_INSECURE=1)");
  cmd->add_option("-o,--output", c->output, "table or json")->capture_default_str();
  cmd->add_option("--timeout", c->timeout_s, "Seconds to wait for an answer")
      ->capture_default_str();
}


void AddClusterCommands(CLI::App& app, CLI::App* bench, std::function<int()>* action) {
  AddEndpointCommands(app, action);
  AddIdentityCommands(app, action);
  // ---- services
  static ControllerArgs ca;
  auto* ctl =
      app.add_subcommand("controller", "Run the controller (state, scheduling, failure detection)");
  ctl->add_option("--listen", ca.listen, "Address to serve on (port 0: any free port)")
      ->capture_default_str();
  ctl->add_option("--data-dir", ca.data_dir,
                  "State (state.db), token and controller.addr live here")
      ->required();
  ctl->add_option("--token-file", ca.token_file,
                  "The admin's bootstrap token (default: DATA_DIR/token, generated)");
  ctl->add_option("--shared-dir", ca.shared_dir,
                  "The cluster's shared directory (default $MERIDIAN_SHARED_DIR): spec paths may "
                  "not lead out of SHARED/TENANT through a symlink");
  ctl->add_flag("--insecure", ca.insecure,
                "No TLS: plaintext on loopback only (local credentials); for debugging. By default "
                "a cluster CA and the controller's certificate are made in DATA_DIR/tls");
  ctl->add_option("--master-port-base", ca.master_port_base,
                  "First of the ports reserved for gangs (MASTER_PORT) and endpoint replicas")
      ->capture_default_str()
      ->check(CLI::Range(1024, 55000));
  ctl->add_option("--heartbeat-interval", ca.heartbeat_interval_s,
                  "Seconds between agent heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 60.0));
  ctl->add_option("--heartbeat-timeout", ca.heartbeat_timeout_s,
                  "Seconds without a heartbeat before a node is NotReady")
      ->capture_default_str()
      ->check(CLI::Range(0.2, 3600.0));
  ctl->callback([] { *g_action = [] { return RunController(ca); }; });

  static AgentArgs aa;
  auto* agt = app.add_subcommand("agent",
                                 "Run a node agent: register, heartbeat, run replicas, serve logs");
  AddClientFlags(agt, &aa.client);
  agt->add_option("--name", aa.opts.name, "Node name")->required();
  agt->add_option("--region", aa.opts.region, "Region of the node")->required();
  agt->add_option("--zone", aa.opts.zone, "Zone inside the region")->capture_default_str();
  agt->add_option("--gpus", aa.opts.gpus, "GPUs on the node (default: discovered through NVML)")
      ->check(CLI::Range(0, 1024));
  agt->add_option("--gpu-type", aa.opts.gpu_type, "GPU type name (a100, h100, t4, ...)");
  agt->add_option("--cpu", aa.cpu, "CPU cores to offer (default: the machine's)");
  agt->add_option("--memory", aa.memory, "Memory to offer, e.g. 8Gi (default: the machine's)");
  agt->add_option("--listen", aa.opts.listen, "Address of the agent's log service")
      ->capture_default_str();
  agt->add_option("--state-dir", aa.opts.data_dir, "Runs and their logs live here")->required();
  agt->add_option("--join-token-file", aa.join_token_file,
                  "One-time join token (`meridian token create --join --node NAME`): needed on "
                  "the first start only; the node's credential is then kept in "
                  "STATE_DIR/credentials");
  agt->add_flag("--no-limits", aa.no_limits, "Do not enforce CPU/memory limits with cgroups");
  agt->add_flag("--stop-work-on-exit", aa.stop_work_on_exit,
                "Stop this node's runs when the agent is stopped (default: they keep running and "
                "a restarted agent re-adopts them)");
  agt->add_option("--run-uids", aa.run_uids,
                  "Unprivileged uids for runs, FIRST-LAST: each running run gets one of its own "
                  "(agents on one machine need disjoint ranges; 65536-99999 is used by neither "
                  "Debian, systemd nor the usual subuid ranges)")
      ->capture_default_str();
  agt->add_option("--tenant-gids", aa.tenant_gids,
                  "Gids for tenants, FIRST-LAST: each tenant's runs get one, derived from its "
                  "name and recorded in STATE_DIR/tenant-gids")
      ->capture_default_str();
  agt->add_flag("--run-as-agent-uid", aa.opts.run_as_agent_uid,
                "Run workloads as the agent's own uid with the agent's rights (as before "
                "isolation; automatic when the agent is not root)");
  agt->add_option("--shared-dir", aa.opts.shared_dir,
                  "Tenants' shared directories live here: a run gets MERIDIAN_SHARED_DIR="
                  "DIR/<tenant> (group: the tenant's, mode 02770)")
      ->envname("MERIDIAN_SHARED_DIR");
  agt->add_option("--run-path", aa.opts.run_path,
                  "PATH of workloads (default: this binary's directory, then "
                  "/usr/local/bin:/usr/bin:/bin)");
  agt->add_option("--pass-env", aa.opts.pass_env,
                  "Variables of the agent's environment workloads get when set (besides LANG, "
                  "LC_ALL, TZ); never MERIDIAN_TOKEN or MERIDIAN_TOKEN_FILE")
      ->delimiter(',')
      ->capture_default_str();
  agt->callback([] { *g_action = [] { return RunAgent(aa); }; });

  static DevArgs da;
  auto* dev = app.add_subcommand("dev",
                                 "A whole multi-region cluster on this machine: controller and "
                                 "agents as processes on 127.0.0.1");
  dev->add_option("--regions", da.regions, "Regions (1..8)")
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  dev->add_option("--nodes-per-region", da.nodes_per_region, "Agents per region")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  dev->add_option("--data-dir", da.data_dir, "State, token, logs")->capture_default_str();
  dev->add_option("--cpu-per-node", da.cpu_per_node, "CPU each node offers")->capture_default_str();
  dev->add_option("--memory-per-node", da.memory_per_node, "Memory each node offers")
      ->capture_default_str();
  dev->add_option("--gpus-per-node", da.gpus_per_node, "GPUs each node advertises (emulated)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  dev->add_option("--gpu-type", da.gpu_type, "GPU type the nodes advertise")->capture_default_str();
  dev->add_option("--heartbeat-timeout", da.heartbeat_timeout_s,
                  "Seconds before a silent node is NotReady")
      ->capture_default_str();
  dev->add_option("--demo", da.demo,
                  "Submit every job spec in this folder, follow them to the end, then apply its "
                  "endpoint specs, send traffic through a gateway, print a summary, stop the cluster");
  dev->add_option("--demo-timeout", da.demo_timeout_s, "Seconds the demo waits for its jobs")
      ->capture_default_str();
  dev->add_flag("--no-limits", da.no_limits, "Agents do not enforce cgroup limits");
  dev->add_option("--master-port-base", da.master_port_base,
                  "First of the ports the controller reserves for gangs and endpoint replicas "
                  "(give two dev clusters on one machine different ones)")
      ->capture_default_str()
      ->check(CLI::Range(1024, 55000));
  dev->add_flag("--insecure", da.insecure, "Controller and agents without TLS (debugging only)");
  dev->add_flag("--run-as-agent-uid", da.run_as_agent_uid,
                "Agents run workloads as their own uid instead of unprivileged uids of their own");
  dev->add_option("--wan-rtt-ms", da.wan_rtt_ms,
                  "Emulated round trip between regions for training traffic (netemu)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10000.0));
  dev->add_option("--wan-mbps", da.wan_mbps,
                  "Emulated bandwidth of each inter-region link (0: unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  dev->callback([] { *g_action = [] { return RunDev(da); }; });

  // ---- job
  static JobArgs ja;
  auto* job = app.add_subcommand("job", "Submit, list, inspect, follow and cancel jobs");
  job->require_subcommand(1);
  auto* submit = job->add_subcommand("submit", "Submit job specs (kind: job)");
  AddClientFlags(submit, &ja.client);
  submit->add_option("-f,--file", ja.files, "Job spec file(s), '-' for stdin")->required();
  submit->add_flag("--wait", ja.wait, "Wait until the jobs end; exit 0 only if all succeeded");
  submit->callback([] { *g_action = [] { return JobSubmit(ja); }; });
  auto* list = job->add_subcommand("list", "List jobs");
  AddClientFlags(list, &ja.client);
  list->add_option("--state", ja.states, "Only jobs in this state (repeat)");
  list->add_option("--limit", ja.limit, "At most this many");
  list->callback([] { *g_action = [] { return JobList(ja); }; });
  auto* get = job->add_subcommand("get", "Show one job with its replicas");
  AddClientFlags(get, &ja.client);
  get->add_option("id", ja.id, "Job id")->required();
  get->callback([] { *g_action = [] { return JobGet(ja); }; });
  auto* logs = job->add_subcommand("logs", "Print a replica's output");
  AddClientFlags(logs, &ja.client);
  logs->add_option("id", ja.id, "Job id")->required();
  logs->add_option("--replica", ja.replica, "Replica index")->capture_default_str();
  logs->add_flag("--stderr", ja.stderr_stream, "stderr instead of stdout");
  logs->add_option("--attempt", ja.attempt,
                   "Which attempt (0, 1, ...; default: the current one, or the last that ran "
                   "while the replica waits for a retry)")
      ->check(CLI::Range(0, 1000000));
  logs->add_flag("-f,--follow", ja.follow, "Keep printing until the replica ends");
  logs->callback([] { *g_action = [] { return JobLogs(ja); }; });
  auto* cancel =
      job->add_subcommand("cancel", "Cancel a job (SIGTERM, then SIGKILL after its grace)");
  AddClientFlags(cancel, &ja.client);
  cancel->add_option("id", ja.id, "Job id")->required();
  cancel->callback([] { *g_action = [] { return JobCancel(ja); }; });
  auto* watch = job->add_subcommand("watch", "Stream job state changes");
  AddClientFlags(watch, &ja.client);
  watch->add_option("id", ja.id, "Job id (default: every job)");
  watch->callback([] { *g_action = [] { return JobWatch(ja); }; });

  // ---- node / region
  static NodeArgs na;
  auto* node = app.add_subcommand("node", "List, cordon and drain nodes");
  node->require_subcommand(1);
  auto* nlist = node->add_subcommand("list", "List nodes with state and use");
  AddClientFlags(nlist, &na.client);
  nlist->callback([] { *g_action = [] { return NodeList(na); }; });
  auto* cordon = node->add_subcommand("cordon", "Stop placing new work on a node");
  AddClientFlags(cordon, &na.client);
  cordon->add_option("name", na.name, "Node name")->required();
  cordon->add_flag("--undo", na.undo, "Uncordon");
  cordon->callback([] { *g_action = [] { return NodeCordon(na); }; });
  auto* drain = node->add_subcommand("drain", "Cordon a node and re-place its jobs elsewhere");
  AddClientFlags(drain, &na.client);
  drain->add_option("name", na.name, "Node name")->required();
  drain->callback([] { *g_action = [] { return NodeDrain(na); }; });
  static ClientConfig ra;
  auto* region = app.add_subcommand("region", "Regions and their capacity");
  region->require_subcommand(1);
  auto* rlist = region->add_subcommand("list", "List regions");
  AddClientFlags(rlist, &ra);
  rlist->callback([] { *g_action = [] { return RegionList(ra); }; });

  // ---- netemu
  static netemu::RelayOptions no;
  static double ne_delay = 0, ne_mbps = 0, ne_loss = 0;
  auto* ne = app.add_subcommand(
      "netemu",
      "Emulate an inter-region link: a TCP relay adding one-way delay, a bandwidth cap "
      "and loss penalties, counting the bytes it carries (the kernel here has no netem)");
  ne->add_option("--listen", no.listen, "Address to accept on")->capture_default_str();
  ne->add_option("--to", no.target, "Address to relay to (HOST:PORT)")->required();
  ne->add_option("--delay-ms", ne_delay, "One-way delay each way (RTT = 2x)")
      ->check(CLI::Range(0.0, 60000.0));
  ne->add_option("--mbps", ne_mbps, "Bandwidth each way in Mbit/s (0 = unlimited)")
      ->check(CLI::Range(0.0, 1e6));
  ne->add_option("--loss", ne_loss, "Probability a chunk pays a retransmission penalty")
      ->check(CLI::Range(0.0, 1.0));
  ne->callback([] {
    *g_action = [] {
      for (netemu::LinkOptions* l : {&no.forward, &no.reverse}) {
        l->one_way_delay_ms = ne_delay;
        l->mbps = ne_mbps;
        l->loss = ne_loss;
      }
      return RunNetemu(no);
    };
  });

  // ---- train
  static TrainArgs ta;
  auto* tr = app.add_subcommand(
      "train",
      "Train the MLP classifier on the UCI digits (or a generated set): in one process, or "
      "data-parallel with --standalone workers spread over emulated regions");
  tr->add_option("--dataset", ta.dataset,
                 "digits (MERIDIAN_DATA or ../shared/data), synthetic, large (1.6M-parameter "
                 "task), or a CSV path")
      ->capture_default_str();
  tr->add_option("--samples", ta.synthetic_samples,
                 "Samples to generate for synthetic (2000) or large (24000)")
      ->check(CLI::Range(10, 10000000));
  tr->add_option("--epochs", ta.epochs, "Passes over the training set")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  tr->add_option("--batch", ta.batch, "Samples per step (all workers together)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  tr->add_option("--lr", ta.lr, "Learning rate (SGD, momentum 0.9)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 10.0));
  tr->add_option("--hidden", ta.hidden,
                 "Hidden layer width, repeat for more layers (default 64; 2048 512 for large)")
      ->check(CLI::Range(1, 1 << 16));
  tr->add_option("--test-fraction", ta.test_fraction, "Share of the data held out")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.9));
  tr->add_option("--seed", ta.seed, "Seed for data, split, initialisation and order")
      ->capture_default_str();
  tr->add_flag("--json", ta.json, "Print one JSON object");
  tr->add_flag("--quiet", ta.quiet, "No progress lines");
  tr->add_flag("--standalone", ta.standalone,
               "Run --workers processes on this machine, linked through emulated WAN links");
  tr->add_option("--workers", ta.workers, "Worker processes (--standalone)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  tr->add_option("--regions", ta.regions, "Regions the workers are spread over (--standalone)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  tr->add_option("--mode", ta.mode, "allreduce, central, hierarchical or diloco")
      ->capture_default_str();
  tr->add_option("--wan-rtt-ms", ta.wan_rtt_ms, "Round-trip time between two regions")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10000.0));
  tr->add_option("--wan-mbps", ta.wan_mbps, "Bandwidth of each inter-region link (0: unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  tr->add_option("--wan-loss", ta.wan_loss, "Loss probability on inter-region links")
      ->check(CLI::Range(0.0, 1.0));
  tr->add_option("--local-steps", ta.local_steps, "diloco: local steps between exchanges (H)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  tr->add_option("--outer-lr", ta.outer_lr, "diloco: outer Nesterov learning rate")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 10.0));
  tr->add_option("--outer-momentum", ta.outer_momentum, "diloco: outer Nesterov momentum")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999));
  tr->add_option("--compression", ta.compression,
                 "diloco: none, fp16 or int8 for what crosses regions")
      ->capture_default_str();
  tr->add_flag("--overlap", ta.overlap,
               "diloco: exchange deltas while the next round computes (applied one round late)");
  tr->add_option("--shares", ta.shares,
                 "dynamic (batch shares follow measured throughput) or equal")
      ->capture_default_str();
  tr->add_option("--rebalance-every", ta.rebalance_every, "Steps between share updates")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  tr->add_option("--slow-rank", ta.slow_rank, "Slow this rank down (benchmarks)");
  tr->add_option("--slow-factor", ta.slow_factor, "How many times slower --slow-rank computes")
      ->check(CLI::Range(1.0, 100.0));
  tr->add_option("--target-accuracy", ta.target_accuracy,
                 "Stop once rank 0 measures this test accuracy (0: run all epochs)")
      ->check(CLI::Range(0.0, 1.0));
  tr->add_option("--eval-every", ta.eval_every, "Steps between evaluations on rank 0")
      ->check(CLI::Range(0, 1000000));
  tr->add_option("--eval-samples", ta.eval_samples, "Test samples per evaluation (0: all)")
      ->check(CLI::Range(0, 100000000));
  tr->add_option("--checkpoint-dir", ta.checkpoint_dir,
                 "Directory for atomic checkpoints; a run resumes from the one it finds");
  tr->add_option("--checkpoint-every", ta.checkpoint_every, "Steps between checkpoints")
      ->check(CLI::Range(0, 1000000));
  tr->add_option("--work-dir", ta.work_dir, "Keep worker logs here (--standalone)");
  tr->add_option("--save", ta.save, "Write the trained model here (for meridian serve)");
  tr->add_flag("--worker", ta.worker,
               "Run one rank (inside a Meridian job: rank, peers and store come from RANK, "
               "MERIDIAN_PEER_REGIONS, MASTER_ADDR/PORT)");
  tr->add_option("--rank", ta.rank, "--worker: this rank");
  tr->add_option("--store", ta.store, "--worker: the store's HOST:PORT");
  tr->add_option("--rank-regions", ta.rank_regions, "--worker: region of every rank, comma-separated");
  tr->add_option("--epoch", ta.epoch, "--worker: membership epoch (store prefix)");
  tr->add_option("--fail-after-step", ta.fail_after_step, "--worker: crash after this step (tests)");
  tr->add_flag("--relays", ta.relays, "--worker: the store hands out netemu relays");
  tr->callback([] { *g_action = [] { return RunTrain(ta); }; });

  // ---- serve
  static ServeArgs sa;
  auto* sv = app.add_subcommand(
      "serve", "Serve a model written by `meridian train --save` over HTTP: POST /v1/predict, "
               "GET /healthz, /readyz, /metrics");
  sv->add_option("--model", sa.model, "Model file")->required();
  sv->add_option("--listen", sa.listen,
                 "HOST:PORT (port 0: any free port), or `job`: MASTER_ADDR:MASTER_PORT inside a "
                 "Meridian job")
      ->capture_default_str();
  sv->add_option("--drain-seconds", sa.drain_seconds,
                 "After SIGTERM, answer /readyz 503 but keep serving this long (gateways move away)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  sv->add_option("--max-body-bytes", sa.max_body_bytes, "Larger requests get 413")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(64), int64_t(1) << 30));
  sv->add_option("--address-file", sa.address_file, "Write HOST:PORT here once listening");
  sv->add_option("--inject-delay-ms", sa.inject_delay_ms,
                 "Fault injection: every prediction waits this long (an emulated slow replica)")
      ->check(CLI::Range(0.0, 600000.0));
  sv->add_option("--inject-error-rate", sa.inject_error_rate,
                 "Fault injection: this share of predictions get 500 (1: every one)")
      ->check(CLI::Range(0.0, 1.0));
  sv->add_option("--threads", sa.threads,
                 "Event-loop threads serving all connections (0: one per CPU)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  sv->add_option("--request-timeout", sa.request_timeout_s,
                 "Seconds a request's header and body may take to arrive (from its first byte), "
                 "and an answer to be taken; then the connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  sv->add_option("--idle-timeout", sa.idle_timeout_s,
                 "Seconds a keep-alive connection may wait for its next request")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  sv->add_option("--max-connections", sa.max_connections,
                 "Open connections at most; more get 503 and are closed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  sv->add_option("--tls-cert", sa.tls_cert,
                 "PEM certificate chain: serve HTTPS only (with --tls-key)");
  sv->add_option("--tls-key", sa.tls_key, "PEM private key of --tls-cert");
  sv->callback([] { *g_action = [] { return RunServe(sa); }; });
  static PredictArgs pa;
  auto* pr = app.add_subcommand(
      "predict", "Send held-out samples to a running `meridian serve`; report accuracy and latency");
  pr->add_option("--server", pa.server, "HOST:PORT of the server, or of a gateway")->required();
  pr->add_option("--endpoint", pa.endpoint, "Through a gateway: the endpoint's name");
  pr->add_option("--token", pa.token, "Bearer token of the endpoint");
  pr->add_option("--dataset", pa.dataset, "digits or synthetic (its held-out split)")
      ->capture_default_str();
  pr->add_option("--samples", pa.samples, "Requests to send")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  pr->add_option("--seed", pa.seed, "Seed of the split (as given to meridian train)")
      ->capture_default_str();
  pr->callback([] { *g_action = [] { return RunPredict(pa); }; });

  // ---- gateway
  static GatewayArgs ga;
  auto* gw = app.add_subcommand(
      "gateway",
      "Reverse proxy in front of model replicas: load-balancing policies, health checks, outlier "
      "ejection, bearer tokens. Replicas from --upstream, or every endpoint of --controller");
  gw->add_option("--listen", ga.listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  gw->add_option("--upstream", ga.upstreams,
                 "A replica as HOST:PORT, HOST:PORT@REGION or HOST:PORT@REGION/ZONE; repeat for "
                 "each (static mode). https://HOST:PORT...: reached over TLS (see --upstream-ca)");
  gw->add_option("--endpoint", ga.endpoint, "Name of the --upstream endpoint")
      ->capture_default_str();
  gw->add_option("--token-file", ga.token_file,
                 "File holding the bearer token clients must send (static mode)");
  gw->add_option("--controller", ga.controller,
                 "Controller HOST:PORT: serve its endpoints, follow their replicas, report load");
  gw->add_option("--controller-token-file", ga.controller_token_file,
                 "Token for the controller (default: $MERIDIAN_TOKEN, or the --data-dir token)");
  gw->add_option("--controller-ca-file", ga.controller_ca_file,
                 "Cluster CA that checks the controller (default: $MERIDIAN_CA_FILE, or the "
                 "--data-dir CA)");
  gw->add_option("--data-dir", ga.data_dir,
                 "Data dir of a running `meridian dev` or controller: serve its endpoints");
  gw->add_option("--policy", ga.policy,
                 "round_robin, least_request, least_loaded, consistent_hash, locality, prequal")
      ->capture_default_str();
  gw->add_option("--policy-option", ga.policy_options,
                 "KEY=VALUE for the policy (locality: overflow_in_flight, panic_percent; prequal: "
                 "probes, quantile; consistent_hash: vnodes; least_request: latency_aware)");
  gw->add_option("--region", ga.region, "The gateway's region: callers without X-Meridian-Region "
                                        "are taken to be here");
  gw->add_option("--zone", ga.zone,
                 "The gateway's zone in --region: such callers without X-Meridian-Zone are taken "
                 "to be here (the locality policy prefers replicas in it)");
  gw->add_option("--threads", ga.threads,
                 "Event-loop threads (0: one per CPU the gateway may run on, its affinity mask, as "
                 "nginx's worker_processes auto)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  gw->add_option("--retries", ga.retries, "Other replicas tried after a failed attempt")
      ->capture_default_str()
      ->check(CLI::Range(0, 10));
  gw->add_option("--health-interval", ga.health_interval_s, "Seconds between health checks (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  gw->add_option("--health-timeout", ga.health_timeout_s, "Seconds a health check may take")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  gw->add_option("--consecutive-errors", ga.consecutive_errors,
                 "Failures in a row that eject a replica (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  gw->add_option("--slow-factor", ga.slow_factor,
                 "Eject a replica slower than this x the median of the others (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  gw->add_option("--slow-min-ms", ga.slow_min_ms,
                 "... and at least this many milliseconds slower than that median")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600000.0));
  gw->add_option("--base-ejection", ga.base_ejection_s,
                 "Seconds of the first ejection; the k-th lasts k times as long")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  gw->add_option("--max-ejected-percent", ga.max_ejected_percent,
                 "Never eject more than this share of an endpoint's replicas")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  gw->add_option("--upstream-timeout", ga.upstream_timeout_s, "Seconds a replica may take to answer")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  gw->add_option("--max-body-bytes", ga.max_body_bytes, "Larger requests get 413")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(64), int64_t(1) << 30));
  gw->add_option("--request-timeout", ga.request_timeout_s,
                 "Seconds a client request's header and body may take to arrive (from its first "
                 "byte), and an answer to be taken; then the connection is closed")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  gw->add_option("--idle-timeout", ga.idle_timeout_s,
                 "Seconds a client's keep-alive connection may wait for its next request")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  gw->add_option("--max-connections", ga.max_connections,
                 "Open client connections at most; more get 503 and are closed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  gw->add_option("--tls-cert", ga.tls_cert,
                 "PEM certificate chain: serve HTTPS only (with --tls-key)");
  gw->add_option("--tls-key", ga.tls_key, "PEM private key of --tls-cert");
  gw->add_option("--upstream-ca", ga.upstream_ca,
                 "PEM CA bundle that verifies https:// replicas (default: the system's CAs)");
  gw->add_option("--address-file", ga.address_file, "Write HOST:PORT here once listening");
  gw->add_option("--sync-interval", ga.sync_interval_s,
                 "Controller mode: seconds between endpoint refreshes and load reports")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 60.0));
  gw->callback([] { *g_action = [] { return RunGateway(ga); }; });

  // ---- helpers run inside replicas
  static double rv_timeout = 60;
  auto* rv = app.add_subcommand("rendezvous-check",
                                "Inside a gang replica: check MASTER_ADDR/PORT, RANK, WORLD_SIZE "
                                "against the other ranks over TCP");
  rv->add_option("--timeout", rv_timeout, "Seconds to wait for the other ranks")
      ->capture_default_str();
  rv->callback([] { *g_action = [] { return RunRendezvousCheck(rv_timeout); }; });

  // ---- benchmarks
  static BenchSubmitArgs bs;
  auto* bsub = bench->add_subcommand(
      "submit", "Durable job submissions per second through a real controller");
  bsub->add_option("--jobs", bs.jobs, "Submissions")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  bsub->add_option("--concurrency", bs.concurrency, "Submits in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  bsub->add_flag("--json", bs.json, "Print one JSON object");
  bsub->add_flag("--insecure", bs.insecure, "Controller without TLS (to measure what TLS costs)");
  bsub->callback([] { *g_action = [] { return RunBenchSubmit(bs); }; });
  static BenchAgentsArgs bag;
  auto* bagc = bench->add_subcommand("agents", "Controller CPU under many agents heartbeating");
  bagc->add_option("--agents", bag.agents, "Simulated agents")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  bagc->add_option("--hz", bag.hz, "Heartbeats per agent per second")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 100.0));
  bagc->add_option("--seconds", bag.seconds, "Measured duration")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  bagc->add_flag("--json", bag.json, "Print one JSON object");
  bagc->add_flag("--insecure", bag.insecure,
                 "Controller without TLS; agents hold node tokens (to measure what TLS costs)");
  bagc->add_option("--insecure-connections", bag.insecure_connections,
                   "With --insecure: connections the agents share (TLS: one per agent)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  bagc->callback([] { *g_action = [] { return RunBenchAgents(bag); }; });

  static BenchCollectiveArgs bcol;
  auto* bco = bench->add_subcommand(
      "collective", "Allreduce on loopback: Gloo ring, Meridian's path, and OpenMPI, one run");
  bco->add_option("--procs", bcol.procs, "Processes")
      ->capture_default_str()
      ->check(CLI::Range(2, 64));
  bco->add_option("--bytes", bcol.bytes, "Buffer size")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(4), int64_t(1) << 32));
  bco->add_option("--iters", bcol.iters, "Timed iterations (after 3 warm-ups)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  bco->add_flag("--json", bcol.json, "Print one JSON object");
  bco->add_flag("--worker", bcol.worker, "Internal: one rank");
  bco->add_option("--rank", bcol.rank, "Internal: this rank");
  bco->add_option("--store", bcol.store, "Internal: the store");
  bco->callback([] { *g_action = [] { return RunBenchCollective(bcol); }; });

  g_action = action;
}

}  // namespace meridian::cli
