// `meridian gateway`: the load-balancing reverse proxy. Static mode serves
// the replicas given with --upstream as one endpoint; controller mode
// (--controller) serves every endpoint the controller knows, follows their
// replicas as they move, and reports each endpoint's load for autoscaling.
#include <signal.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "rpc/rpc.h"
#include "serve/gateway.h"

namespace meridian::cli {

namespace {

int FollowController(const GatewayArgs& a, serve::Gateway* g, sigset_t* set) {
  (void)a;
  (void)g;
  (void)set;
  std::fprintf(stderr, "meridian gateway: --controller is not built yet\n");
  return kExitError;
}

}  // namespace

int RunGateway(const GatewayArgs& a) {
  auto fail = [](int code, const std::string& message) {
    std::fprintf(stderr, "meridian gateway: %s\n", message.c_str());
    return code;
  };
  if (a.upstreams.empty() && a.controller.empty())
    return fail(kExitInvalid, "give replicas with --upstream HOST:PORT[@REGION], or --controller");
  if (!a.upstreams.empty() && !a.controller.empty())
    return fail(kExitInvalid, "--upstream and --controller exclude each other");
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
  o.retries = a.retries;
  o.health.interval_s = a.health_interval_s;
  o.health.timeout_s = a.health_timeout_s;
  o.outlier.consecutive_errors = a.consecutive_errors;
  o.outlier.slow_factor = a.slow_factor;
  o.outlier.base_ejection_s = a.base_ejection_s;
  o.outlier.max_ejected_percent = a.max_ejected_percent;
  o.upstream_timeout_s = a.upstream_timeout_s;
  o.max_body_bytes = static_cast<size_t>(a.max_body_bytes);
  if (absl::Status s = serve::CheckPolicy(o.policy, o.policy_options); !s.ok())
    return fail(kExitInvalid, std::string(s.message()));

  std::vector<serve::EndpointConfig> endpoints;
  if (!a.upstreams.empty()) {
    serve::EndpointConfig ep;
    ep.name = a.endpoint;
    for (const std::string& u : a.upstreams) {
      std::vector<std::string> p = absl::StrSplit(u, absl::MaxSplits('@', 1));
      if (p[0].rfind(':') == std::string::npos)
        return fail(kExitInvalid, absl::StrCat("--upstream '", u, "' is not HOST:PORT[@REGION]"));
      ep.hosts.push_back(lb::HostConfig{p[0], p.size() > 1 ? p[1] : ""});
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
  std::printf("gateway on http://%s, policy %s, %s\n", (*g)->address().c_str(), o.policy.c_str(),
              a.controller.empty()
                  ? absl::StrCat(a.upstreams.size(), " replicas of endpoint ", a.endpoint).c_str()
                  : absl::StrCat("endpoints of the controller at ", a.controller).c_str());
  std::fflush(stdout);
  int sig = 0;
  if (a.controller.empty()) {
    sigwait(&set, &sig);
  } else {
    int rc = FollowController(a, g->get(), &set);
    if (rc != kExitOk) return rc;
  }
  (*g)->Stop();
  return kExitOk;
}

}  // namespace meridian::cli
