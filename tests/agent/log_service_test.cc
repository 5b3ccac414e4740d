// The agent's log service (AgentLogService.ReadLog) through a real gRPC
// call on 127.0.0.1: an agent is started (its log service listens; it never
// reaches a controller, which this test does not need), run directories are
// laid out by hand, and a log that a workload replaced with a symlink, a
// hard link or a FIFO, or a run directory replaced with a symlink, is
// refused with FAILED_PRECONDITION instead of being followed.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "meridian/v1/meridian.grpc.pb.h"
#include "rpc/rpc.h"

namespace meridian::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class LogServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("logs-", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                        "-", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    AgentOptions o;
    o.controller = "127.0.0.1:1";  // never dialled: Run() is not called
    o.token = "t0ken";  // an insecure cluster's node token: the log service wants it
    o.insecure = true;
    o.name = "n1";
    o.region = "r";
    o.gpus = 0;
    o.cpu_milli = 1000;
    o.memory_mib = 1024;
    o.enforce_limits = false;
    o.data_dir = dir_ + "/agent";
    agent_ = std::make_unique<Agent>(o);
    ASSERT_TRUE(agent_->Start().ok());
    runs_ = dir_ + "/agent/runs";
    fs::create_directories(dir_ + "/secret");
    Write(dir_ + "/secret/shadow", "root:HASH\n");
    rpc::Security plain;
    plain.insecure = true;
    stub_ = v1::AgentLogService::NewStub(rpc::Connect(agent_->address(), plain));
  }
  void TearDown() override {
    stub_.reset();
    agent_.reset();
    fs::remove_all(dir_);
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  // Reads the whole stream; the status and what came.
  grpc::Status Read(const std::string& key, std::string* out, const std::string& stream = "") {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, "t0ken", 10);
    v1::ReadLogRequest req;
    req.set_key(key);
    req.set_stream(stream);
    auto reader = stub_->ReadLog(&ctx, req);
    v1::LogChunk c;
    while (reader->Read(&c)) *out += c.data();
    return reader->Finish();
  }

  std::string dir_, runs_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<v1::AgentLogService::Stub> stub_;
};

TEST_F(LogServiceTest, ServesARegularLog) {
  fs::create_directories(runs_ + "/j1-r0-a0");
  Write(runs_ + "/j1-r0-a0/stdout.log", "hello\n");
  Write(runs_ + "/j1-r0-a0/stderr.log", "oops\n");
  std::string out;
  grpc::Status st = Read("j1-r0-a0", &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out, "hello\n");
  out.clear();
  ASSERT_TRUE(Read("j1-r0-a0", &out, "stderr").ok());
  EXPECT_EQ(out, "oops\n");
  out.clear();
  EXPECT_EQ(Read("j9-r0-a0", &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(LogServiceTest, ASymlinkedLogIsRefusedNotFollowed) {
  fs::create_directories(runs_ + "/j1-r0-a0");
  fs::create_symlink(dir_ + "/secret/shadow", runs_ + "/j1-r0-a0/stdout.log");
  std::string out;
  grpc::Status st = Read("j1-r0-a0", &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("stdout.log is a symbolic link"));
  EXPECT_EQ(out, "");
}

TEST_F(LogServiceTest, ASymlinkedRunDirectoryIsRefused) {
  fs::create_directories(runs_);
  Write(dir_ + "/secret/stdout.log", "secret\n");
  fs::create_directory_symlink(dir_ + "/secret", runs_ + "/j1-r0-a0");
  std::string out;
  grpc::Status st = Read("j1-r0-a0", &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("run directory is a symbolic link"));
  EXPECT_EQ(out, "");
}

TEST_F(LogServiceTest, AHardLinkAFifoOrADirectoryIsRefused) {
  fs::create_directories(runs_ + "/j1-r0-a0");
  std::error_code ec;
  fs::create_hard_link(dir_ + "/secret/shadow", runs_ + "/j1-r0-a0/stdout.log", ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string out;
  grpc::Status st = Read("j1-r0-a0", &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("other hard links"));
  EXPECT_EQ(out, "");

  ASSERT_EQ(::mkfifo((runs_ + "/j1-r0-a0/stderr.log").c_str(), 0600), 0);
  st = Read("j1-r0-a0", &out, "stderr");  // does not block on the FIFO
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("not a regular file"));

  fs::create_directories(runs_ + "/j2-r0-a0/stdout.log");
  st = Read("j2-r0-a0", &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace meridian::agent
