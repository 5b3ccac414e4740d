// The authorization table, end to end: every RPC of the controller, called
// over real TLS by every kind of caller, answers exactly the status the
// trust model says (docs/security.md), and a denied call changes nothing in
// the store but the audit trail. Also: the controller's certificate is the
// cluster CA's, a plaintext client and a node without a CA-signed
// certificate are refused.
#include <unistd.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "auth/crypto.h"
#include "controller/authz.h"
#include "controller/controller.h"
#include "controller/endpoints.h"
#include "controller/identity.h"
#include "controller/service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <grpcpp/generic/generic_stub.h>
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::controller {
namespace {

using grpc::StatusCode;

// The callers, in the order of the expectation strings below.
enum Who {
  kAnonymous,
  kWrongToken,
  kRevoked,
  kExpired,
  kViewer,       // viewer:alpha
  kOtherMember,  // member:beta
  kMember,       // member:alpha
  kOperator,
  kAdmin,
  kOtherNode,  // node n2's certificate, acting for n1
  kNode,       // node n1's own certificate
  kWhoCount
};
const char* kWhoNames[] = {"anonymous", "wrong token", "revoked token", "expired token",
                           "viewer",    "member of another tenant", "member", "operator",
                           "admin",     "another node's credential", "the node itself"};

StatusCode Code(char c) {
  switch (c) {
    case 'O': return StatusCode::OK;
    case 'U': return StatusCode::UNAUTHENTICATED;
    case 'P': return StatusCode::PERMISSION_DENIED;
    case 'F': return StatusCode::FAILED_PRECONDITION;
  }
  ADD_FAILURE() << "bad code " << c;
  return StatusCode::UNKNOWN;
}

class SecurityTest : public ::testing::Test {

 public:  // the rows of the table below reach into the fixture
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / absl::StrCat("security-", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store::StoreOptions so;
    so.path = dir_ + "/state.db";
    store_ = *store::Store::Open(so);
    ControllerOptions co;
    co.start_loop = false;
    co.heartbeat_timeout_s = 1e9;
    ctl_ = std::make_unique<Controller>(co, store_.get(), &clock_);
    ASSERT_TRUE(ctl_->Start().ok());
    EndpointManagerOptions eo;
    eo.start_loop = false;
    endpoints_ = std::make_unique<EndpointManager>(eo, ctl_.get(), store_.get(), &clock_);
    IdentityOptions io;
    io.bootstrap_token = "bootstrap-admin-token";
    io.secret_key = std::string(32, 'k');
    io.audit_log = dir_ + "/audit.log";
    ids_ = std::make_unique<IdentityManager>(io, store_.get(), &clock_);
    ASSERT_TRUE(ids_->Load(*store_->Load()).ok());
    endpoints_->SetSecretResolver([this](const std::string& t, const std::string& n) {
      return ids_->SecretValue(t, n);
    });
    ASSERT_TRUE(endpoints_->Start().ok());
    ctl_->SetRunTokenMinter([this](const std::string& key, const std::string& account) {
      return ids_->RunToken(key, account);
    });
    ids_->SetRunLookup([this](const std::string& key)
                           -> std::optional<IdentityManager::RunIdentity> {
      auto run = ctl_->RunServiceAccount(key);
      if (!run) return std::nullopt;
      return IdentityManager::RunIdentity{run->first, run->second};
    });

    ca_ = *auth::CreateCa("test CA");
    auth::CertRequest server{"controller", {"localhost"}, {"127.0.0.1"}};
    auth::KeyPair server_cert = *auth::IssueCert(ca_, server);
    ServerOptions svo;
    svo.security.ca_pem = ca_.cert_pem;
    svo.security.cert_pem = server_cert.cert_pem;
    svo.security.key_pem = server_cert.key_pem;
    svo.ca = ca_;
    server_ = *ControllerServer::Start(ctl_.get(), svo, ids_.get(), endpoints_.get());
    address_ = absl::StrCat("127.0.0.1:", server_->port());

    // Users and their tokens.
    ASSERT_TRUE(ids_->CreateUser("vic", {"viewer:alpha"}, false).ok());
    ASSERT_TRUE(ids_->CreateUser("bob", {"member:beta"}, false).ok());
    ASSERT_TRUE(ids_->CreateUser("alice", {"member:alpha"}, false).ok());
    ASSERT_TRUE(ids_->CreateUser("olga", {"operator"}, false).ok());
    tokens_[kViewer] = ids_->CreateToken("vic", 0, "")->secret();
    tokens_[kOtherMember] = ids_->CreateToken("bob", 0, "")->secret();
    tokens_[kMember] = ids_->CreateToken("alice", 0, "")->secret();
    tokens_[kOperator] = ids_->CreateToken("olga", 0, "")->secret();
    tokens_[kAdmin] = "bootstrap-admin-token";
    tokens_[kWrongToken] = "mdt_0123456789ab_0123456789abcdef0123456789abcdef01234567";
    absl::StatusOr<v1::CreateTokenResponse> revoked = ids_->CreateToken("alice", 0, "");
    ASSERT_TRUE(ids_->RevokeToken(revoked->token().id()).ok());
    tokens_[kRevoked] = revoked->secret();
    tokens_[kExpired] = ids_->CreateToken("alice", 10, "")->secret();
    clock_.Advance(60);

    // Nodes n1 (registered, in region r1) and n2, with CA-signed certificates.
    for (const char* n : {"n1", "n2"}) {
      auth::CertRequest r{absl::StrCat("node:", n), {absl::StrCat(n, ".node.meridian")}, {}};
      node_certs_[n] = *auth::IssueCert(ca_, r);
    }
    v1::Node n1;
    n1.set_name("n1");
    n1.set_region("r1");
    n1.set_cpu_milli(64000);
    n1.set_memory_mib(1 << 20);
    n1.set_address("127.0.0.1:1");
    ASSERT_TRUE(ctl_->Register(n1).ok());
    job_ = SubmitDirect("alpha");
    ASSERT_TRUE(endpoints_->Apply(EndpointSpec("ep-alpha"), "ep.yaml").ok());
    ASSERT_TRUE(ids_->CreateSecret("alpha", "s1", "hunter2").ok());
  }

  void TearDown() override {
    server_.reset();
    endpoints_.reset();
    ctl_.reset();
    ids_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static std::string EndpointSpec(const std::string& name) {
    return absl::StrCat("kind: endpoint\nname: ", name,
                        "\ntenant: alpha\nmodel: models/m.model\nreplicas: 1\n"
                        "shape: {cpu: 100m, memory: 64Mi}\ntoken: ep-token\n");
  }

  uint64_t SubmitDirect(const std::string& tenant) {
    std::promise<uint64_t> p;
    ctl_->Submit(absl::StrCat("kind: job\nname: j", next_++, "\ntenant: ", tenant,
                              "\nshape: {cpu: 100m, memory: 64Mi}\ncommand: [\"true\"]\n"),
                 "job.yaml", [&p](absl::StatusOr<v1::Job> j) { p.set_value(j.ok() ? j->id() : 0); });
    return p.get_future().get();
  }

  std::shared_ptr<grpc::Channel> ChannelFor(Who w) {
    rpc::Security sec;
    sec.ca_pem = ca_.cert_pem;
    if (w == kOtherNode || w == kNode) {
      const auth::KeyPair& k = node_certs_[w == kNode ? "n1" : "n2"];
      sec.cert_pem = k.cert_pem;
      sec.key_pem = k.key_pem;
    }
    return rpc::Connect(address_, sec);
  }

  void Prepare(grpc::ClientContext* ctx, Who w) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (tokens_.contains(w)) ctx->AddMetadata("authorization", "Bearer " + tokens_[w]);
  }

  // Takes the store's state before a call (after the row's own set-up).
  void Mark() {
    if (tracking_) before_ = StoreState();
  }
  bool tracking_ = false;
  std::string before_;

  // What a denied call must not change: everything durable but the audit
  // (a digest, so that a failure message stays short).
  std::string StoreState() { return auth::Sha256Hex(RawStoreState()); }
  std::string RawStoreState() {
    EXPECT_TRUE(store_->Write(store::Batch()).ok());
    store::Snapshot s = *store_->Load();
    std::string out;
    for (const auto& j : s.jobs) absl::StrAppend(&out, "J", j.id, j.state, j.message, "|");
    for (const auto& r : s.replicas) absl::StrAppend(&out, "R", r.job_id, r.state, r.node, "|");
    for (const auto& n : s.nodes) absl::StrAppend(&out, "N", n.name, n.cordoned, n.address, "|");
    for (const auto& e : s.endpoints) absl::StrAppend(&out, "E", e.name, e.deleted, e.spec, "|");
    for (const auto& k : s.kv) absl::StrAppend(&out, "K", k.kind, k.key, k.value, "|");
    return out;
  }

  std::string dir_;
  FakeClock clock_{1.7e9};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Controller> ctl_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<IdentityManager> ids_;
  std::unique_ptr<ControllerServer> server_;
  auth::KeyPair ca_;
  std::map<std::string, auth::KeyPair> node_certs_;
  std::map<int, std::string> tokens_;
  std::string address_;
  uint64_t job_ = 0;
  int next_ = 0;
};

using Invoke = std::function<grpc::Status(SecurityTest*, grpc::Channel*, grpc::ClientContext*)>;

struct Row {
  std::string method;  // as in the authorization table
  std::string expect;  // one code per caller (Who order)
  Invoke call;
};

template <typename Service>
auto S(grpc::Channel* ch) {
  return Service::NewStub(std::shared_ptr<grpc::Channel>(ch, [](grpc::Channel*) {}));
}

TEST_F(SecurityTest, EveryRpcTimesEveryCallerGetsExactlyItsStatusAndDenialsChangeNothing) {
  //                        anon  wrong  revoked expired viewer other-member member operator
  //                        admin other-node node
  const std::vector<Row> rows = {
      {"JobService/Submit", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::SubmitJobRequest r;
         r.set_spec("kind: job\nname: x\ntenant: alpha\nshape: {cpu: 100m, memory: 64Mi}\n"
                    "command: [\"true\"]\n");
         v1::SubmitJobResponse resp;
         return S<v1::JobService>(ch)->Submit(c, r, &resp);
       }},
      {"JobService/Get", "UUUUOPOOOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::GetJobRequest r;
         r.set_id(t->job_);
         v1::Job resp;
         return S<v1::JobService>(ch)->Get(c, r, &resp);
       }},
      {"JobService/List", "UUUUOOOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListJobsResponse resp;
         return S<v1::JobService>(ch)->List(c, v1::ListJobsRequest(), &resp);
       }},
      {"JobService/Cancel", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CancelJobRequest r;
         r.set_id(t->SubmitDirect("alpha"));
         t->Mark();
         v1::Job resp;
         return S<v1::JobService>(ch)->Cancel(c, r, &resp);
       }},
      {"JobService/Watch", "UUUUOPOOOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::WatchJobsRequest r;
         r.set_id(t->job_);
         auto stub = S<v1::JobService>(ch);
         auto reader = stub->Watch(c, r);
         v1::JobEvent e;
         if (!reader->Read(&e)) return reader->Finish();
         c->TryCancel();
         reader->Finish();
         return grpc::Status::OK;
       }},
      {"JobService/Logs", "UUUUFPFFFPP",  // allowed: the replica is not placed yet
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::LogsRequest r;
         r.set_id(t->job_);
         auto stub = S<v1::JobService>(ch);
         auto reader = stub->Logs(c, r);
         v1::LogChunk chunk;
         while (reader->Read(&chunk)) {
         }
         return reader->Finish();
       }},
      {"EndpointService/Apply", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ApplyEndpointRequest r;
         r.set_spec(EndpointSpec(absl::StrCat("ep-new-", t->next_++)));
         v1::Endpoint resp;
         return S<v1::EndpointService>(ch)->Apply(c, r, &resp);
       }},
      {"EndpointService/Get", "UUUUOPOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::GetEndpointRequest r;
         r.set_name("ep-alpha");
         v1::Endpoint resp;
         return S<v1::EndpointService>(ch)->Get(c, r, &resp);
       }},
      {"EndpointService/List", "UUUUOOOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListEndpointsResponse resp;
         return S<v1::EndpointService>(ch)->List(c, v1::ListEndpointsRequest(), &resp);
       }},
      {"EndpointService/Delete", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         std::string name = absl::StrCat("ep-del-", t->next_++);
         EXPECT_TRUE(t->endpoints_->Apply(EndpointSpec(name), "ep.yaml").ok());
         t->Mark();
         v1::DeleteEndpointRequest r;
         r.set_name(name);
         v1::Endpoint resp;
         return S<v1::EndpointService>(ch)->Delete(c, r, &resp);
       }},
      {"EndpointService/ReportLoad", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ReportLoadRequest r;
         r.set_gateway("g");
         r.add_loads()->set_name("ep-alpha");
         v1::ReportLoadResponse resp;
         return S<v1::EndpointService>(ch)->ReportLoad(c, r, &resp);
       }},
      {"NodeService/List", "UUUUOOOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListNodesResponse resp;
         return S<v1::NodeService>(ch)->List(c, v1::ListNodesRequest(), &resp);
       }},
      {"NodeService/Cordon", "UUUUPPPOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CordonRequest r;
         r.set_name("n1");
         v1::Node resp;
         return S<v1::NodeService>(ch)->Cordon(c, r, &resp);
       }},
      {"NodeService/Drain", "UUUUPPPOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::DrainRequest r;
         r.set_name("n1");
         v1::DrainResponse resp;
         return S<v1::NodeService>(ch)->Drain(c, r, &resp);
       }},
      {"RegionService/List", "UUUUOOOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListRegionsResponse resp;
         return S<v1::RegionService>(ch)->List(c, v1::ListRegionsRequest(), &resp);
       }},
      // Join's credential is the one-time join token in the request: anyone
      // holding one may join (as the node it names, once).
      {"AgentService/Join", "OOOOOOOOOOO",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         std::string node = absl::StrCat("j", t->next_++);
         v1::JoinRequest r;
         r.set_node(node);
         r.set_join_token(t->ids_->CreateJoinToken(node, 60)->token());
         t->Mark();
         r.set_csr(auth::CreateCsr("whatever")->cert_pem);
         v1::JoinResponse resp;
         grpc::Status st = S<v1::AgentService>(ch)->Join(c, r, &resp);
         if (st.ok()) {
           EXPECT_EQ(*auth::CertCommonName(resp.certificate()), "node:" + node);
         }
         return st;
       }},
      {"AgentService/Register", "UUUUPPPPPPO",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::RegisterRequest r;
         r.mutable_node()->set_name("n1");
         r.mutable_node()->set_region("r1");
         r.mutable_node()->set_cpu_milli(64000);
         r.mutable_node()->set_memory_mib(1 << 20);
         r.mutable_node()->set_address("127.0.0.1:1");
         v1::RegisterResponse resp;
         return S<v1::AgentService>(ch)->Register(c, r, &resp);
       }},
      {"AgentService/Heartbeat", "UUUUPPPPPPO",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::HeartbeatRequest r;
         r.set_node("n1");
         v1::HeartbeatResponse resp;
         return S<v1::AgentService>(ch)->Heartbeat(c, r, &resp);
       }},
      {"AgentService/Connect", "UUUUPPPPPPO",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         auto stub = S<v1::AgentService>(ch);
         auto stream = stub->Connect(c);
         v1::HeartbeatRequest r;
         r.set_node("n1");
         stream->Write(r);
         v1::HeartbeatResponse resp;
         bool answered = stream->Read(&resp);  // the first beat is always answered
         stream->WritesDone();
         if (answered) {
           c->TryCancel();
           stream->Finish();
           return grpc::Status::OK;
         }
         return stream->Finish();
       }},
      {"IdentityService/CreateUser", "UUUUPPPPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CreateUserRequest r;
         r.set_name(absl::StrCat("u", t->next_++));
         r.add_roles("viewer:alpha");
         v1::User resp;
         return S<v1::IdentityService>(ch)->CreateUser(c, r, &resp);
       }},
      {"IdentityService/ListUsers", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListUsersResponse resp;
         return S<v1::IdentityService>(ch)->ListUsers(c, v1::ListUsersRequest(), &resp);
       }},
      {"IdentityService/CreateToken", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CreateTokenRequest r;
         r.set_user("alice");
         v1::CreateTokenResponse resp;
         return S<v1::IdentityService>(ch)->CreateToken(c, r, &resp);
       }},
      {"IdentityService/ListTokens", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListTokensResponse resp;
         return S<v1::IdentityService>(ch)->ListTokens(c, v1::ListTokensRequest(), &resp);
       }},
      {"IdentityService/RevokeToken", "UUUUPPPPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::RevokeTokenRequest r;
         r.set_id(t->ids_->CreateToken("vic", 0, "")->token().id());
         t->Mark();
         v1::Token resp;
         return S<v1::IdentityService>(ch)->RevokeToken(c, r, &resp);
       }},
      {"IdentityService/CreateJoinToken", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CreateJoinTokenRequest r;
         r.set_node("n9");
         v1::CreateJoinTokenResponse resp;
         return S<v1::IdentityService>(ch)->CreateJoinToken(c, r, &resp);
       }},
      {"IdentityService/WhoAmI", "UUUUOOOOOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::WhoAmIResponse resp;
         return S<v1::IdentityService>(ch)->WhoAmI(c, v1::WhoAmIRequest(), &resp);
       }},
      {"SecretService/Create", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::CreateSecretRequest r;
         r.set_tenant("alpha");
         r.set_name(absl::StrCat("s-new-", t->next_++));
         r.set_value("v");
         v1::Secret resp;
         return S<v1::SecretService>(ch)->Create(c, r, &resp);
       }},
      {"SecretService/List", "UUUUPPOPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListSecretsRequest r;
         r.set_tenant("alpha");
         v1::ListSecretsResponse resp;
         return S<v1::SecretService>(ch)->List(c, r, &resp);
       }},
      {"SecretService/Delete", "UUUUPPOPOPP",
       [](SecurityTest* t, grpc::Channel* ch, grpc::ClientContext* c) {
         std::string name = absl::StrCat("s-del-", t->next_++);
         EXPECT_TRUE(t->ids_->CreateSecret("alpha", name, "v").ok());
         t->Mark();
         v1::DeleteSecretRequest r;
         r.set_tenant("alpha");
         r.set_name(name);
         v1::Secret resp;
         return S<v1::SecretService>(ch)->Delete(c, r, &resp);
       }},
      {"AuditService/List", "UUUUPPPPOPP",
       [](SecurityTest*, grpc::Channel* ch, grpc::ClientContext* c) {
         v1::ListAuditResponse resp;
         return S<v1::AuditService>(ch)->List(c, v1::ListAuditRequest(), &resp);
       }},
  };
  // The table above covers every row of the authorization table.
  std::set<std::string> covered;
  for (const Row& r : rows) covered.insert("/meridian.v1." + r.method);
  for (const MethodRule& rule : AllRules())
    EXPECT_TRUE(covered.contains(std::string(rule.method))) << rule.method << " is not tested";

  std::map<int, std::shared_ptr<grpc::Channel>> channels;
  for (int w = 0; w < kWhoCount; ++w) channels[w] = ChannelFor(static_cast<Who>(w));
  for (const Row& row : rows) {
    ASSERT_EQ(row.expect.size(), size_t(kWhoCount)) << row.method;
    for (int w = 0; w < kWhoCount; ++w) {
      StatusCode want = Code(row.expect[size_t(w)]);
      bool denied = want == StatusCode::UNAUTHENTICATED || want == StatusCode::PERMISSION_DENIED;
      tracking_ = denied;
      Mark();
      size_t audited = ids_->ListAudit("", 0, 1000000).size();
      grpc::ClientContext ctx;
      Prepare(&ctx, static_cast<Who>(w));
      grpc::Status st = row.call(this, channels[w].get(), &ctx);
      EXPECT_EQ(st.error_code(), want)
          << row.method << " by " << kWhoNames[w] << ": " << st.error_message();
      if (!denied) continue;
      EXPECT_EQ(StoreState(), before_) << row.method << " by " << kWhoNames[w] << " changed state";
      std::vector<v1::AuditEvent> trail = ids_->ListAudit("", 0, 1000000);
      ASSERT_GT(trail.size(), audited) << row.method << " by " << kWhoNames[w] << " not audited";
      EXPECT_EQ(trail.back().code(), want == StatusCode::UNAUTHENTICATED ? "UNAUTHENTICATED"
                                                                         : "PERMISSION_DENIED");
      EXPECT_THAT(trail.back().method(), ::testing::HasSubstr(row.method));
    }
  }
}

TEST_F(SecurityTest, AMethodOutsideTheTableIsDeniedBeforeAnyHandler) {
  grpc::GenericStub stub(ChannelFor(kAdmin));
  grpc::ClientContext ctx;
  Prepare(&ctx, kAdmin);
  grpc::Slice empty("");
  grpc::ByteBuffer req(&empty, 1), resp;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/meridian.v1.JobService/DeleteEverything", grpc::StubOptions(), &req,
                 &resp, [&done](grpc::Status s) { done.set_value(s); });
  grpc::Status st = done.get_future().get();
  EXPECT_EQ(st.error_code(), StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("not in the authorization table"));
}

TEST_F(SecurityTest, TheTenantOfAJobIsCheckedAgainstTheCallersRoles) {
  // A member of beta cancelling alpha's job: denied, audited, the job unchanged.
  grpc::ClientContext ctx;
  Prepare(&ctx, kOtherMember);
  v1::CancelJobRequest r;
  r.set_id(job_);
  v1::Job resp;
  grpc::Status st = S<v1::JobService>(ChannelFor(kOtherMember).get())->Cancel(&ctx, r, &resp);
  EXPECT_EQ(st.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("of tenant alpha"));
  EXPECT_EQ(ctl_->GetJob(job_)->state(), v1::JOB_PENDING);
  std::vector<v1::AuditEvent> bob = ids_->ListAudit("bob", 0, 10);
  ASSERT_FALSE(bob.empty());
  EXPECT_EQ(bob.back().method(), "JobService/Cancel");
  EXPECT_EQ(bob.back().tenant(), "alpha");
  EXPECT_EQ(bob.back().object(), absl::StrCat("job ", job_));
  // Lists show a member only its own tenant's jobs.
  SubmitDirect("beta");
  grpc::ClientContext lctx;
  Prepare(&lctx, kOtherMember);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(S<v1::JobService>(ChannelFor(kOtherMember).get())
                  ->List(&lctx, v1::ListJobsRequest(), &listed)
                  .ok());
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).tenant(), "beta");
  // Endpoint tokens are not shown to members (only to admin and gateways).
  grpc::ClientContext ectx;
  Prepare(&ectx, kMember);
  v1::GetEndpointRequest er;
  er.set_name("ep-alpha");
  v1::Endpoint e;
  ASSERT_TRUE(S<v1::EndpointService>(ChannelFor(kMember).get())->Get(&ectx, er, &e).ok());
  EXPECT_EQ(e.token(), "");
}

TEST_F(SecurityTest, TheControllerShowsTheClusterCaAndRefusesPlaintextAndForeignCertificates) {
  // A plaintext (insecure) client cannot even reach the API.
  auto plain = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::ListJobsResponse resp;
    grpc::Status st = v1::JobService::NewStub(plain)->List(&ctx, v1::ListJobsRequest(), &resp);
    EXPECT_EQ(st.error_code(), StatusCode::UNAVAILABLE) << st.error_message();
  }
  // A client that trusts another CA refuses the controller's certificate.
  {
    rpc::Security other;
    other.ca_pem = auth::CreateCa("another CA")->cert_pem;
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    v1::ListJobsResponse resp;
    grpc::Status st = v1::JobService::NewStub(rpc::Connect(address_, other))
                          ->List(&ctx, v1::ListJobsRequest(), &resp);
    EXPECT_EQ(st.error_code(), StatusCode::UNAVAILABLE) << st.error_message();
  }
  // An agent whose certificate says node:n1 but is signed by another CA
  // cannot register (the handshake fails), and nothing changes.
  {
    auth::KeyPair rogue_ca = *auth::CreateCa("rogue CA");
    auth::KeyPair rogue = *auth::IssueCert(rogue_ca, {"node:n1", {}, {}});
    rpc::Security sec;
    sec.ca_pem = ca_.cert_pem;
    sec.cert_pem = rogue.cert_pem;
    sec.key_pem = rogue.key_pem;
    std::string before = StoreState();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::RegisterRequest r;
    r.mutable_node()->set_name("n1");
    r.mutable_node()->set_region("elsewhere");
    v1::RegisterResponse resp;
    grpc::Status st = v1::AgentService::NewStub(rpc::Connect(address_, sec))->Register(&ctx, r, &resp);
    EXPECT_NE(st.error_code(), StatusCode::OK);
    EXPECT_EQ(StoreState(), before);
  }
}

TEST_F(SecurityTest, TokensAreStoredOnlyAsSaltedHashesAndSecretsOnlySealed) {
  // An endpoint applied with a literal client token: the token becomes a
  // sealed secret of its tenant, the stored spec names the secret, and
  // gateways (admin here) still get the token.
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kMember);
    v1::ApplyEndpointRequest r;
    r.set_spec("kind: endpoint\nname: ep-lit\ntenant: alpha\nmodel: models/m.model\n"
               "replicas: 1\nshape: {cpu: 100m, memory: 64Mi}\ntoken: very-secret-ep-token\n");
    v1::Endpoint e;
    grpc::Status st = S<v1::EndpointService>(ChannelFor(kMember).get())->Apply(&ctx, r, &e);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(e.token(), "");  // not to a member
    EXPECT_THAT(e.spec(), ::testing::HasSubstr("endpoint-ep-lit-token"));
    grpc::ClientContext actx;
    Prepare(&actx, kAdmin);
    v1::GetEndpointRequest g;
    g.set_name("ep-lit");
    ASSERT_TRUE(S<v1::EndpointService>(ChannelFor(kAdmin).get())->Get(&actx, g, &e).ok());
    EXPECT_EQ(e.token(), "very-secret-ep-token");
  }
  ASSERT_TRUE(store_->Write(store::Batch()).ok());
  std::string db;
  for (const char* f : {"/state.db", "/state.db-wal"}) {
    std::ifstream in(dir_ + f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    db += ss.str();
  }
  ASSERT_FALSE(db.empty());
  for (int w : {kViewer, kMember, kOperator}) {
    std::string secret_part = tokens_[w].substr(tokens_[w].rfind('_') + 1);
    EXPECT_EQ(db.find(secret_part), std::string::npos) << "a token's secret is in state.db";
  }
  EXPECT_EQ(db.find("bootstrap-admin-token"), std::string::npos);
  EXPECT_EQ(db.find("hunter2"), std::string::npos) << "a secret is in state.db in clear";
  EXPECT_EQ(db.find("very-secret-ep-token"), std::string::npos) << "an endpoint token in clear";
  EXPECT_EQ(*ids_->SecretValue("alpha", "s1"), "hunter2");
  // The database file is the controller's alone.
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/state.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST_F(SecurityTest, ARunTokenActsAsItsServiceAccountInItsJobsTenantOnlyWhileTheRunLives) {
  // ci: member of alpha, viewer of beta. A job of alpha naming it gets a run
  // token that acts with ci's alpha roles only.
  ASSERT_TRUE(ids_->CreateUser("ci", {"member:alpha", "viewer:beta"}, true).ok());
  ASSERT_TRUE(ids_->CreateUser("lonely", {"member:gamma"}, true).ok());
  uint64_t beta_job = SubmitDirect("beta");
  auto submit = [&](Who w, const std::string& tenant, const std::string& account) {
    grpc::ClientContext ctx;
    Prepare(&ctx, w);
    v1::SubmitJobRequest r;
    r.set_spec(absl::StrCat("kind: job\nname: sa", next_++, "\ntenant: ", tenant,
                            "\nshape: {cpu: 100m, memory: 64Mi}\ncommand: [\"true\"]\n",
                            account.empty() ? "" : "service_account: " + account + "\n"));
    v1::SubmitJobResponse resp;
    grpc::Status st = S<v1::JobService>(ChannelFor(w).get())->Submit(&ctx, r, &resp);
    return std::make_pair(st, resp.job().id());
  };
  // Naming a user, an account without a role in the tenant, or none at all.
  EXPECT_EQ(submit(kMember, "alpha", "alice").first.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(submit(kMember, "alpha", "lonely").first.error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(submit(kMember, "alpha", "nobody").first.error_code(), StatusCode::NOT_FOUND);
  auto [st, id] = submit(kMember, "alpha", "ci");
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto [plain_st, plain_id] = submit(kMember, "alpha", "");
  ASSERT_TRUE(plain_st.ok()) << plain_st.error_message();

  ctl_->Tick();  // places both on n1
  ASSERT_TRUE(store_->Write(store::Batch()).ok());  // assignments go out once durable
  v1::HeartbeatRequest hb;
  hb.set_node("n1");
  absl::StatusOr<v1::HeartbeatResponse> beat = ctl_->Heartbeat(hb);
  ASSERT_TRUE(beat.ok());
  std::string token, key;
  for (const v1::Assignment& a : beat->assignments()) {
    if (a.job_id() == plain_id) EXPECT_EQ(a.service_token(), "") << "no account, no credential";
    if (a.job_id() == id) {
      token = a.service_token();
      key = a.key();
    }
    for (const auto& [k, v] : a.env()) EXPECT_EQ(v.find("mdr_"), std::string::npos) << k;
  }
  ASSERT_FALSE(token.empty()) << ctl_->GetJob(id)->DebugString() << beat->DebugString();
  EXPECT_EQ(token.rfind(absl::StrCat("mdr_", key, "_"), 0), 0u) << token;
  tokens_[kWhoCount] = token;
  Who run = kWhoCount;

  auto whoami = [&](const std::string& t) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t);
    v1::WhoAmIResponse resp;
    grpc::Status s =
        S<v1::IdentityService>(ChannelFor(kAdmin).get())->WhoAmI(&ctx, v1::WhoAmIRequest(), &resp);
    return std::make_pair(s, resp);
  };
  auto [who_st, who] = whoami(token);
  ASSERT_TRUE(who_st.ok()) << who_st.error_message();
  EXPECT_EQ(who.identity(), "sa:ci");
  EXPECT_THAT(who.roles(), ::testing::ElementsAre("member:alpha"));  // viewer:beta dropped
  // It submits in alpha, reads alpha, and neither reads nor cancels beta.
  EXPECT_TRUE(submit(run, "alpha", "").first.ok());
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, run);
    v1::GetJobRequest g;
    g.set_id(beta_job);
    v1::Job j;
    EXPECT_EQ(S<v1::JobService>(ChannelFor(run).get())->Get(&ctx, g, &j).error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  EXPECT_EQ(submit(run, "beta", "").first.error_code(), StatusCode::PERMISSION_DENIED);
  // A forged token for the same run key, or for another run, is refused.
  std::string forged = token;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(whoami(forged).first.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(whoami(absl::StrCat("mdr_j", plain_id, "-r0-a0_", token.substr(token.size() - 64)))
                .first.error_code(),
            StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(whoami("mdr_x").first.error_code(), StatusCode::UNAUTHENTICATED);
  // Once the run ends (its job cancelled), the token is worth nothing.
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, kMember);
    v1::CancelJobRequest c;
    c.set_id(id);
    v1::Job j;
    ASSERT_TRUE(S<v1::JobService>(ChannelFor(kMember).get())->Cancel(&ctx, c, &j).ok());
  }
  v1::HeartbeatRequest done;
  done.set_node("n1");
  v1::RunReport* rep = done.add_runs();
  rep->set_key(key);
  rep->set_job_id(id);
  rep->set_replica(0);
  rep->set_attempt(0);
  rep->set_state(v1::REPLICA_STOPPED);
  rep->set_exit_code(143);
  ASSERT_TRUE(ctl_->Heartbeat(done).ok());
  ctl_->Tick();
  auto [after_st, after] = whoami(token);
  EXPECT_EQ(after_st.error_code(), StatusCode::UNAUTHENTICATED) << after.identity();
  EXPECT_THAT(after_st.error_message(), ::testing::HasSubstr("ended"));
}

TEST_F(SecurityTest, HostileBearerTokensAreRefusedWithAReason) {
  std::string mac(64, 'a');
  std::vector<std::string> hostile = {
      "", "Bearer", "Bearer ", "bearer x", "Bearer mdr_", "Bearer mdr_" + mac,
      "Bearer mdr__" + mac, "Bearer mdr_j1-r0-a0_" + mac.substr(1),
      "Bearer mdr_j1-r0-a0_" + mac + "x", "Bearer mdr_" + std::string(200, 'j') + "_" + mac,
      "Bearer mdr_j99999999999999999999999-r0-a0_" + mac, "Bearer mdr_j1-r-1-a0_" + mac,
      "Bearer mdr_j1-r0-a0-extra_" + mac, std::string("Bearer mdr_j1\0r0-a0_", 20) + mac,
      "Bearer mdt_" + std::string(12, 'z') + "_" + std::string(40, 'z'),
      "Bearer " + std::string(100000, 'x')};
  for (const std::string& h : hostile) {
    absl::StatusOr<auth::Principal> p = ids_->Authenticate(h);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << h.substr(0, 60);
    EXPECT_LT(p.status().message().size(), 300u) << "the reason quotes too much of the token";
  }
}

}  // namespace
}  // namespace meridian::controller
