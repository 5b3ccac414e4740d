// Request validation (controller/validate.h): the reflection walk over
// request messages, the file-system check of spec paths against symlinks,
// and, through a real gRPC server on 127.0.0.1, that undecodable or absurd
// requests come back INVALID_ARGUMENT naming the field, and that a huge
// name comes back NOT_FOUND with a short message.
#include "controller/validate.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "controller/endpoints.h"
#include "controller/identity.h"
#include "controller/service.h"
#include "controller_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace fs = std::filesystem;

std::string Message(const absl::Status& st) { return std::string(st.message()); }

// ---- ValidateRequest

TEST(ValidateRequestTest, AcceptsOrdinaryRequests) {
  v1::SubmitJobRequest submit;
  submit.set_spec("kind: job\nname: caf\xC3\xA9\n");
  submit.set_filename("j.yaml");
  EXPECT_TRUE(ValidateRequest(submit).ok());
  v1::ReportLoadRequest load;
  load.set_gateway("gw");
  load.add_loads()->set_in_flight(0);
  load.add_loads()->set_in_flight(kMaxInFlight);
  EXPECT_TRUE(ValidateRequest(load).ok());
  EXPECT_TRUE(ValidateRequest(v1::ListNodesRequest()).ok());
  v1::LogChunk binary;  // binary data is not text
  binary.set_data(std::string("\xFF\0\xFE", 3));
  EXPECT_TRUE(ValidateRequest(binary).ok());
}

TEST(ValidateRequestTest, TextMustBeUtf8WithoutNulAndWithinItsLimit) {
  v1::GetEndpointRequest get;
  get.set_name("ab\xFF");
  absl::Status st = ValidateRequest(get);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(st), "name: not valid UTF-8 (byte 2), got 'ab\\xFF'");

  get.set_name(std::string("a\0b", 3));
  st = ValidateRequest(get);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(st), "name: contains a NUL byte, got 'a\\0b'");

  get.set_name(std::string(kMaxTextBytes + 1, 'n'));
  st = ValidateRequest(get);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(st), StartsWith("name: longer than 4096 bytes, got 'nnn"));
  EXPECT_THAT(Message(st), HasSubstr("(4097 bytes)"));
  EXPECT_LT(Message(st).size(), 200u);

  v1::SubmitJobRequest submit;  // a document may be long
  submit.set_spec(std::string(kMaxTextBytes * 10, '#'));
  EXPECT_TRUE(ValidateRequest(submit).ok());
  submit.set_filename("\xC0\xAF");
  EXPECT_THAT(Message(ValidateRequest(submit)), StartsWith("filename: not valid UTF-8"));
}

TEST(ValidateRequestTest, NumbersMustBeFiniteAndInRangeAndNestedFieldsAreNamed) {
  for (double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity(), -1.0, 2e9}) {
    v1::ReportLoadRequest load;
    load.set_gateway("gw");
    load.add_loads()->set_in_flight(1);
    load.add_loads()->set_in_flight(bad);
    absl::Status st = ValidateRequest(load);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Message(st), StartsWith("loads[1].in_flight: must be")) << bad;
  }
  v1::ReportLoadRequest load;
  load.add_loads()->set_name("e\xFF");
  EXPECT_THAT(Message(ValidateRequest(load)), StartsWith("loads[0].name: not valid UTF-8"));
  v1::RegisterRequest reg;  // a double in a nested message
  reg.mutable_node()->set_last_heartbeat(std::nan(""));
  EXPECT_THAT(Message(ValidateRequest(reg)), StartsWith("node.last_heartbeat: must be a finite"));
}

TEST(ValidateRequestTest, RepeatedFieldsAndMapsAreBounded) {
  v1::ReportLoadRequest load;
  for (int i = 0; i <= kMaxRepeated; ++i) load.add_loads();
  EXPECT_EQ(Message(ValidateRequest(load)),
            absl::StrCat("loads: at most ", kMaxRepeated, " entries, got ", kMaxRepeated + 1));
  v1::HeartbeatResponse beat;  // map entries are walked like any message
  (*beat.add_assignments()->mutable_env())["K"] = "v\xFF";
  EXPECT_THAT(Message(ValidateRequest(beat)), StartsWith("assignments[0].env[0].value: not valid"));
}

// ---- CheckSharedPaths

class SharedPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("shared-", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                         "-", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/shared/alice/models");
    fs::create_directories(root_ + "/shared/bob");
    fs::create_directories(root_ + "/outside");
  }
  void TearDown() override { fs::remove_all(root_); }
  absl::Status Check(const std::string& path, const std::string& tenant = "alice") {
    return CheckSharedPaths(shared(), tenant, {spec::SharedPath{"training.save", path, 7, 9}},
                            "t.yaml");
  }
  std::string shared() const { return root_ + "/shared"; }
  std::string root_;
};

TEST_F(SharedPathsTest, PathsInsideTheTenantsDirectoryPass) {
  EXPECT_TRUE(Check("models/m.model").ok());   // parent exists
  EXPECT_TRUE(Check("new/dir/m.model").ok());  // nothing exists yet
  EXPECT_TRUE(Check("./models//m").ok());
  EXPECT_TRUE(Check("m", "carol").ok());  // no tenant directory yet
  fs::create_directory_symlink(shared() + "/alice/models", shared() + "/alice/latest");
  EXPECT_TRUE(Check("latest/m.model").ok());  // a link that stays inside
  EXPECT_TRUE(CheckSharedPaths("", "alice", {spec::SharedPath{"x", "y"}}, "f").ok());  // no dir
  EXPECT_TRUE(CheckSharedPaths(root_ + "/nope", "alice", {spec::SharedPath{"x", "y"}}, "f").ok());
}

TEST_F(SharedPathsTest, SymlinksThatLeadOutAreRefusedNamingTheField) {
  fs::create_directory_symlink(root_ + "/outside", shared() + "/alice/out");
  absl::Status st = Check("out/m.model");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(st),
            "t.yaml:7:9: training.save: 'out/m.model' leads out of the tenant's shared directory "
            "through a symlink");
  EXPECT_FALSE(Check("out").ok());
  // Into another tenant's directory is out too.
  fs::create_directory_symlink(shared() + "/bob", shared() + "/alice/bob");
  EXPECT_FALSE(Check("bob/m").ok());
  // A file symlink, and a dangling one (what it names could appear later).
  fs::create_symlink("/etc/passwd", shared() + "/alice/models/m.model");
  EXPECT_FALSE(Check("models/m.model").ok());
  fs::create_symlink(root_ + "/outside/later", shared() + "/alice/dangling");
  EXPECT_FALSE(Check("dangling").ok());
  // A tenant directory that is itself a link.
  fs::create_directory_symlink(root_ + "/outside", shared() + "/mallory");
  EXPECT_FALSE(Check("m", "mallory").ok());
}

// ---- through gRPC

class ValidateServiceTest : public ControllerFixture {
 protected:
  void SetUp() override {
    ControllerFixture::SetUp();
    EndpointManagerOptions eo;
    eo.start_loop = false;
    em_ = std::make_unique<EndpointManager>(eo, ctl_.get(), store_.get(), &clock_);
    ASSERT_TRUE(em_->Start().ok());
    IdentityOptions io;
    io.bootstrap_token = "t0ken";  // the admin's
    io.secret_key = std::string(32, 's');
    ids_ = std::make_unique<IdentityManager>(io, store_.get(), &clock_);
    ASSERT_TRUE(ids_->Load(store::Snapshot()).ok());
    ServerOptions so;
    so.security.insecure = true;
    absl::StatusOr<std::unique_ptr<ControllerServer>> s =
        ControllerServer::Start(ctl_.get(), so, ids_.get(), em_.get());
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    rpc::Security plain;
    plain.insecure = true;
    channel_ = rpc::Connect(absl::StrCat("127.0.0.1:", server_->port()), plain);
  }
  void TearDown() override {
    server_.reset();
    em_.reset();
    ids_.reset();
    ControllerFixture::TearDown();
  }
  template <typename Call>
  grpc::Status Unary(Call call) {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, "t0ken", 10);
    return call(&ctx);
  }

  std::unique_ptr<EndpointManager> em_;
  std::unique_ptr<IdentityManager> ids_;
  std::unique_ptr<ControllerServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ValidateServiceTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  auto endpoints = v1::EndpointService::NewStub(channel_);
  v1::GetEndpointRequest get;
  get.set_name("\xFF\xFE");
  v1::Endpoint e;
  grpc::Status st = Unary([&](grpc::ClientContext* c) { return endpoints->Get(c, get, &e); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), StartsWith("name: not valid UTF-8"));

  auto jobs = v1::JobService::NewStub(channel_);
  v1::SubmitJobRequest submit;
  submit.set_spec("kind: job\nname: \xFF\n");
  v1::SubmitJobResponse sr;
  st = Unary([&](grpc::ClientContext* c) { return jobs->Submit(c, submit, &sr); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), StartsWith("spec: not valid UTF-8 (byte 16)"));

  auto nodes = v1::NodeService::NewStub(channel_);
  v1::CordonRequest cordon;
  cordon.set_name("n\xC3");
  v1::Node n;
  st = Unary([&](grpc::ClientContext* c) { return nodes->Cordon(c, cordon, &n); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), StartsWith("name: not valid UTF-8"));
}

TEST_F(ValidateServiceTest, AHugeNameGetsAShortAnswer) {
  auto endpoints = v1::EndpointService::NewStub(channel_);
  v1::GetEndpointRequest get;
  get.set_name(std::string(9000, 'x'));
  v1::Endpoint e;
  grpc::Status st = Unary([&](grpc::ClientContext* c) { return endpoints->Get(c, get, &e); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("(9000 bytes)"));
  EXPECT_LT(st.error_message().size(), 300u);
  // Below the RPC limit, the manager's own NOT_FOUND quotes it briefly too.
  absl::StatusOr<v1::Endpoint> direct = em_->Get(std::string(4000, 'y'));
  EXPECT_EQ(direct.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(direct.status()), HasSubstr("(4000 bytes) not found"));
  EXPECT_LT(Message(direct.status()).size(), 300u);
  get.set_name(std::string(4000, 'y'));
  st = Unary([&](grpc::ClientContext* c) { return endpoints->Get(c, get, &e); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(st.error_message().size(), 300u);
  absl::StatusOr<v1::Node> cordon = ctl_->Cordon(std::string(9000, 'z'), true);
  EXPECT_EQ(cordon.status().code(), absl::StatusCode::kNotFound);
  EXPECT_LT(Message(cordon.status()).size(), 300u);
}

TEST_F(ValidateServiceTest, ReportLoadRefusesNonFiniteValues) {
  auto endpoints = v1::EndpointService::NewStub(channel_);
  v1::ReportLoadRequest load;
  load.set_gateway("gw");
  v1::EndpointLoad* l = load.add_loads();
  l->set_name("digits");
  l->set_in_flight(std::numeric_limits<double>::infinity());
  v1::ReportLoadResponse resp;
  grpc::Status st =
      Unary([&](grpc::ClientContext* c) { return endpoints->ReportLoad(c, load, &resp); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), StartsWith("loads[0].in_flight: must be"));
  l->set_in_flight(2);
  st = Unary([&](grpc::ClientContext* c) { return endpoints->ReportLoad(c, load, &resp); });
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// The controller and endpoint manager told where the shared directory is.
using SharedDirTest = ControllerFixture;

TEST_F(SharedDirTest, SubmitRefusesAPathThatLeadsOutThroughASymlink) {
  std::string shared = dir_ + "/shared";
  fs::create_directories(shared + "/default");
  fs::create_directories(dir_ + "/elsewhere");
  fs::create_directory_symlink(dir_ + "/elsewhere", shared + "/default/models");
  ControllerOptions o;
  o.start_loop = false;
  o.shared_dir = shared;
  ctl_.reset();
  ctl_ = std::make_unique<Controller>(o, store_.get(), &clock_);
  ASSERT_TRUE(ctl_->Start().ok());
  auto submit = [&](const std::string& save) {
    std::promise<absl::StatusOr<v1::Job>> p;
    ctl_->Submit(absl::StrCat("kind: training\nname: t\nshape: {cpu: 1, memory: 1Gi}\ntraining:\n"
                              "  save: ",
                              save, "\n"),
                 "t.yaml", [&](absl::StatusOr<v1::Job> j) { p.set_value(std::move(j)); });
    return p.get_future().get();
  };
  absl::StatusOr<v1::Job> j = submit("models/m.model");
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(j.status()),
            "t.yaml:5:9: training.save: 'models/m.model' leads out of the tenant's shared "
            "directory through a symlink");
  j = submit("out/m.model");
  EXPECT_TRUE(j.ok()) << j.status();
  j = submit("../m.model");  // the lexical rules hold with or without a shared directory
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SharedDirTest, ApplyRefusesAModelThatLeadsOutThroughASymlink) {
  std::string shared = dir_ + "/shared";
  fs::create_directories(shared + "/default");
  fs::create_symlink("/etc/shadow", shared + "/default/m.model");
  EndpointManagerOptions eo;
  eo.start_loop = false;
  eo.shared_dir = shared;
  EndpointManager em(eo, ctl_.get(), store_.get(), &clock_);
  ASSERT_TRUE(em.Start().ok());
  absl::StatusOr<v1::Endpoint> e = em.Apply("kind: endpoint\nname: e\nmodel: m.model\n", "e.yaml");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(e.status()), StartsWith("e.yaml:3:8: model: 'm.model' leads out"));
  e = em.Apply("kind: endpoint\nname: e\nmodel: /etc/shadow\n", "e.yaml");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(e.status()), HasSubstr("model: '/etc/shadow': must be relative"));
  // The model must exist and be a Meridian model before any replica starts.
  e = em.Apply("kind: endpoint\nname: e\nmodel: models/fine.model\n", "e.yaml");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(e.status()),
              StartsWith("e.yaml:3:8: model: 'models/fine.model' does not exist in tenant default"));
  fs::create_directories(shared + "/default/models");
  { std::ofstream(shared + "/default/models/net.pt") << "PK\x03\x04 torch zip"; }
  e = em.Apply("kind: endpoint\nname: e\nmodel: models/net.pt\n", "e.yaml");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(e.status()), HasSubstr("'models/net.pt' is not a Meridian model"));
  { std::ofstream(shared + "/default/models/fine.model") << "MRDNMDL1\x02\0\0\0..."; }
  e = em.Apply("kind: endpoint\nname: e\nmodel: models/fine.model\n", "e.yaml");
  EXPECT_TRUE(e.ok()) << e.status();
  em.Stop();
}

}  // namespace
}  // namespace meridian::controller
