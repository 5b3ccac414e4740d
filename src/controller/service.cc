#include "controller/service.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "auth/crypto.h"
#include "controller/validate.h"
#include "rpc/rpc.h"

namespace meridian::controller {

namespace {

using auth::Resource;
using grpc::CallbackServerContext;
using grpc::ServerContext;
using grpc::ServerUnaryReactor;

constexpr const char* kJobs = "/meridian.v1.JobService/";
constexpr const char* kEndpoints = "/meridian.v1.EndpointService/";
constexpr const char* kNodes = "/meridian.v1.NodeService/";
constexpr const char* kAgents = "/meridian.v1.AgentService/";
constexpr const char* kIdentity = "/meridian.v1.IdentityService/";
constexpr const char* kSecrets = "/meridian.v1.SecretService/";

std::string M(const char* service, const char* method) { return absl::StrCat(service, method); }

// The name a node's certificate holds (and its log service is checked against).
std::string NodeDnsName(const std::string& node) { return absl::StrCat(node, ".node.meridian"); }

class JobServiceImpl final
    : public v1::JobService::WithCallbackMethod_Submit<v1::JobService::Service> {
 public:
  JobServiceImpl(Controller* c, const Authorizer* a, IdentityManager* ids, rpc::Security agents)
      : c_(c), a_(a), ids_(ids), agents_(std::move(agents)) {}

  ServerUnaryReactor* Submit(CallbackServerContext* ctx, const v1::SubmitJobRequest* req,
                             v1::SubmitJobResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto call = std::make_shared<Call>(a_, ctx, M(kJobs, "Submit"), req);
    if (!call->ok()) {
      reactor->Finish(call->status());
      return reactor;
    }
    if (req->spec().empty()) {
      reactor->Finish(call->Done(absl::InvalidArgumentError("spec: empty document")));
      return reactor;
    }
    c_->Submit(
        req->spec(), req->filename(),
        [reactor, resp, call](absl::StatusOr<v1::Job> job) {
          if (!job.ok()) {
            reactor->Finish(call->Done(job.status()));
            return;
          }
          call->set_object(job->tenant(), absl::StrCat("job ", job->id()));
          *resp->mutable_job() = *std::move(job);
          reactor->Finish(call->Done(absl::OkStatus()));
        },
        [call, ids = ids_](const spec::JobSpec& spec) -> absl::Status {
          if (absl::Status st = call->Allow(spec.tenant, absl::StrCat("job ", spec.job.name));
              !st.ok())
            return st;
          for (const auto& [var, name] : spec.secret_env)
            if (absl::StatusOr<std::string> v = ids->SecretValue(spec.tenant, name); !v.ok())
              return absl::InvalidArgumentError(absl::StrCat(
                  "env.", var, ": tenant ", spec.tenant, " has no secret '", name,
                  "' (meridian secret create ", name, " --tenant ", spec.tenant,
                  " --from-file FILE)"));
          return absl::OkStatus();
        });
    return reactor;
  }

  grpc::Status Get(ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) override {
    Call call(a_, ctx, M(kJobs, "Get"), req);
    if (!call.ok()) return call.status();
    absl::StatusOr<v1::Job> j = c_->GetJob(req->id());
    if (!j.ok()) return call.Done(j.status());
    if (absl::Status st = call.Allow(j->tenant(), absl::StrCat("job ", req->id())); !st.ok())
      return call.Done(st);
    *resp = *std::move(j);
    return call.Done(absl::OkStatus());
  }

  grpc::Status List(ServerContext* ctx, const v1::ListJobsRequest* req,
                    v1::ListJobsResponse* resp) override {
    Call call(a_, ctx, M(kJobs, "List"), req);
    if (!call.ok()) return call.status();
    std::set<int> states(req->states().begin(), req->states().end());
    bool all = auth::ReadsAllTenants(call.principal(), Resource::kJobs);
    std::vector<v1::Job> jobs = c_->ListJobs(states, all ? req->limit() : 0);
    for (v1::Job& j : jobs) {
      if (!all && !call.CanRead(Resource::kJobs, j.tenant())) continue;
      if (req->limit() > 0 && static_cast<uint32_t>(resp->jobs_size()) >= req->limit()) break;
      *resp->add_jobs() = std::move(j);
    }
    return grpc::Status::OK;
  }

  grpc::Status Cancel(ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) override {
    Call call(a_, ctx, M(kJobs, "Cancel"), req);
    if (!call.ok()) return call.status();
    std::string object = absl::StrCat("job ", req->id());
    call.set_object("", object);
    absl::StatusOr<v1::Job> current = c_->GetJob(req->id());
    if (!current.ok()) return call.Done(current.status());
    if (absl::Status st = call.Allow(current->tenant(), object); !st.ok()) return call.Done(st);
    absl::StatusOr<v1::Job> j = c_->Cancel(req->id());
    if (!j.ok()) return call.Done(j.status());
    *resp = *std::move(j);
    return call.Done(absl::OkStatus());
  }

  grpc::Status Watch(ServerContext* ctx, const v1::WatchJobsRequest* req,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    Call call(a_, ctx, M(kJobs, "Watch"), req);
    if (!call.ok()) return call.status();
    if (req->id() != 0) {
      absl::StatusOr<v1::Job> j = c_->GetJob(req->id());
      if (!j.ok()) return call.Done(j.status());
      if (absl::Status st = call.Allow(j->tenant(), absl::StrCat("job ", req->id())); !st.ok())
        return call.Done(st);
      v1::JobEvent first;
      *first.mutable_job() = *std::move(j);
      if (!writer->Write(first)) return grpc::Status::OK;
    }
    bool all = auth::ReadsAllTenants(call.principal(), Resource::kJobs);
    // Start from now: earlier events are history the caller did not ask for.
    uint64_t cursor = c_->LatestEvent();
    while (!ctx->IsCancelled()) {
      for (const v1::JobEvent& e : c_->WaitEvents(cursor, req->id(), 1.0)) {
        cursor = e.sequence();
        if (!e.has_job()) continue;
        if (!all && !call.CanRead(Resource::kJobs, e.job().tenant())) continue;
        if (!writer->Write(e)) return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Logs(ServerContext* ctx, const v1::LogsRequest* req,
                    grpc::ServerWriter<v1::LogChunk>* writer) override {
    Call call(a_, ctx, M(kJobs, "Logs"), req);
    if (!call.ok()) return call.status();
    std::string stream = req->stream().empty() ? "stdout" : req->stream();
    if (stream != "stdout" && stream != "stderr")
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("stream: expected stdout or stderr, got ",
                                       QuoteInput(stream)));
    absl::StatusOr<v1::Job> job = c_->GetJob(req->id());
    if (!job.ok()) return call.Done(job.status());
    if (absl::Status st = call.Allow(job->tenant(), absl::StrCat("job ", req->id(), " logs"));
        !st.ok())
      return call.Done(st);
    absl::StatusOr<Controller::LogLocation> src = c_->LogSource(req->id(), req->replica());
    if (!src.ok()) return rpc::ToGrpc(src.status());
    auto stub = v1::AgentLogService::NewStub(Channel(src->address, src->node));
    grpc::ClientContext up;
    if (agents_.insecure) {
      absl::StatusOr<std::string> t = ids_->NodeToken(src->node);
      if (!t.ok()) return rpc::ToGrpc(absl::UnavailableError(t.status().message()));
      rpc::Prepare(&up, *t);
    }
    v1::ReadLogRequest rr;
    rr.set_key(src->key);
    rr.set_stream(stream);
    rr.set_follow(req->follow());
    std::unique_ptr<grpc::ClientReader<v1::LogChunk>> reader = stub->ReadLog(&up, rr);
    v1::LogChunk chunk;
    while (reader->Read(&chunk)) {
      if (ctx->IsCancelled()) {
        up.TryCancel();
        break;
      }
      if (chunk.data().empty()) continue;  // keep-alive
      if (!writer->Write(chunk)) {
        up.TryCancel();
        break;
      }
    }
    grpc::Status st = reader->Finish();
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      if (st.error_code() == grpc::StatusCode::UNAVAILABLE)
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("the node's agent at ", src->address,
                                         " is not reachable: ", st.error_message()));
      return st;
    }
    return grpc::Status::OK;
  }

 private:
  // A channel to a node's log service: mutual TLS, the agent's certificate
  // checked against the node's name, so another node at that address fails.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address, const std::string& node) {
    std::lock_guard<std::mutex> l(mu_);
    std::string key = absl::StrCat(node, "@", address);
    auto it = channels_.find(key);
    if (it != channels_.end()) return it->second;
    rpc::Security sec = agents_;
    sec.target_name = NodeDnsName(node);
    auto ch = rpc::Connect(address, sec);
    channels_[key] = ch;
    return ch;
  }

  Controller* c_;
  const Authorizer* a_;
  IdentityManager* ids_;
  rpc::Security agents_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

class NodeServiceImpl final : public v1::NodeService::Service {
 public:
  NodeServiceImpl(Controller* c, const Authorizer* a) : c_(c), a_(a) {}
  grpc::Status List(ServerContext* ctx, const v1::ListNodesRequest* req,
                    v1::ListNodesResponse* resp) override {
    Call call(a_, ctx, M(kNodes, "List"), req);
    if (!call.ok()) return call.status();
    for (v1::Node& n : c_->ListNodes()) *resp->add_nodes() = std::move(n);
    return grpc::Status::OK;
  }
  grpc::Status Cordon(ServerContext* ctx, const v1::CordonRequest* req, v1::Node* resp) override {
    Call call(a_, ctx, M(kNodes, "Cordon"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("node ", req->name().substr(0, 100)));
    absl::StatusOr<v1::Node> n = c_->Cordon(req->name(), !req->uncordon());
    if (!n.ok()) return call.Done(n.status());
    *resp = *std::move(n);
    return call.Done(absl::OkStatus());
  }
  grpc::Status Drain(ServerContext* ctx, const v1::DrainRequest* req,
                     v1::DrainResponse* resp) override {
    Call call(a_, ctx, M(kNodes, "Drain"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("node ", req->name().substr(0, 100)));
    absl::StatusOr<v1::DrainResponse> r = c_->Drain(req->name());
    if (!r.ok()) return call.Done(r.status());
    *resp = *std::move(r);
    return call.Done(absl::OkStatus());
  }

 private:
  Controller* c_;
  const Authorizer* a_;
};

class RegionServiceImpl final : public v1::RegionService::Service {
 public:
  RegionServiceImpl(Controller* c, const Authorizer* a) : c_(c), a_(a) {}
  grpc::Status List(ServerContext* ctx, const v1::ListRegionsRequest* req,
                    v1::ListRegionsResponse* resp) override {
    Call call(a_, ctx, "/meridian.v1.RegionService/List", req);
    if (!call.ok()) return call.status();
    for (v1::Region& r : c_->ListRegions()) *resp->add_regions() = std::move(r);
    return grpc::Status::OK;
  }

 private:
  Controller* c_;
  const Authorizer* a_;
};

class EndpointServiceImpl final : public v1::EndpointService::Service {
 public:
  EndpointServiceImpl(EndpointManager* m, const Authorizer* a, IdentityManager* ids)
      : m_(m), a_(a), ids_(ids) {}
  grpc::Status Apply(ServerContext* ctx, const v1::ApplyEndpointRequest* req,
                     v1::Endpoint* resp) override {
    Call call(a_, ctx, M(kEndpoints, "Apply"), req);
    if (!call.ok()) return call.status();
    if (req->spec().empty()) return call.Done(absl::InvalidArgumentError("spec: empty document"));
    // A literal client token becomes a secret of the endpoint's tenant, and
    // the stored spec names the secret: the token is never in state.db.
    std::string text = req->spec();
    absl::StatusOr<spec::EndpointSpec> parsed =
        spec::ParseEndpointSpec(text, req->filename().empty() ? "spec" : req->filename(), nullptr);
    if (parsed.ok() && !parsed->token.empty()) {
      std::string object = absl::StrCat("endpoint ", parsed->name);
      if (absl::Status st = call.Allow(parsed->tenant, object); !st.ok()) return call.Done(st);
      std::string secret = absl::StrCat("endpoint-", parsed->name, "-token");
      if (secret.size() > 63) secret = absl::StrCat("endpoint-", auth::Sha256Hex(parsed->name).substr(0, 16), "-token");
      absl::StatusOr<std::string> rewritten = spec::ReplaceEndpointToken(text, secret);
      if (!rewritten.ok()) return call.Done(rewritten.status());
      if (absl::StatusOr<v1::Secret> s = ids_->CreateSecret(parsed->tenant, secret, parsed->token);
          !s.ok())
        return call.Done(s.status());
      text = *rewritten;
    }
    absl::StatusOr<v1::Endpoint> e = m_->Apply(
        text, req->filename(),
        [&call](const spec::EndpointSpec& s, const std::string& current) -> absl::Status {
          std::string object = absl::StrCat("endpoint ", s.name);
          if (!current.empty() && current != s.tenant)
            if (absl::Status st = call.Allow(current, object); !st.ok()) return st;
          return call.Allow(s.tenant, object);
        });
    return Answer(call, std::move(e), resp);
  }
  grpc::Status Get(ServerContext* ctx, const v1::GetEndpointRequest* req,
                   v1::Endpoint* resp) override {
    Call call(a_, ctx, M(kEndpoints, "Get"), req);
    if (!call.ok()) return call.status();
    absl::StatusOr<v1::Endpoint> e = m_->Get(req->name());
    if (e.ok()) {
      if (absl::Status st = call.Allow(e->tenant(), absl::StrCat("endpoint ", e->name()));
          !st.ok())
        return call.Done(st);
    }
    return Answer(call, std::move(e), resp);
  }
  grpc::Status List(ServerContext* ctx, const v1::ListEndpointsRequest* req,
                    v1::ListEndpointsResponse* resp) override {
    Call call(a_, ctx, M(kEndpoints, "List"), req);
    if (!call.ok()) return call.status();
    bool tokens = call.CanRead(Resource::kEndpointTokens, "");
    for (v1::Endpoint& e : m_->List()) {
      if (!call.CanRead(Resource::kEndpoints, e.tenant())) continue;
      if (!tokens) e.clear_token();
      *resp->add_endpoints() = std::move(e);
    }
    return grpc::Status::OK;
  }
  grpc::Status Delete(ServerContext* ctx, const v1::DeleteEndpointRequest* req,
                      v1::Endpoint* resp) override {
    Call call(a_, ctx, M(kEndpoints, "Delete"), req);
    if (!call.ok()) return call.status();
    std::string object = absl::StrCat("endpoint ", req->name().substr(0, 100));
    call.set_object("", object);
    absl::StatusOr<v1::Endpoint> current = m_->Get(req->name());
    if (!current.ok()) return call.Done(current.status());
    if (absl::Status st = call.Allow(current->tenant(), object); !st.ok()) return call.Done(st);
    return Answer(call, m_->Delete(req->name()), resp);
  }
  grpc::Status ReportLoad(ServerContext* ctx, const v1::ReportLoadRequest* req,
                          v1::ReportLoadResponse*) override {
    Call call(a_, ctx, M(kEndpoints, "ReportLoad"), req);
    if (!call.ok()) return call.status();
    return call.Done(m_->ReportLoad(*req));  // refuses non-finite or absurd loads
  }

 private:
  grpc::Status Answer(Call& call, absl::StatusOr<v1::Endpoint> e, v1::Endpoint* resp) {
    if (!e.ok()) return call.Done(e.status());
    call.set_object(e->tenant(), absl::StrCat("endpoint ", e->name()));
    if (!call.CanRead(Resource::kEndpointTokens, "")) e->clear_token();
    *resp = *std::move(e);
    return call.Done(absl::OkStatus());
  }
  EndpointManager* m_;
  const Authorizer* a_;
  IdentityManager* ids_;
};

// One agent's heartbeat stream: read a beat, answer it, read the next.
// Every beat must name the node whose credential opened the stream.
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::HeartbeatRequest, v1::HeartbeatResponse> {
 public:
  ConnectReactor(Controller* c, std::unique_ptr<Call> call) : c_(c), call_(std::move(call)) {
    if (!call_->ok()) {
      Finish(call_->status());
      return;
    }
    StartRead(&req_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (req_.node() != call_->principal().name) {
      Finish(call_->Done(absl::PermissionDeniedError(
          absl::StrCat(call_->principal().Describe(), " may not beat for node ",
                       req_.node().substr(0, 100)))));
      return;
    }
    absl::StatusOr<v1::HeartbeatResponse> r = c_->Heartbeat(req_);
    if (!r.ok()) {
      Finish(rpc::ToGrpc(r.status()));
      return;
    }
    // Answer only when the node's desired runs or acknowledgements changed,
    // and at least every kKeepAliveS: most beats then cost one read.
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream out(&bytes);
      google::protobuf::io::CodedOutputStream coded(&out);
      coded.SetSerializationDeterministic(true);
      r->SerializeToCodedStream(&coded);
    }
    auto now = std::chrono::steady_clock::now();
    if (bytes == last_ && now - last_sent_ < std::chrono::seconds(kKeepAliveS)) {
      StartRead(&req_);
      return;
    }
    last_ = std::move(bytes);
    last_sent_ = now;
    resp_ = *std::move(r);
    StartWrite(&resp_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&req_);
  }
  void OnDone() override { delete this; }

 private:
  static constexpr int kKeepAliveS = 10;
  Controller* c_;
  std::unique_ptr<Call> call_;
  v1::HeartbeatRequest req_;
  v1::HeartbeatResponse resp_;
  std::string last_;  // deterministic bytes of the last answer sent
  std::chrono::steady_clock::time_point last_sent_;
};

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(Controller* c, const Authorizer* a, IdentityManager* ids, bool insecure,
                   auth::KeyPair ca)
      : c_(c), a_(a), ids_(ids), insecure_(insecure), ca_(std::move(ca)) {}
  grpc::ServerBidiReactor<v1::HeartbeatRequest, v1::HeartbeatResponse>* Connect(
      CallbackServerContext* ctx) override {
    return new ConnectReactor(c_, std::make_unique<Call>(a_, ctx, M(kAgents, "Connect")));
  }
  ServerUnaryReactor* Join(CallbackServerContext* ctx, const v1::JoinRequest* req,
                           v1::JoinResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Call call(a_, ctx, M(kAgents, "Join"), req);
    call.set_object("", absl::StrCat("node ", req->node().substr(0, 100)));
    reactor->Finish(call.Done(DoJoin(*req, resp)));
    return reactor;
  }
  ServerUnaryReactor* Register(CallbackServerContext* ctx, const v1::RegisterRequest* req,
                               v1::RegisterResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Call call(a_, ctx, M(kAgents, "Register"), req);
    call.set_object("", absl::StrCat("node ", req->node().name().substr(0, 100)));
    if (!call.ok()) {
      reactor->Finish(call.status());
      return reactor;
    }
    if (req->node().name() != call.principal().name) {
      reactor->Finish(call.Done(absl::PermissionDeniedError(
          absl::StrCat(call.principal().Describe(), " may not register node ",
                       req->node().name().substr(0, 100)))));
      return reactor;
    }
    absl::StatusOr<v1::RegisterResponse> r = c_->Register(req->node());
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(call.Done(r.status()));
    return reactor;
  }
  ServerUnaryReactor* Heartbeat(CallbackServerContext* ctx, const v1::HeartbeatRequest* req,
                                v1::HeartbeatResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Call call(a_, ctx, M(kAgents, "Heartbeat"));
    if (!call.ok()) {
      reactor->Finish(call.status());
      return reactor;
    }
    if (req->node() != call.principal().name) {
      call.set_object("", absl::StrCat("node ", req->node().substr(0, 100)));
      reactor->Finish(call.Done(absl::PermissionDeniedError(absl::StrCat(
          call.principal().Describe(), " may not beat for node ", req->node().substr(0, 100)))));
      return reactor;
    }
    absl::StatusOr<v1::HeartbeatResponse> r = c_->Heartbeat(*req);
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(rpc::ToGrpc(r.status()));
    return reactor;
  }

 private:
  absl::Status DoJoin(const v1::JoinRequest& req, v1::JoinResponse* resp) {
    if (!auth::ValidName(req.node()))
      return absl::InvalidArgumentError("node: expected a name matching [a-z0-9][a-z0-9._-]{0,62}");
    if (!insecure_ && req.csr().empty())
      return absl::InvalidArgumentError("csr: this cluster uses TLS; send a certificate request");
    if (absl::Status st = ids_->ConsumeJoinToken(req.node(), req.join_token()); !st.ok())
      return st;
    if (insecure_) {
      absl::StatusOr<std::string> t = ids_->IssueNodeToken(req.node());
      if (!t.ok()) return t.status();
      resp->set_node_token(*t);
      return absl::OkStatus();
    }
    auth::CertRequest cr;
    cr.common_name = absl::StrCat("node:", req.node());
    cr.dns = {NodeDnsName(req.node())};
    cr.ips = {"127.0.0.1", "::1"};
    absl::StatusOr<std::string> cert = auth::SignCsr(ca_, req.csr(), cr);
    if (!cert.ok()) return cert.status();
    resp->set_certificate(*cert);
    resp->set_ca(ca_.cert_pem);
    return absl::OkStatus();
  }

  Controller* c_;
  const Authorizer* a_;
  IdentityManager* ids_;
  bool insecure_;
  auth::KeyPair ca_;
};

class IdentityServiceImpl final : public v1::IdentityService::Service {
 public:
  IdentityServiceImpl(const Authorizer* a, IdentityManager* ids) : a_(a), ids_(ids) {}
  grpc::Status CreateUser(ServerContext* ctx, const v1::CreateUserRequest* req,
                          v1::User* resp) override {
    Call call(a_, ctx, M(kIdentity, "CreateUser"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("user ", req->name().substr(0, 100)));
    std::vector<std::string> roles(req->roles().begin(), req->roles().end());
    absl::StatusOr<v1::User> u = ids_->CreateUser(req->name(), roles, req->service_account());
    if (u.ok()) *resp = *u;
    return call.Done(u.status());
  }
  grpc::Status ListUsers(ServerContext* ctx, const v1::ListUsersRequest* req,
                         v1::ListUsersResponse* resp) override {
    Call call(a_, ctx, M(kIdentity, "ListUsers"), req);
    if (!call.ok()) return call.status();
    for (v1::User& u : ids_->ListUsers()) *resp->add_users() = std::move(u);
    return grpc::Status::OK;
  }
  grpc::Status CreateToken(ServerContext* ctx, const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override {
    Call call(a_, ctx, M(kIdentity, "CreateToken"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("token for user ", req->user().substr(0, 100)));
    absl::StatusOr<v1::CreateTokenResponse> t =
        ids_->CreateToken(req->user(), req->ttl_s(), req->description());
    if (t.ok()) {
      call.set_object("", absl::StrCat("token ", t->token().id(), " for user ", req->user()));
      *resp = *t;
    }
    return call.Done(t.status());
  }
  grpc::Status ListTokens(ServerContext* ctx, const v1::ListTokensRequest* req,
                          v1::ListTokensResponse* resp) override {
    Call call(a_, ctx, M(kIdentity, "ListTokens"), req);
    if (!call.ok()) return call.status();
    for (v1::Token& t : ids_->ListTokens(req->user())) *resp->add_tokens() = std::move(t);
    return grpc::Status::OK;
  }
  grpc::Status RevokeToken(ServerContext* ctx, const v1::RevokeTokenRequest* req,
                           v1::Token* resp) override {
    Call call(a_, ctx, M(kIdentity, "RevokeToken"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("token ", req->id().substr(0, 100)));
    absl::StatusOr<v1::Token> t = ids_->RevokeToken(req->id());
    if (t.ok()) *resp = *t;
    return call.Done(t.status());
  }
  grpc::Status CreateJoinToken(ServerContext* ctx, const v1::CreateJoinTokenRequest* req,
                               v1::CreateJoinTokenResponse* resp) override {
    Call call(a_, ctx, M(kIdentity, "CreateJoinToken"), req);
    if (!call.ok()) return call.status();
    call.set_object("", absl::StrCat("join token for node ", req->node().substr(0, 100)));
    absl::StatusOr<v1::CreateJoinTokenResponse> t = ids_->CreateJoinToken(req->node(), req->ttl_s());
    if (t.ok()) *resp = *t;
    return call.Done(t.status());
  }
  grpc::Status WhoAmI(ServerContext* ctx, const v1::WhoAmIRequest* req,
                      v1::WhoAmIResponse* resp) override {
    Call call(a_, ctx, M(kIdentity, "WhoAmI"), req);
    if (!call.ok()) return call.status();
    resp->set_identity(call.principal().Describe());
    for (const auth::RoleBinding& b : call.principal().roles)
      resp->add_roles(auth::FormatRoleBinding(b));
    return grpc::Status::OK;
  }

 private:
  const Authorizer* a_;
  IdentityManager* ids_;
};

class SecretServiceImpl final : public v1::SecretService::Service {
 public:
  SecretServiceImpl(const Authorizer* a, IdentityManager* ids) : a_(a), ids_(ids) {}
  grpc::Status Create(ServerContext* ctx, const v1::CreateSecretRequest* req,
                      v1::Secret* resp) override {
    Call call(a_, ctx, M(kSecrets, "Create"), req);
    if (!call.ok()) return call.status();
    std::string object = absl::StrCat("secret ", req->name().substr(0, 100));
    if (absl::Status st = call.Allow(req->tenant().substr(0, 100), object); !st.ok())
      return call.Done(st);
    absl::StatusOr<v1::Secret> s = ids_->CreateSecret(req->tenant(), req->name(), req->value());
    if (s.ok()) *resp = *s;
    return call.Done(s.status());
  }
  grpc::Status List(ServerContext* ctx, const v1::ListSecretsRequest* req,
                    v1::ListSecretsResponse* resp) override {
    Call call(a_, ctx, M(kSecrets, "List"), req);
    if (!call.ok()) return call.status();
    if (!req->tenant().empty())
      if (absl::Status st = call.Allow(req->tenant().substr(0, 100), "secrets"); !st.ok())
        return call.Done(st);
    for (v1::Secret& s : ids_->ListSecrets(req->tenant()))
      if (call.CanRead(Resource::kSecrets, s.tenant())) *resp->add_secrets() = std::move(s);
    return grpc::Status::OK;
  }
  grpc::Status Delete(ServerContext* ctx, const v1::DeleteSecretRequest* req,
                      v1::Secret* resp) override {
    Call call(a_, ctx, M(kSecrets, "Delete"), req);
    if (!call.ok()) return call.status();
    std::string object = absl::StrCat("secret ", req->name().substr(0, 100));
    if (absl::Status st = call.Allow(req->tenant().substr(0, 100), object); !st.ok())
      return call.Done(st);
    absl::StatusOr<v1::Secret> s = ids_->DeleteSecret(req->tenant(), req->name());
    if (s.ok()) *resp = *s;
    return call.Done(s.status());
  }

 private:
  const Authorizer* a_;
  IdentityManager* ids_;
};

class AuditServiceImpl final : public v1::AuditService::Service {
 public:
  AuditServiceImpl(const Authorizer* a, IdentityManager* ids) : a_(a), ids_(ids) {}
  grpc::Status List(ServerContext* ctx, const v1::ListAuditRequest* req,
                    v1::ListAuditResponse* resp) override {
    Call call(a_, ctx, "/meridian.v1.AuditService/List", req);
    if (!call.ok()) return call.status();
    if (!(req->since() >= 0))
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "since: expected seconds >= 0");
    for (v1::AuditEvent& e : ids_->ListAudit(req->identity(), req->since(), req->limit()))
      *resp->add_events() = std::move(e);
    return grpc::Status::OK;
  }

 private:
  const Authorizer* a_;
  IdentityManager* ids_;
};

}  // namespace

struct ControllerServer::Impl {
  std::unique_ptr<Authorizer> authz;
  std::unique_ptr<JobServiceImpl> jobs;
  std::unique_ptr<NodeServiceImpl> nodes;
  std::unique_ptr<RegionServiceImpl> regions;
  std::unique_ptr<AgentServiceImpl> agents;
  std::unique_ptr<EndpointServiceImpl> endpoints;
  std::unique_ptr<IdentityServiceImpl> identity;
  std::unique_ptr<SecretServiceImpl> secrets;
  std::unique_ptr<AuditServiceImpl> audit;
  std::unique_ptr<grpc::Server> server;
};

absl::StatusOr<std::unique_ptr<ControllerServer>> ControllerServer::Start(
    Controller* c, ServerOptions options, IdentityManager* ids, EndpointManager* endpoints) {
  if (ids == nullptr) return absl::InvalidArgumentError("an identity registry is required");
  if (!options.security.insecure &&
      (options.security.cert_pem.empty() || options.ca.cert_pem.empty() || options.ca.key_pem.empty()))
    return absl::InvalidArgumentError(
        "TLS needs the controller's certificate and the cluster CA (or insecure mode)");
  std::unique_ptr<ControllerServer> s(new ControllerServer());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.authz = std::make_unique<Authorizer>(ids);
  // How the controller dials agents' log services: its own certificate as
  // the client's (mutual TLS), or the node's token on an insecure cluster.
  rpc::Security to_agents = options.security;
  to_agents.require_client_cert = false;
  m.jobs = std::make_unique<JobServiceImpl>(c, m.authz.get(), ids, to_agents);
  m.nodes = std::make_unique<NodeServiceImpl>(c, m.authz.get());
  m.regions = std::make_unique<RegionServiceImpl>(c, m.authz.get());
  m.agents = std::make_unique<AgentServiceImpl>(c, m.authz.get(), ids, options.security.insecure,
                                                options.ca);
  m.identity = std::make_unique<IdentityServiceImpl>(m.authz.get(), ids);
  m.secrets = std::make_unique<SecretServiceImpl>(m.authz.get(), ids);
  m.audit = std::make_unique<AuditServiceImpl>(m.authz.get(), ids);
  grpc::ServerBuilder b;
  b.AddListeningPort(options.listen,
                     rpc::ServerCredentials(options.security, m.authz->MakeProcessor()),
                     &s->port_);
  b.SetMaxReceiveMessageSize(rpc::kMaxRequestBytes);
  // The hot paths (Submit, agent streams) use the callback API; keep the
  // pollers of the synchronous methods few so they do not wake on every event.
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  b.RegisterService(m.jobs.get());
  b.RegisterService(m.nodes.get());
  b.RegisterService(m.regions.get());
  b.RegisterService(m.agents.get());
  b.RegisterService(m.identity.get());
  b.RegisterService(m.secrets.get());
  b.RegisterService(m.audit.get());
  if (endpoints != nullptr) {
    m.endpoints = std::make_unique<EndpointServiceImpl>(endpoints, m.authz.get(), ids);
    b.RegisterService(m.endpoints.get());
  }
  m.server = b.BuildAndStart();
  if (!m.server || s->port_ == 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  return s;
}

ControllerServer::~ControllerServer() { Shutdown(); }

void ControllerServer::Shutdown() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
}

void ControllerServer::Wait() {
  if (impl_ && impl_->server) impl_->server->Wait();
}

}  // namespace meridian::controller
