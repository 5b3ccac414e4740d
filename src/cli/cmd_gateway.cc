// `meridian gateway`: the load-balancing reverse proxy. Static mode serves
// the replicas given with --upstream as one endpoint; controller mode
// (--controller) serves every endpoint the controller knows, follows their
// replicas as they move, and reports each endpoint's load for autoscaling.
#include <signal.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"
#include "serve/gateway.h"

namespace meridian::cli {

namespace {

// Controller mode: every `sync_interval_s`, the endpoint list (ready
// replicas of each, and its token) replaces the gateway's, and the average
// requests in flight per endpoint over the interval is reported back for
// autoscaling. Returns when a stop signal arrives.
int FollowController(const GatewayArgs& a, serve::Gateway* g, sigset_t* set) {
  ClientConfig c;
  c.controller = a.controller;
  c.token_file = a.controller_token_file;
  c.ca_file = a.controller_ca_file;
  c.data_dir = a.data_dir;
  if (absl::Status s = ResolveClient(&c); !s.ok()) {
    std::fprintf(stderr, "meridian gateway: %s\n", std::string(s.message()).c_str());
    return kExitInvalid;
  }
  auto stub = v1::EndpointService::NewStub(rpc::Connect(c.controller, c.security));
  std::string id = absl::StrCat("gateway-", ::getpid(), "@", g->address());
  std::map<std::string, double> sum;
  int samples = 0;
  bool warned = false;
  auto next_sync = std::chrono::steady_clock::now();
  for (;;) {
    timespec tick{0, 100 * 1000 * 1000};
    if (sigtimedwait(set, nullptr, &tick) > 0) return kExitOk;
    for (const serve::EndpointLoad& l : g->Load()) sum[l.name] += static_cast<double>(l.in_flight);
    ++samples;
    if (std::chrono::steady_clock::now() < next_sync) continue;
    next_sync = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(a.sync_interval_s));
    v1::ReportLoadRequest report;
    report.set_gateway(id);
    for (const serve::EndpointLoad& l : g->Load()) {
      v1::EndpointLoad* e = report.add_loads();
      e->set_name(l.name);
      e->set_in_flight(samples ? sum[l.name] / samples : 0);
      e->set_requests(l.requests);
      e->set_failed(l.failed);
    }
    sum.clear();
    samples = 0;
    grpc::ClientContext rctx;
    rpc::Prepare(&rctx, c.token, 2);
    v1::ReportLoadResponse rresp;
    (void)stub->ReportLoad(&rctx, report, &rresp);
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, c.token, 2);
    v1::ListEndpointsResponse resp;
    grpc::Status st = stub->List(&ctx, v1::ListEndpointsRequest(), &resp);
    if (!st.ok()) {
      if (!warned)
        std::fprintf(stderr, "meridian gateway: cannot list endpoints (%s); keeping the last list\n",
                     st.error_message().c_str());
      warned = true;
      continue;
    }
    warned = false;
    std::vector<serve::EndpointConfig> eps;
    for (const v1::Endpoint& e : resp.endpoints()) {
      if (e.deleted()) continue;
      serve::EndpointConfig ec;
      ec.name = e.name();
      ec.token = e.token();
      // Ready replicas only (running for the endpoint's min_ready), and
      // each only once a health check has passed: a replica still loading
      // its model gets no requests.
      for (const v1::EndpointReplica& r : e.replicas())
        if (r.ready() && !r.address().empty())
          ec.hosts.push_back({r.address(), r.region(), /*presumed_healthy=*/false, r.zone()});
      eps.push_back(std::move(ec));
    }
    g->SetEndpoints(std::move(eps));
  }
}

}  // namespace

int RunGateway(const GatewayArgs& a) {
  auto fail = [](int code, const std::string& message) {
    std::fprintf(stderr, "meridian gateway: %s\n", message.c_str());
    return code;
  };
  bool follow = !a.controller.empty() || !a.data_dir.empty();
  if (a.upstreams.empty() && !follow)
    return fail(kExitInvalid,
                "give replicas with --upstream HOST:PORT[@REGION[/ZONE]], or --controller / "
                "--data-dir");
  if (!a.upstreams.empty() && follow)
    return fail(kExitInvalid, "--upstream and --controller/--data-dir exclude each other");
  serve::GatewayOptions o;
  o.listen = a.listen;
  o.threads = a.threads;
  o.policy = a.policy;
  for (const std::string& kv : a.policy_options) {
    std::vector<std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.size() != 2 || p[0].empty())
      return fail(kExitInvalid, absl::StrCat("--policy-option '", kv, "' is not KEY=VALUE"));
    o.policy_options[p[0]] = p[1];
  }
  o.region = a.region;
  o.zone = a.zone;
  if (!a.zone.empty() && a.region.empty())
    return fail(kExitInvalid, "--zone needs --region: a zone is inside a region");
  o.retries = a.retries;
  o.health.interval_s = a.health_interval_s;
  o.health.timeout_s = a.health_timeout_s;
  o.outlier.consecutive_errors = a.consecutive_errors;
  o.outlier.slow_factor = a.slow_factor;
  o.outlier.slow_min_ms = a.slow_min_ms;
  o.outlier.base_ejection_s = a.base_ejection_s;
  o.outlier.max_ejected_percent = a.max_ejected_percent;
  o.upstream_timeout_s = a.upstream_timeout_s;
  o.max_body_bytes = static_cast<size_t>(a.max_body_bytes);
  o.request_timeout_s = a.request_timeout_s;
  o.idle_timeout_s = a.idle_timeout_s;
  o.max_connections = static_cast<size_t>(a.max_connections);
  o.tls_cert = a.tls_cert;
  o.tls_key = a.tls_key;
  o.upstream_ca = a.upstream_ca;
  if (absl::Status s = serve::CheckPolicy(o.policy, o.policy_options); !s.ok())
    return fail(kExitInvalid, std::string(s.message()));

  std::vector<serve::EndpointConfig> endpoints;
  if (!a.upstreams.empty()) {
    serve::EndpointConfig ep;
    ep.name = a.endpoint;
    for (const std::string& u : a.upstreams) {
      std::vector<std::string> p = absl::StrSplit(u, absl::MaxSplits('@', 1));
      std::vector<std::string> rz;  // REGION[/ZONE]
      if (p.size() > 1) rz = absl::StrSplit(p[1], absl::MaxSplits('/', 1));
      if (p[0].rfind(':') == std::string::npos || (p.size() > 1 && rz[0].empty()))
        return fail(kExitInvalid,
                    absl::StrCat("--upstream '", u,
                                 "' is not [https://]HOST:PORT[@REGION[/ZONE]]"));
      ep.hosts.push_back(lb::HostConfig{p[0], rz.empty() ? "" : rz[0], true,
                                        rz.size() > 1 ? rz[1] : ""});
    }
    if (!a.token_file.empty()) {
      absl::StatusOr<std::string> t = rpc::ReadTokenFile(a.token_file);
      if (!t.ok()) return fail(kExitInvalid, std::string(t.status().message()));
      ep.token = *t;
    }
    endpoints.push_back(std::move(ep));
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  SystemClock clock;
  absl::StatusOr<std::unique_ptr<serve::Gateway>> g =
      serve::Gateway::Start(o, std::move(endpoints), &clock);
  if (!g.ok())
    return fail(absl::IsInvalidArgument(g.status()) ? kExitInvalid : kExitError,
                std::string(g.status().message()));
  if (!a.address_file.empty()) {
    absl::Status w = WriteFileAtomic(a.address_file, (*g)->address() + "\n", 0644);
    if (!w.ok()) return fail(kExitError, std::string(w.message()));
  }
  std::printf("gateway on %s://%s, policy %s, %s\n", o.tls_cert.empty() ? "http" : "https",
              (*g)->address().c_str(), o.policy.c_str(),
              !follow ? absl::StrCat(a.upstreams.size(), " replicas of endpoint ", a.endpoint).c_str()
                      : "the controller's endpoints");
  std::fflush(stdout);
  int sig = 0;
  if (!follow) {
    sigwait(&set, &sig);
  } else {
    int rc = FollowController(a, g->get(), &set);
    if (rc != kExitOk) return rc;
  }
  (*g)->Stop();
  return kExitOk;
}

}  // namespace meridian::cli
