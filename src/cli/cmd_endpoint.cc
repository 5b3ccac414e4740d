// `meridian endpoint apply|create -f FILE`, `list`, `get NAME`, `delete NAME`:
// model endpoints on a running controller (controller/endpoints.h).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/client.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rpc/rpc.h"

namespace meridian::cli {
namespace {

namespace fs = std::filesystem;

std::function<int()>* g_endpoint_action = nullptr;

struct EndpointArgs {
  ClientConfig client;
  std::string file;
  std::string name;
};

std::unique_ptr<v1::EndpointService::Stub> Stub(const ClientConfig& c) {
  return v1::EndpointService::NewStub(rpc::Connect(c.controller, c.security));
}

int Resolve(ClientConfig* c, const char* what) {
  if (absl::Status s = ResolveClient(c); !s.ok()) {
    std::fprintf(stderr, "meridian endpoint %s: %s\n", what, std::string(s.message()).c_str());
    return kExitInvalid;
  }
  return kExitOk;
}

std::string ReplicaSummary(const v1::Endpoint& e) {
  int ready = 0;
  for (const v1::EndpointReplica& r : e.replicas()) ready += r.ready() ? 1 : 0;
  return absl::StrCat(ready, "/", e.desired_replicas());
}

int Apply(EndpointArgs a) {
  if (int rc = Resolve(&a.client, "apply"); rc != kExitOk) return rc;
  std::string text;
  if (a.file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(a.file);
    if (!in) {
      std::fprintf(stderr, "meridian endpoint apply: cannot read %s\n", a.file.c_str());
      return kExitInvalid;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::ApplyEndpointRequest req;
  req.set_spec(text);
  req.set_filename(a.file == "-" ? "stdin" : a.file);
  v1::Endpoint e;
  grpc::Status st = Stub(a.client)->Apply(&ctx, req, &e);
  if (!st.ok()) return Fail("endpoint apply", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(e).c_str());
  } else {
    std::printf("endpoint %s %s: %d replicas of %s\n", e.name().c_str(), e.message().c_str(),
                e.desired_replicas(), e.model().c_str());
  }
  return kExitOk;
}

int List(EndpointArgs a) {
  if (int rc = Resolve(&a.client, "list"); rc != kExitOk) return rc;
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::ListEndpointsResponse resp;
  grpc::Status st = Stub(a.client)->List(&ctx, v1::ListEndpointsRequest(), &resp);
  if (!st.ok()) return Fail("endpoint list", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(resp).c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "READY", "GEN", "REGIONS", "IN FLIGHT", "MODEL", "AGE", "MESSAGE"}};
  for (const v1::Endpoint& e : resp.endpoints()) {
    std::vector<std::string> regions;
    for (const v1::EndpointReplica& r : e.replicas())
      if (!r.region().empty() &&
          std::find(regions.begin(), regions.end(), r.region()) == regions.end())
        regions.push_back(r.region());
    std::string msg = e.message();
    if (msg.size() > 60) msg = msg.substr(0, 57) + "...";
    rows.push_back({e.name(), ReplicaSummary(e), absl::StrCat(e.generation()),
                    regions.empty() ? "-" : absl::StrJoin(regions, ","),
                    absl::StrCat(static_cast<int>(e.in_flight() + 0.5)), e.model(),
                    Age(e.created_at()), msg});
  }
  PrintTable(rows);
  return kExitOk;
}

int Get(EndpointArgs a) {
  if (int rc = Resolve(&a.client, "get"); rc != kExitOk) return rc;
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::GetEndpointRequest req;
  req.set_name(a.name);
  v1::Endpoint e;
  grpc::Status st = Stub(a.client)->Get(&ctx, req, &e);
  if (!st.ok()) return Fail("endpoint get", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(e).c_str());
  } else {
    PrintEndpoint(e);
  }
  return kExitOk;
}

int Delete(EndpointArgs a) {
  if (int rc = Resolve(&a.client, "delete"); rc != kExitOk) return rc;
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, a.client.token, a.client.timeout_s);
  v1::DeleteEndpointRequest req;
  req.set_name(a.name);
  v1::Endpoint e;
  grpc::Status st = Stub(a.client)->Delete(&ctx, req, &e);
  if (!st.ok()) return Fail("endpoint delete", st);
  if (a.client.output == "json") {
    std::printf("%s\n", ToJson(e).c_str());
  } else {
    std::printf("endpoint %s deleted; its replicas are stopping\n", e.name().c_str());
  }
  return kExitOk;
}

}  // namespace

void PrintEndpoint(const v1::Endpoint& e) {
  std::printf("endpoint %s%s\n", e.name().c_str(), e.deleted() ? "  (deleting)" : "");
  std::printf("  model:      %s   (generation %d)\n", e.model().c_str(), e.generation());
  std::printf("  replicas:   %s ready; desired %d (min %d, max %d)\n", ReplicaSummary(e).c_str(),
              e.desired_replicas(), e.min_replicas(), e.max_replicas());
  std::printf("  regions:    %s\n",
              e.regions().empty() ? "all" : absl::StrJoin(e.regions(), ", ").c_str());
  std::printf("  in flight:  %.1f (reported by gateways)\n", e.in_flight());
  std::printf("  auth:       %s\n", e.token().empty() ? "none" : "bearer token");
  std::printf("  message:    %s\n", e.message().c_str());
  std::vector<std::vector<std::string>> rows = {
      {"JOB", "GEN", "STATE", "READY", "FAILURES", "REGION", "ZONE", "NODE", "ADDRESS"}};
  std::vector<std::string> failing;
  for (const v1::EndpointReplica& r : e.replicas()) {
    rows.push_back({absl::StrCat(r.job_id()), absl::StrCat(r.generation()), JobStateName(r.state()),
                    r.ready() ? "yes" : "no", absl::StrCat(r.failures()),
                    r.region().empty() ? "-" : r.region(), r.zone().empty() ? "-" : r.zone(),
                    r.node().empty() ? "-" : r.node(), r.address().empty() ? "-" : r.address()});
    if (r.failures() > 0 && !r.ready())
      failing.push_back(absl::StrCat("  job ", r.job_id(), ": ", r.message()));
  }
  std::printf("\n");
  PrintTable(rows);
  if (!failing.empty()) {
    std::printf("\nfailing replicas (last error; `meridian job logs ID --stderr` for more):\n");
    for (const std::string& f : failing) std::printf("%s\n", f.c_str());
  }
}

// The demo's serving phase: deploy an endpoint, put a gateway in front of
// it (a child process following the controller), send it held-out samples,
// and show where they went.
int RunDemoEndpoint(const std::string& file, const std::string& text, const ClientConfig& client) {
  auto stub = v1::EndpointService::NewStub(rpc::Connect(client.controller, client.security));
  v1::Endpoint e;
  {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, client.token, 10);
    v1::ApplyEndpointRequest req;
    req.set_spec(text);
    req.set_filename(file);
    grpc::Status st = stub->Apply(&ctx, req, &e);
    if (!st.ok()) return Fail("dev", st);
  }
  std::printf("\n== endpoint %s: %d replicas of %s (%s)\n", e.name().c_str(), e.desired_replicas(),
              e.model().c_str(), fs::path(file).filename().c_str());
  double deadline = SteadySeconds() + 60;
  int ready = 0;
  while (SteadySeconds() < deadline) {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, client.token, 5);
    v1::GetEndpointRequest req;
    req.set_name(e.name());
    if (stub->Get(&ctx, req, &e).ok()) {
      ready = 0;
      for (const v1::EndpointReplica& r : e.replicas()) ready += r.ready() ? 1 : 0;
      if (ready >= e.desired_replicas()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  PrintEndpoint(e);
  if (ready < e.desired_replicas()) {
    std::fprintf(stderr, "meridian dev: endpoint %s: only %d of %d replicas ready after 60 s\n",
                 e.name().c_str(), ready, e.desired_replicas());
    return kExitError;
  }
  std::string addr_file = client.data_dir + "/gateway.addr";
  fs::remove(addr_file);
  absl::StatusOr<Child> gw =
      SpawnSelf("gateway",
                {"gateway", "--data-dir", client.data_dir, "--controller-token-file",
                 fs::exists(client.data_dir + "/gateway.token") ? client.data_dir + "/gateway.token"
                                                                 : client.data_dir + "/token",
                 "--listen", "127.0.0.1:0", "--address-file", addr_file, "--sync-interval", "0.2"},
                client.data_dir + "/logs/gateway.log");
  if (!gw.ok()) {
    std::fprintf(stderr, "meridian dev: %s\n", std::string(gw.status().message()).c_str());
    return kExitError;
  }
  absl::StatusOr<std::string> addr = WaitForFile(addr_file, 20, &*gw);
  if (!addr.ok()) {
    StopChild(*gw, 2);
    std::fprintf(stderr, "meridian dev: gateway: %s\n",
                 std::string(addr.status().message()).c_str());
    return kExitError;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // its first sync
  std::printf("\n== traffic: held-out digits through the gateway at %s\n", addr->c_str());
  std::fflush(stdout);
  PredictArgs pa;
  pa.server = *addr;
  pa.endpoint = e.name();
  pa.token = e.token();
  pa.samples = 300;
  pa.dataset = fs::exists(DigitsPath()) ? "digits" : "synthetic";
  int rc = RunPredict(pa);
  nlohmann::json status = nlohmann::json::parse(HttpGet(*addr, "/gateway/status"), nullptr, false);
  if (status.is_object() && status.contains("endpoints")) {
    for (const auto& ep : status["endpoints"]) {
      std::vector<std::string> parts;
      for (const auto& r : ep["replicas"])
        parts.push_back(absl::StrCat(r.value("region", "?"), " ", r.value("requests", 0)));
      std::printf("gateway (%s): requests per replica: %s\n", ep.value("policy", "").c_str(),
                  absl::StrJoin(parts, ", ").c_str());
    }
  }
  std::printf("gateway status: http://%s/gateway/status (health, latency, ejections)\n",
              addr->c_str());
  std::fflush(stdout);
  StopChild(*gw, 2);
  return rc;
}

void AddEndpointCommands(CLI::App& app, std::function<int()>* action) {
  g_endpoint_action = action;
  auto* ep = app.add_subcommand(
      "endpoint",
      "Model endpoints: replicas of `meridian serve` the controller keeps running, "
      "spread over regions, scaled with load, updated without dropping requests");
  ep->require_subcommand(1);
  static EndpointArgs apply_args, list_args, get_args, delete_args;
  for (const char* verb : {"apply", "create"}) {
    auto* c = ep->add_subcommand(
        verb, std::string(verb) == "apply"
                  ? "Create an endpoint from a `kind: endpoint` spec, or update the one of that "
                    "name (a new model rolls out one replica at a time)"
                  : "Same as apply");
    c->add_option("-f,--file", apply_args.file, "The spec (YAML or JSON; - for stdin)")->required();
    AddClientFlags(c, &apply_args.client);
    c->callback([] { *g_endpoint_action = [] { return Apply(apply_args); }; });
  }
  auto* l = ep->add_subcommand("list", "List endpoints");
  AddClientFlags(l, &list_args.client);
  l->callback([] { *g_endpoint_action = [] { return List(list_args); }; });
  auto* g = ep->add_subcommand("get", "One endpoint and its replicas");
  g->add_option("name", get_args.name, "Endpoint name")->required();
  AddClientFlags(g, &get_args.client);
  g->callback([] { *g_endpoint_action = [] { return Get(get_args); }; });
  auto* d = ep->add_subcommand("delete", "Delete an endpoint and stop its replicas");
  d->add_option("name", delete_args.name, "Endpoint name")->required();
  AddClientFlags(d, &delete_args.client);
  d->callback([] { *g_endpoint_action = [] { return Delete(delete_args); }; });
}

}  // namespace meridian::cli
