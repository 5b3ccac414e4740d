#include "controller/service.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "controller/validate.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::controller {

namespace {

using grpc::CallbackServerContext;
using grpc::ServerContext;
using grpc::ServerUnaryReactor;

class JobServiceImpl final
    : public v1::JobService::WithCallbackMethod_Submit<v1::JobService::Service> {
 public:
  JobServiceImpl(Controller* c, std::string token) : c_(c), token_(std::move(token)) {}

  ServerUnaryReactor* Submit(CallbackServerContext* ctx, const v1::SubmitJobRequest* req,
                             v1::SubmitJobResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (auto st = ValidateRequest(*req); !st.ok()) {
      reactor->Finish(rpc::ToGrpc(st));
      return reactor;
    }
    if (req->spec().empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "spec: empty document"));
      return reactor;
    }
    c_->Submit(req->spec(), req->filename(), [reactor, resp](absl::StatusOr<v1::Job> job) {
      if (!job.ok()) {
        reactor->Finish(rpc::ToGrpc(job.status()));
        return;
      }
      *resp->mutable_job() = *std::move(job);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::Status Get(ServerContext*, const v1::GetJobRequest* req, v1::Job* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    absl::StatusOr<v1::Job> j = c_->GetJob(req->id());
    if (!j.ok()) return rpc::ToGrpc(j.status());
    *resp = *std::move(j);
    return grpc::Status::OK;
  }

  grpc::Status List(ServerContext*, const v1::ListJobsRequest* req,
                    v1::ListJobsResponse* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    std::set<int> states(req->states().begin(), req->states().end());
    for (v1::Job& j : c_->ListJobs(states, req->limit())) *resp->add_jobs() = std::move(j);
    return grpc::Status::OK;
  }

  grpc::Status Cancel(ServerContext*, const v1::CancelJobRequest* req, v1::Job* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    absl::StatusOr<v1::Job> j = c_->Cancel(req->id());
    if (!j.ok()) return rpc::ToGrpc(j.status());
    *resp = *std::move(j);
    return grpc::Status::OK;
  }

  grpc::Status Watch(ServerContext* ctx, const v1::WatchJobsRequest* req,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    if (req->id() != 0) {
      absl::StatusOr<v1::Job> j = c_->GetJob(req->id());
      if (!j.ok()) return rpc::ToGrpc(j.status());
      v1::JobEvent first;
      *first.mutable_job() = *std::move(j);
      if (!writer->Write(first)) return grpc::Status::OK;
    }
    // Start from now: earlier events are history the caller did not ask for.
    uint64_t cursor = c_->LatestEvent();
    while (!ctx->IsCancelled()) {
      for (const v1::JobEvent& e : c_->WaitEvents(cursor, req->id(), 1.0)) {
        cursor = e.sequence();
        if (!e.has_job()) continue;
        if (!writer->Write(e)) return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Logs(ServerContext* ctx, const v1::LogsRequest* req,
                    grpc::ServerWriter<v1::LogChunk>* writer) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    std::string stream = req->stream().empty() ? "stdout" : req->stream();
    if (stream != "stdout" && stream != "stderr")
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("stream: expected stdout or stderr, got ", QuoteInput(stream)));
    absl::StatusOr<std::pair<std::string, std::string>> src =
        c_->LogSource(req->id(), req->replica());
    if (!src.ok()) return rpc::ToGrpc(src.status());
    auto stub = v1::AgentLogService::NewStub(Channel(src->first));
    grpc::ClientContext up;
    rpc::Prepare(&up, token_);
    v1::ReadLogRequest rr;
    rr.set_key(src->second);
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
                            absl::StrCat("the node's agent at ", src->first,
                                         " is not reachable: ", st.error_message()));
      return st;
    }
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = channels_.find(address);
    if (it != channels_.end()) return it->second;
    auto ch = rpc::Connect(address);
    channels_[address] = ch;
    return ch;
  }

  Controller* c_;
  std::string token_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

class NodeServiceImpl final : public v1::NodeService::Service {
 public:
  explicit NodeServiceImpl(Controller* c) : c_(c) {}
  grpc::Status List(ServerContext*, const v1::ListNodesRequest*,
                    v1::ListNodesResponse* resp) override {
    for (v1::Node& n : c_->ListNodes()) *resp->add_nodes() = std::move(n);
    return grpc::Status::OK;
  }
  grpc::Status Cordon(ServerContext*, const v1::CordonRequest* req, v1::Node* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    absl::StatusOr<v1::Node> n = c_->Cordon(req->name(), !req->uncordon());
    if (!n.ok()) return rpc::ToGrpc(n.status());
    *resp = *std::move(n);
    return grpc::Status::OK;
  }
  grpc::Status Drain(ServerContext*, const v1::DrainRequest* req,
                     v1::DrainResponse* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    absl::StatusOr<v1::DrainResponse> r = c_->Drain(req->name());
    if (!r.ok()) return rpc::ToGrpc(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

 private:
  Controller* c_;
};

class RegionServiceImpl final : public v1::RegionService::Service {
 public:
  explicit RegionServiceImpl(Controller* c) : c_(c) {}
  grpc::Status List(ServerContext*, const v1::ListRegionsRequest*,
                    v1::ListRegionsResponse* resp) override {
    for (v1::Region& r : c_->ListRegions()) *resp->add_regions() = std::move(r);
    return grpc::Status::OK;
  }

 private:
  Controller* c_;
};

class EndpointServiceImpl final : public v1::EndpointService::Service {
 public:
  explicit EndpointServiceImpl(EndpointManager* m) : m_(m) {}
  grpc::Status Apply(ServerContext*, const v1::ApplyEndpointRequest* req,
                     v1::Endpoint* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    if (req->spec().empty())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "spec: empty document");
    return Answer(m_->Apply(req->spec(), req->filename()), resp);
  }
  grpc::Status Get(ServerContext*, const v1::GetEndpointRequest* req, v1::Endpoint* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    return Answer(m_->Get(req->name()), resp);
  }
  grpc::Status List(ServerContext*, const v1::ListEndpointsRequest*,
                    v1::ListEndpointsResponse* resp) override {
    for (v1::Endpoint& e : m_->List()) *resp->add_endpoints() = std::move(e);
    return grpc::Status::OK;
  }
  grpc::Status Delete(ServerContext*, const v1::DeleteEndpointRequest* req,
                      v1::Endpoint* resp) override {
    if (auto st = ValidateRequest(*req); !st.ok()) return rpc::ToGrpc(st);
    return Answer(m_->Delete(req->name()), resp);
  }
  grpc::Status ReportLoad(ServerContext*, const v1::ReportLoadRequest* req,
                          v1::ReportLoadResponse*) override {
    return rpc::ToGrpc(m_->ReportLoad(*req));  // validates the whole report
  }

 private:
  static grpc::Status Answer(absl::StatusOr<v1::Endpoint> e, v1::Endpoint* resp) {
    if (!e.ok()) return rpc::ToGrpc(e.status());
    *resp = *std::move(e);
    return grpc::Status::OK;
  }
  EndpointManager* m_;
};

// One agent's heartbeat stream: read a beat, answer it, read the next.
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::HeartbeatRequest, v1::HeartbeatResponse> {
 public:
  explicit ConnectReactor(Controller* c) : c_(c) { StartRead(&req_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
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
  v1::HeartbeatRequest req_;
  v1::HeartbeatResponse resp_;
  std::string last_;  // deterministic bytes of the last answer sent
  std::chrono::steady_clock::time_point last_sent_;
};

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  explicit AgentServiceImpl(Controller* c) : c_(c) {}
  grpc::ServerBidiReactor<v1::HeartbeatRequest, v1::HeartbeatResponse>* Connect(
      CallbackServerContext*) override {
    return new ConnectReactor(c_);
  }
  ServerUnaryReactor* Register(CallbackServerContext* ctx, const v1::RegisterRequest* req,
                               v1::RegisterResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    absl::StatusOr<v1::RegisterResponse> r = c_->Register(req->node());
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(rpc::ToGrpc(r.status()));
    return reactor;
  }
  ServerUnaryReactor* Heartbeat(CallbackServerContext* ctx, const v1::HeartbeatRequest* req,
                                v1::HeartbeatResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    absl::StatusOr<v1::HeartbeatResponse> r = c_->Heartbeat(*req);
    if (r.ok()) *resp = *std::move(r);
    reactor->Finish(rpc::ToGrpc(r.status()));
    return reactor;
  }

 private:
  Controller* c_;
};

}  // namespace

struct ControllerServer::Impl {
  std::unique_ptr<JobServiceImpl> jobs;
  std::unique_ptr<NodeServiceImpl> nodes;
  std::unique_ptr<RegionServiceImpl> regions;
  std::unique_ptr<AgentServiceImpl> agents;
  std::unique_ptr<EndpointServiceImpl> endpoints;
  std::unique_ptr<grpc::Server> server;
};

absl::StatusOr<std::unique_ptr<ControllerServer>> ControllerServer::Start(
    Controller* c, ServerOptions options, EndpointManager* endpoints) {
  if (options.token.empty()) return absl::InvalidArgumentError("a token is required");
  std::unique_ptr<ControllerServer> s(new ControllerServer());
  s->impl_ = std::make_unique<Impl>();
  s->impl_->jobs = std::make_unique<JobServiceImpl>(c, options.token);
  s->impl_->nodes = std::make_unique<NodeServiceImpl>(c);
  s->impl_->regions = std::make_unique<RegionServiceImpl>(c);
  s->impl_->agents = std::make_unique<AgentServiceImpl>(c);
  grpc::ServerBuilder b;
  b.AddListeningPort(options.listen, rpc::ServerCredentials(options.token), &s->port_);
  b.SetMaxReceiveMessageSize(rpc::kMaxRequestBytes);
  // The hot paths (Submit, agent streams) use the callback API; keep the
  // pollers of the synchronous methods few so they do not wake on every event.
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  b.RegisterService(s->impl_->jobs.get());
  b.RegisterService(s->impl_->nodes.get());
  b.RegisterService(s->impl_->regions.get());
  b.RegisterService(s->impl_->agents.get());
  if (endpoints != nullptr) {
    s->impl_->endpoints = std::make_unique<EndpointServiceImpl>(endpoints);
    b.RegisterService(s->impl_->endpoints.get());
  }
  s->impl_->server = b.BuildAndStart();
  if (!s->impl_->server || s->port_ == 0)
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
