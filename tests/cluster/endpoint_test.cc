// Model endpoints through the whole stack: a controller and agents in three
// regions, `meridian serve` replicas placed by the controller, `meridian
// gateway` following the controller, and clients sending predictions the
// whole time. A region is lost (its agent and replicas killed); a new model
// is rolled out. The clients count every failed request.
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>
#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness.h"

namespace meridian::testing {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;

// Kills every process whose environment holds `entry`.
int KillWithEnv(const std::string& entry, const std::string& also = "") {
  int killed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string env = ReadText(e.path().string() + "/environ");
    auto has = [&](const std::string& x) {
      return x.empty() || env.find(std::string("\0", 1) + x + std::string("\0", 1)) !=
                              std::string::npos ||
             env.rfind(x + std::string("\0", 1), 0) == 0;
    };
    if (has(entry) && has(also)) {
      ::kill(std::atoi(name.c_str()), SIGKILL);
      ++killed;
    }
  }
  return killed;
}

std::string HttpGet(int port, const std::string& target) {
  try {
    net::io_context ioc;
    net::ip::tcp::socket sock(ioc);
    sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    http::request<http::string_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "gateway");
    http::write(sock, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    return res.body();
  } catch (const std::exception&) {
    return "";
  }
}

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Clients sending predictions through the gateway on keep-alive
// connections until stopped; a failure is any answer but 200, or a broken
// connection (then they reconnect).
class Load {
 public:
  // Each client waits `pause_ms` between requests (keeps the machine usable
  // for the processes under test).
  Load(int port, int clients, std::string token, double pause_ms = 1)
      : port_(port), token_(std::move(token)), pause_ms_(pause_ms) {
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  int64_t ok() const { return ok_; }
  int64_t failed() const { return failed_; }

 private:
  void Run() {
    std::string row = "[";
    for (int i = 0; i < 64; ++i) row += i ? ",0.25" : "0.25";
    std::string body = "{\"input\": " + row + "]}";
    while (!stop_) {
      try {
        net::io_context ioc;
        net::ip::tcp::socket sock(ioc);
        sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)});
        timeval tv{10, 0};
        ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        boost::beast::flat_buffer buf;
        while (!stop_) {
          http::request<http::string_body> req(http::verb::post, "/v1/endpoints/digits/predict", 11);
          req.set(http::field::host, "gateway");
          req.set(http::field::authorization, "Bearer " + token_);
          req.keep_alive(true);
          req.body() = body;
          req.prepare_payload();
          http::write(sock, req);
          http::response<http::string_body> res;
          http::read(sock, buf, res);
          if (res.result_int() == 200) {
            ++ok_;
          } else {
            ++failed_;
            last_error_ = res.body();
          }
          if (pause_ms_ > 0)
            std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(pause_ms_));
        }
      } catch (const std::exception&) {
        ++failed_;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

 public:
  std::string last_error_;

 private:
  int port_;
  std::string token_;
  double pause_ms_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ok_{0}, failed_{0};
  std::vector<std::thread> threads_;
};

class EndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string bin = std::filesystem::path(MERIDIAN_BINARY).parent_path().string();
    ::setenv("PATH", absl::StrCat(bin, ":", std::getenv("PATH")).c_str(), 1);
    cluster_ = std::make_unique<Cluster>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    cluster_->StartController(2.0);
    // Every replica of this cluster has its controller's address in its
    // environment (agents give workloads a fresh one): this marks them for
    // the region kill and the clean-up.
    marker_ = "MERIDIAN_CONTROLLER=" + cluster_->address();
    // A spec's model is relative to the tenant's shared directory
    // (<shared>/default here); the agents take --shared-dir from the
    // environment they are started with.
    shared_ = cluster_->root() + "/shared";
    std::filesystem::create_directories(shared_ + "/default");
    ::setenv("MERIDIAN_SHARED_DIR", shared_.c_str(), 1);
    for (const char* r : {"us-east", "eu-west", "ap-south"}) cluster_->StartAgent(r + std::string("-1"), r);
    ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 3; }, 30));
    endpoints_ = v1::EndpointService::NewStub(rpc::Connect(cluster_->address(), cluster_->security()));
    // A model to serve.
    model_ = "model-a";
    ASSERT_EQ(std::system(absl::StrCat(MERIDIAN_BINARY,
                                       " train --dataset synthetic --epochs 1 --quiet --save ",
                                       shared_, "/default/", model_, " > /dev/null")
                              .c_str()),
              0);
  }
  void TearDown() override {
    // The controller, agents and gateway first (no agent restarts a
    // replica then), then what outlives them: every process of this cluster.
    cluster_.reset();
    if (!marker_.empty())
      for (int i = 0; i < 3; ++i) KillWithEnv(marker_);
  }

  grpc::Status Apply(const std::string& spec, v1::Endpoint* out) {
    grpc::ClientContext ctx;
    cluster_->Prepare(&ctx);
    v1::ApplyEndpointRequest req;
    req.set_spec(spec);
    req.set_filename("endpoint.yaml");
    return endpoints_->Apply(&ctx, req, out);
  }
  v1::Endpoint Get() {
    grpc::ClientContext ctx;
    cluster_->Prepare(&ctx, 5);
    v1::GetEndpointRequest req;
    req.set_name("digits");
    v1::Endpoint e;
    (void)endpoints_->Get(&ctx, req, &e);
    return e;
  }
  // Ready replicas of `generation` (0: any), by region.
  std::multiset<std::string> ReadyRegions(const v1::Endpoint& e, int generation = 0) {
    std::multiset<std::string> out;
    for (const auto& r : e.replicas())
      if (r.ready() && (generation == 0 || r.generation() == generation)) out.insert(r.region());
    return out;
  }
  std::string Spec(const std::string& model) {
    return absl::StrCat("kind: endpoint\nname: digits\nmodel: ", model,
                        "\nreplicas: 3\nshape: {cpu: 250m, memory: 128Mi}\ntoken: t0ken\n"
                        "min_ready: 0.5\n");
  }
  int StartGateway() {
    std::string addr_file = cluster_->root() + "/gateway.addr";
    cluster_->StartProcess(
        "gateway", {"gateway", "--controller", cluster_->address(), "--controller-ca-file", cluster_->ca_file(), "--controller-token-file",
                    cluster_->root() + "/controller/token", "--listen", "127.0.0.1:0",
                    "--address-file", addr_file, "--health-interval", "0.2", "--sync-interval",
                    "0.2", "--region", "us-east"});
    std::string addr;
    WaitUntil([&] { return !(addr = ReadText(addr_file)).empty(); }, 20);
    int port = std::atoi(addr.substr(addr.rfind(':') + 1).c_str());
    // Until the gateway has synced the endpoint with its three replicas.
    EXPECT_TRUE(WaitUntil([&] { return CountOf(HttpGet(port, "/gateway/status"), "\"address\"") == 3; },
                          20));
    return port;
  }

  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<v1::EndpointService::Stub> endpoints_;
  std::string model_;   // relative to shared_
  std::string shared_;  // MERIDIAN_SHARED_DIR of the replicas
  std::string marker_;
};

TEST_F(EndpointTest, ALostRegionsTrafficMovesAndItsReplicasAreReplaced) {
  v1::Endpoint e;
  ASSERT_TRUE(Apply(Spec(model_), &e).ok());
  ASSERT_TRUE(WaitUntil([&] { return ReadyRegions(Get()).size() == 3; }, 60))
      << "replicas never ready; logs in " << cluster_->root();
  // One replica per region: spread by the controller.
  EXPECT_EQ(ReadyRegions(Get()), (std::multiset<std::string>{"ap-south", "eu-west", "us-east"}));
  int port = StartGateway();
  Load load(port, 4, "t0ken");
  ASSERT_TRUE(WaitUntil([&] { return load.ok() >= 300; }, 30)) << load.last_error_;

  // us-east goes dark: its agent and its replica die at once.
  cluster_->Kill("us-east-1", SIGKILL);
  ASSERT_GE(KillWithEnv(marker_, "MERIDIAN_REGION=us-east"), 1);
  int64_t at_kill = load.ok() + load.failed();

  // The controller notices (heartbeat timeout) and replaces the replica in
  // another region; the gateway follows.
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::multiset<std::string> r = ReadyRegions(Get());
        return r.size() == 3 && !r.count("us-east");
      },
      60))
      << "lost replica not replaced; logs in " << cluster_->root();
  int64_t at_replaced = load.ok() + load.failed();
  ASSERT_TRUE(WaitUntil([&] { return load.ok() + load.failed() >= at_replaced + 300; }, 30));
  load.Stop();
  int64_t total = load.ok() + load.failed();
  std::printf("failover: %lld of %lld requests failed (%lld sent after the kill)\n",
              static_cast<long long>(load.failed()), static_cast<long long>(total),
              static_cast<long long>(total - at_kill));
  EXPECT_GT(total - at_kill, 300);
  EXPECT_LT(static_cast<double>(load.failed()), 0.01 * static_cast<double>(total))
      << load.failed() << " of " << total << " requests failed; last: " << load.last_error_;
}

TEST_F(EndpointTest, RollingUpdateToANewModelDropsNoRequest) {
  v1::Endpoint e;
  ASSERT_TRUE(Apply(Spec(model_), &e).ok());
  ASSERT_EQ(e.generation(), 1);
  ASSERT_TRUE(WaitUntil([&] { return ReadyRegions(Get()).size() == 3; }, 60));
  int port = StartGateway();
  Load load(port, 4, "t0ken");
  ASSERT_TRUE(WaitUntil([&] { return load.ok() >= 300; }, 30)) << load.last_error_;
  std::string model_b = "model-b";
  std::filesystem::copy_file(shared_ + "/default/" + model_, shared_ + "/default/" + model_b);
  ASSERT_TRUE(Apply(Spec(model_b), &e).ok());
  EXPECT_EQ(e.generation(), 2);
  EXPECT_THAT(e.message(), ::testing::HasSubstr("rolling out generation 2"));
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::Endpoint now = Get();
        return ReadyRegions(now, 2).size() == 3 && now.replicas_size() == 3;
      },
      90))
      << "rollout did not finish; logs in " << cluster_->root();
  int64_t done = load.ok();
  ASSERT_TRUE(WaitUntil([&] { return load.ok() >= done + 200; }, 30));
  load.Stop();
  std::printf("rolling update: %lld of %lld requests failed\n",
              static_cast<long long>(load.failed()), static_cast<long long>(load.ok() + load.failed()));
  EXPECT_EQ(load.failed(), 0) << "last: " << load.last_error_;
  EXPECT_EQ(Get().model(), model_b);
}

TEST_F(EndpointTest, ReplicasFollowDemand) {
  v1::Endpoint e;
  ASSERT_TRUE(Apply(absl::StrCat("kind: endpoint\nname: digits\nmodel: ", model_,
                                 "\nreplicas: {min: 1, max: 3}\nshape: {cpu: 250m, memory: 128Mi}\n"
                                 "token: t0ken\nmin_ready: 0.5\n"
                                 "autoscale: {target_in_flight: 0.5, scale_up_delay: 1, "
                                 "scale_down_delay: 2}\n"),
                    &e)
                  .ok());
  EXPECT_EQ(e.desired_replicas(), 1);
  ASSERT_TRUE(WaitUntil([&] { return ReadyRegions(Get()).size() == 1; }, 60));
  std::string addr_file = cluster_->root() + "/gateway.addr";
  cluster_->StartProcess(
      "gateway", {"gateway", "--controller", cluster_->address(), "--controller-ca-file", cluster_->ca_file(), "--controller-token-file",
                  cluster_->root() + "/controller/token", "--listen", "127.0.0.1:0",
                  "--address-file", addr_file, "--sync-interval", "0.2"});
  std::string addr;
  ASSERT_TRUE(WaitUntil([&] { return !(addr = ReadText(addr_file)).empty(); }, 20));
  int port = std::atoi(addr.substr(addr.rfind(':') + 1).c_str());
  ASSERT_TRUE(WaitUntil([&] { return CountOf(HttpGet(port, "/gateway/status"), "\"address\"") == 1; }, 20));
  {
    // Eight clients keep more than 0.5 requests per replica in flight.
    Load load(port, 8, "t0ken", /*pause_ms=*/0);
    ASSERT_TRUE(WaitUntil(
        [&] {
          v1::Endpoint now = Get();
          return now.desired_replicas() == 3 && ReadyRegions(now).size() == 3;
        },
        60))
        << "never scaled up: " << Get().message();
    load.Stop();
    EXPECT_EQ(load.failed(), 0) << load.last_error_;
  }
  // Idle: back to the minimum after the scale-down delay.
  ASSERT_TRUE(WaitUntil(
      [&] {
        v1::Endpoint now = Get();
        return now.desired_replicas() == 1 && now.replicas_size() == 1;
      },
      60))
      << "never scaled down: " << Get().message();
}

TEST_F(EndpointTest, BadSpecsAndUnknownNamesGetClearErrors) {
  v1::Endpoint e;
  grpc::Status st = Apply("kind: endpoint\nname: Digits!\nmodel: m\n", &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("name"));
  st = Apply(absl::StrCat(Spec(model_), "regions: [mars]\n"), &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("no registered node in region 'mars'"));
  st = Apply("kind: endpoint\nname: x\nmodel: m\nreplicas: {min: 3, max: 2}\n", &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("max is below min"));
  grpc::ClientContext ctx;
  cluster_->Prepare(&ctx);
  v1::GetEndpointRequest req;
  req.set_name("nope");
  st = endpoints_->Get(&ctx, req, &e);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(st.error_message(), ::testing::HasSubstr("endpoint 'nope' not found"));
}

}  // namespace
}  // namespace meridian::testing
