// `meridian bench submit` and `meridian bench agents`: the control plane
// measured through a real controller process over gRPC on 127.0.0.1.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/cluster.h"
#include "cli/commands.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rpc/rpc.h"
#include "auth/crypto.h"

namespace meridian::cli {

namespace fs = std::filesystem;

namespace {

// CPU seconds (user + system) used so far by process `pid`.
double ProcessCpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(content.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

// A controller process in a fresh temporary data dir.
struct BenchCluster {
  std::string dir;
  Child controller;
  std::string address;
  std::string token;
  rpc::Security security;  // TLS with the cluster CA, or insecure

  absl::Status Start(std::vector<std::string> extra, bool insecure) {
    char tmpl[] = "/tmp/meridian-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
    dir = tmpl;
    std::vector<std::string> args = {"controller", "--data-dir", dir};
    if (insecure) extra.push_back("--insecure");
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<Child> c = SpawnSelf("controller", args, dir + "/controller.log");
    if (!c.ok()) return c.status();
    controller = *c;
    absl::StatusOr<std::string> a = WaitForFile(dir + "/controller.addr", 30, &controller);
    if (!a.ok()) return a.status();
    address = *a;
    absl::StatusOr<std::string> t = rpc::ReadTokenFile(dir + "/token");
    if (!t.ok()) return t.status();
    token = *t;
    security.insecure = insecure;
    if (!insecure) {
      absl::StatusOr<std::string> ca = rpc::ReadFile(dir + "/tls/ca.crt");
      if (!ca.ok()) return ca.status();
      security.ca_pem = *ca;
    }
    return absl::OkStatus();
  }
  ~BenchCluster() {
    StopChild(controller, 5);
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

// Keeps `limit` async calls in flight; `issue(i, done)` starts call i and
// calls done(ok, seconds) when it ends.
class Pump {
 public:
  explicit Pump(int limit) : limit_(limit) {}
  template <typename Issue>
  void Run(int64_t total, Issue issue) {
    std::unique_lock<std::mutex> l(mu_);
    for (int64_t i = 0; i < total; ++i) {
      cv_.wait(l, [&] { return in_flight_ < limit_; });
      ++in_flight_;
      l.unlock();
      double t0 = SteadySeconds();
      issue(i, [this, t0](bool ok) { Done(ok, SteadySeconds() - t0); });
      l.lock();
    }
    cv_.wait(l, [&] { return in_flight_ == 0; });
  }
  int64_t ok() const { return ok_; }
  int64_t errors() const { return errors_; }
  std::vector<double> latencies() const { return lat_; }
  std::string first_error;
  std::mutex mu_;

 private:
  void Done(bool ok, double s) {
    std::lock_guard<std::mutex> l(mu_);
    --in_flight_;
    if (ok) {
      ++ok_;
      lat_.push_back(s);
    } else {
      ++errors_;
    }
    cv_.notify_all();
  }
  int limit_;
  int in_flight_ = 0;
  int64_t ok_ = 0, errors_ = 0;
  std::vector<double> lat_;
  std::condition_variable cv_;
};

}  // namespace

int RunBenchSubmit(const BenchSubmitArgs& a) {
  BenchCluster cluster;
  if (absl::Status st = cluster.Start({}, a.insecure); !st.ok()) {
    std::fprintf(stderr, "meridian bench submit: %s\n", std::string(st.message()).c_str());
    return kExitError;
  }
  auto channel = rpc::Connect(cluster.address, cluster.security);
  auto stub = v1::JobService::NewStub(channel);
  struct Call {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    v1::SubmitJobResponse resp;
  };
  Pump pump(a.concurrency);
  if (!a.json)
    std::fprintf(stderr, "bench submit: %lld jobs, %d in flight, controller %s\n",
                 static_cast<long long>(a.jobs), a.concurrency, cluster.address.c_str());
  double t0 = SteadySeconds();
  double cpu0 = ProcessCpuSeconds(cluster.controller.pid);
  pump.Run(a.jobs, [&](int64_t i, auto done) {
    auto* c = new Call();
    rpc::Prepare(&c->ctx, cluster.token, 30);
    c->req.set_spec(absl::StrCat("kind: job\nname: bench-", i,
                                 "\nshape: {cpu: 1, memory: 1Gi}\ncommand: [\"true\"]\n"));
    stub->async()->Submit(&c->ctx, &c->req, &c->resp, [c, done, &pump](grpc::Status st) {
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(pump.mu_);
        if (pump.first_error.empty()) pump.first_error = st.error_message();
      }
      done(st.ok());
      delete c;
    });
  });
  double elapsed = SteadySeconds() - t0;
  double cpu = ProcessCpuSeconds(cluster.controller.pid) - cpu0;
  // Every answered submit must be listed.
  grpc::ClientContext lctx;
  rpc::Prepare(&lctx, cluster.token, 60);
  v1::ListJobsResponse listed;
  grpc::Status lst = stub->List(&lctx, v1::ListJobsRequest(), &listed);
  std::vector<double> lat = pump.latencies();
  nlohmann::json out = {
      {"benchmark", "submit"},
      {"jobs", a.jobs},
      {"concurrency", a.concurrency},
      {"answered", pump.ok()},
      {"errors", pump.errors()},
      {"seconds", elapsed},
      {"submissions_per_sec", static_cast<double>(pump.ok()) / elapsed},
      {"latency_p50_ms", Percentile(lat, 0.5) * 1e3},
      {"latency_p99_ms", Percentile(lat, 0.99) * 1e3},
      {"controller_cpu_seconds", cpu},
      {"listed_after", lst.ok() ? listed.jobs_size() : -1},
      {"durability", "SQLite WAL, synchronous=FULL, group commit; answered after commit"},
      {"transport", a.insecure ? "insecure (local credentials)" : "TLS"},
      {"authorization", "bearer token (salted SHA-256) + per-method table + tenant check, audited"},
  };
  if (!pump.first_error.empty()) out["first_error"] = pump.first_error;
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s\n", out.dump(2).c_str());
  }
  return pump.errors() == 0 ? kExitOk : kExitError;
}

int RunBenchAgents(const BenchAgentsArgs& a) {
  BenchCluster cluster;
  // A long timeout: the benchmark measures heartbeat cost, not failure handling.
  if (absl::Status st = cluster.Start({"--heartbeat-timeout", "3600"}, a.insecure); !st.ok()) {
    std::fprintf(stderr, "meridian bench agents: %s\n", std::string(st.message()).c_str());
    return kExitError;
  }
  // Every simulated agent joins as a real one does: a one-time join token
  // (from the admin), then its own credential: a certificate for its own key
  // and a channel of its own (TLS), or a node token (--insecure).
  if (!a.json)
    std::fprintf(stderr, "bench agents: %d agents join %s (%s)\n", a.agents,
                 cluster.address.c_str(), a.insecure ? "insecure" : "TLS, a certificate each");
  auto admin = v1::IdentityService::NewStub(rpc::Connect(cluster.address, cluster.security));
  auto joiner = v1::AgentService::NewStub(rpc::Connect(cluster.address, cluster.security));
  std::vector<std::string> node_tokens(size_t(a.agents));
  std::vector<rpc::Security> creds(size_t(a.agents), cluster.security);
  {
    struct JoinCall {
      grpc::ClientContext ctx, ctx2;
      v1::CreateJoinTokenRequest req;
      v1::CreateJoinTokenResponse resp;
      v1::JoinRequest join;
      v1::JoinResponse joined;
      std::string key;
    };
    Pump joins(128);
    joins.Run(a.agents, [&](int64_t i, auto done) {
      auto* c = new JoinCall();
      rpc::Prepare(&c->ctx, cluster.token, 60);
      c->req.set_node(absl::StrCat("bench-", i));
      c->join.set_node(c->req.node());
      if (!a.insecure) {
        absl::StatusOr<auth::KeyPair> csr = auth::CreateCsr(absl::StrCat("node:", c->req.node()));
        if (!csr.ok()) {
          done(false);
          delete c;
          return;
        }
        c->join.set_csr(csr->cert_pem);
        c->key = csr->key_pem;
      }
      admin->async()->CreateJoinToken(
          &c->ctx, &c->req, &c->resp, [&, c, i, done](grpc::Status st) {
            if (!st.ok()) {
              done(false);
              delete c;
              return;
            }
            c->join.set_join_token(c->resp.token());
            c->ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
            joiner->async()->Join(&c->ctx2, &c->join, &c->joined,
                                  [&, c, i, done](grpc::Status st2) {
                                    if (st2.ok()) {
                                      node_tokens[size_t(i)] = c->joined.node_token();
                                      creds[size_t(i)].cert_pem = c->joined.certificate();
                                      creds[size_t(i)].key_pem = c->key;
                                    }
                                    done(st2.ok());
                                    delete c;
                                  });
          });
    });
    if (joins.errors() > 0) {
      std::fprintf(stderr, "meridian bench agents: %lld joins failed\n",
                   static_cast<long long>(joins.errors()));
      return kExitError;
    }
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  // TLS: a channel per agent (its certificate); insecure: shared channels.
  int nchannels = a.insecure ? std::min(a.insecure_connections, a.agents) : a.agents;
  for (int i = 0; i < nchannels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("bench.channel", i);  // distinct channels: separate connections
    if (a.insecure) {
      channels.push_back(grpc::CreateCustomChannel(
          cluster.address, grpc::experimental::LocalCredentials(LOCAL_TCP), args));
    } else {
      grpc::SslCredentialsOptions o;
      o.pem_root_certs = creds[size_t(i)].ca_pem;
      o.pem_cert_chain = creds[size_t(i)].cert_pem;
      o.pem_private_key = creds[size_t(i)].key_pem;
      channels.push_back(
          grpc::CreateCustomChannel(cluster.address, grpc::SslCredentials(o), args));
    }
    stubs.push_back(v1::AgentService::NewStub(channels.back()));
  }
  if (!a.json)
    std::fprintf(stderr, "bench agents: registering %d agents with %s\n", a.agents,
                 cluster.address.c_str());
  struct RegCall {
    grpc::ClientContext ctx;
    v1::RegisterRequest req;
    v1::RegisterResponse resp;
  };
  Pump reg(256);
  reg.Run(a.agents, [&](int64_t i, auto done) {
    auto* c = new RegCall();
    rpc::Prepare(&c->ctx, node_tokens[size_t(i)], 60);
    v1::Node* n = c->req.mutable_node();
    n->set_name(absl::StrCat("bench-", i));
    n->set_region(absl::StrCat("region-", i % 4));
    n->set_zone(absl::StrCat("zone-", i % 8));
    n->set_cpu_milli(8000);
    n->set_memory_mib(32768);
    n->set_address("127.0.0.1:1");
    stubs[size_t(i) % stubs.size()]->async()->Register(&c->ctx, &c->req, &c->resp,
                                                       [c, done](grpc::Status st) {
                                                         done(st.ok());
                                                         delete c;
                                                       });
  });
  if (reg.errors() > 0) {
    std::fprintf(stderr, "meridian bench agents: %lld registrations failed\n",
                 static_cast<long long>(reg.errors()));
    return kExitError;
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the fleet rebuild settle
  // One heartbeat stream per simulated agent (what real agents use); a pacing
  // thread starts each beat; a beat whose previous answer has not arrived is
  // counted as skipped.
  class AgentStream final
      : public grpc::ClientBidiReactor<v1::HeartbeatRequest, v1::HeartbeatResponse> {
   public:
    AgentStream(v1::AgentService::Stub* stub, const std::string& token, std::string node) {
      rpc::Prepare(&ctx_, token);
      req_.set_node(std::move(node));
      stub->async()->Connect(&ctx_, this);
      StartRead(&resp_);  // answers come only when something changed
      StartCall();
    }
    // False when the previous beat is still in flight.
    bool Beat() {
      bool expected = false;
      if (!busy_.compare_exchange_strong(expected, true)) return false;
      sent_at_ = SteadySeconds();
      StartWrite(&req_);
      return true;
    }
    void OnWriteDone(bool ok) override {
      if (ok) {
        ++ok_count;
        std::lock_guard<std::mutex> l(mu);
        latencies.push_back(SteadySeconds() - sent_at_);
      } else {
        ++errors;
      }
      busy_ = false;
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // stream ended
      if (resp_.reregister()) ++errors;
      ++answers;
      StartRead(&resp_);
    }
    void OnDone(const grpc::Status&) override {
      std::lock_guard<std::mutex> l(done_mu_);
      done_ = true;
      done_cv_.notify_all();
    }
    void Close() {
      StartWritesDone();
      ctx_.TryCancel();
      std::unique_lock<std::mutex> l(done_mu_);
      done_cv_.wait(l, [&] { return done_; });
    }
    std::atomic<int64_t> ok_count{0}, errors{0}, answers{0};
    std::mutex mu;
    std::vector<double> latencies;

   private:
    grpc::ClientContext ctx_;
    v1::HeartbeatRequest req_;
    v1::HeartbeatResponse resp_;
    std::atomic<bool> busy_{false};
    double sent_at_ = 0;
    std::mutex done_mu_;
    std::condition_variable done_cv_;
    bool done_ = false;
  };
  std::vector<std::unique_ptr<AgentStream>> streams;
  for (int i = 0; i < a.agents; ++i)
    streams.push_back(std::make_unique<AgentStream>(stubs[size_t(i) % stubs.size()].get(),
                                                    node_tokens[size_t(i)],
                                                    absl::StrCat("bench-", i)));
  std::this_thread::sleep_for(std::chrono::seconds(1));  // streams established
  const double rate = a.agents * a.hz;
  const int64_t total = static_cast<int64_t>(rate * a.seconds);
  int64_t skipped = 0;
  double cpu0 = ProcessCpuSeconds(cluster.controller.pid);
  double self0 = ProcessCpuSeconds(static_cast<int>(::getpid()));
  double t0 = SteadySeconds();
  if (!a.json)
    std::fprintf(stderr, "bench agents: measuring %.0f s (controller pid %d)\n", a.seconds,
                 cluster.controller.pid);
  for (int64_t i = 0; i < total; ++i) {
    double wait = t0 + static_cast<double>(i) / rate - SteadySeconds();  // evenly paced
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    if (!streams[size_t(i % a.agents)]->Beat()) ++skipped;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // last answers
  double elapsed = SteadySeconds() - t0;
  double cpu = ProcessCpuSeconds(cluster.controller.pid) - cpu0;
  double self = ProcessCpuSeconds(static_cast<int>(::getpid())) - self0;
  int64_t ok = 0, errors = 0, answers = 0;
  std::vector<double> lat;
  for (auto& st : streams) {
    answers += st->answers;
    ok += st->ok_count;
    errors += st->errors;
    lat.insert(lat.end(), st->latencies.begin(), st->latencies.end());
  }
  for (auto& st : streams) st->Close();
  nlohmann::json out = {
      {"benchmark", "agents"},
      {"agents", a.agents},
      {"hz", a.hz},
      {"seconds", elapsed},
      {"transport", a.insecure ? absl::StrCat("one AgentService.Connect stream per agent; insecure, "
                                              "node tokens, ", nchannels, " connections")
                               : std::string("one AgentService.Connect stream per agent; mutual "
                                             "TLS, a certificate and a connection per agent")},
      {"connections", nchannels},
      {"heartbeats_ok", ok},
      {"heartbeat_errors", errors},
      {"heartbeats_skipped", skipped},
      {"heartbeats_per_sec", static_cast<double>(ok) / elapsed},
      {"controller_cpu_share", cpu / elapsed},
      {"load_generator_cpu_share", self / elapsed},
      {"answers", answers},
      {"send_p50_ms", Percentile(lat, 0.5) * 1e3},
      {"send_p99_ms", Percentile(lat, 0.99) * 1e3},
  };
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s\n", out.dump(2).c_str());
  }
  return errors == 0 ? kExitOk : kExitError;
}

}  // namespace meridian::cli
