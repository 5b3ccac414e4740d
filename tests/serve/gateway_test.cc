// meridian gateway on real sockets: model servers started in this process
// (some slow or failing by fault injection), the gateway in front, and a
// plain HTTP client. Checks the answers a client sees: tokens, bad input,
// no replica, retries around a failing replica, ejection, draining; and the
// health checks' kept connections.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "raw_http.h"
#include "serve/gateway.h"
#include "serve/http_front.h"
#include "serve/server.h"
#include "train/dataset.h"
#include "train/mlp.h"

namespace meridian::serve {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
namespace net = boost::asio;
namespace http = boost::beast::http;

struct Answer {
  int status = 0;
  std::string body, replica;
};

// One HTTP client connection, keep-alive, with a 10 s receive timeout so a
// hang fails the test instead of blocking it.
class Client {
 public:
  explicit Client(int port) : sock_(ioc_) {
    sock_.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    timeval tv{10, 0};
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  Answer Send(http::verb method, const std::string& target, const std::string& body,
              const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "gateway");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    http::write(sock_, req);
    http::response<http::string_body> res;
    http::read(sock_, buf_, res);
    Answer a;
    a.status = res.result_int();
    a.body = res.body();
    if (auto it = res.find("X-Meridian-Replica"); it != res.end()) a.replica = std::string(it->value());
    return a;
  }

 private:
  net::io_context ioc_;
  net::ip::tcp::socket sock_;
  boost::beast::flat_buffer buf_;
};

// A replica that answers exactly one health check (GET /readyz, GET
// /metrics, both keep-alive) per connection and then closes it: every check
// finds the connection the gateway kept closed. Notes, at each connection
// after the first, whether the watched gateway saw the replica as healthy.
class OneCheckPerConnection {
 public:
  OneCheckPerConnection() : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { Run(); });
  }
  ~OneCheckPerConnection() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // ends the blocking accept
    thread_.join();
  }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  void Watch(const Gateway* g) { gateway_ = g; }
  int connections() const { return connections_; }
  int unhealthy_at_accept() const { return unhealthy_at_accept_; }

 private:
  void Run() {
    for (;;) {
      net::ip::tcp::socket sock(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec) return;
      if (++connections_ > 1 && gateway_ != nullptr) {
        Json s = Json::parse(gateway_.load()->StatusJson());
        if (s["endpoints"][0]["replicas"][0]["healthy"] != true) ++unhealthy_at_accept_;
      }
      boost::beast::flat_buffer buf;
      for (const char* body : {R"({"status": "ready"})", R"({"in_flight": 0})"}) {
        http::request<http::string_body> req;
        http::read(sock, buf, req, ec);
        if (ec) break;
        http::response<http::string_body> res(http::status::ok, 11);
        res.keep_alive(true);
        res.body() = body;
        res.prepare_payload();
        http::write(sock, res, ec);
      }
      sock.close(ec);
    }
  }

  net::io_context ioc_;
  net::ip::tcp::acceptor acceptor_;
  std::atomic<const Gateway*> gateway_{nullptr};
  std::atomic<int> connections_{0}, unhealthy_at_accept_{0};
  std::thread thread_;
};

// A replica that records the header of every request it gets (as the
// gateway sent it) and answers each 200, keep-alive.
class RecordingReplica {
 public:
  RecordingReplica() : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { Run(); });
  }
  ~RecordingReplica() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // ends the blocking accept
    thread_.join();
    for (auto& sock : socks_) ::shutdown(sock->native_handle(), SHUT_RDWR);  // ends blocking reads
    for (std::thread& t : conns_) t.join();
  }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  std::vector<std::string> headers() {
    std::lock_guard<std::mutex> l(mu_);
    return headers_;
  }

 private:
  void Run() {
    for (;;) {
      auto sock = std::make_shared<net::ip::tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (ec) return;
      socks_.push_back(sock);
      conns_.emplace_back([this, sock] {
        boost::beast::flat_buffer buf;
        for (;;) {
          boost::system::error_code ec;
          http::request<http::string_body> req;
          http::read(*sock, buf, req, ec);
          if (ec) return;
          {
            std::lock_guard<std::mutex> l(mu_);
            std::ostringstream h;
            h << req.base();
            headers_.push_back(h.str());
          }
          http::response<http::string_body> res(http::status::ok, 11);
          res.keep_alive(true);
          res.body() = R"({"predictions": [0]})";
          res.prepare_payload();
          http::write(*sock, res, ec);
          if (ec) return;
        }
      });
    }
  }

  net::io_context ioc_;
  net::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::vector<std::thread> conns_;
  std::vector<std::shared_ptr<net::ip::tcp::socket>> socks_;  // touched by thread_, then ~
  std::mutex mu_;
  std::vector<std::string> headers_;
};

class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    train::Dataset all = train::SyntheticDigits(300, 3), tr, te;
    train::Split(all, 0.25, 3, &tr, &te);
    train::TrainOptions o;
    o.epochs = 2;
    o.hidden = {16};
    model_ = new train::Mlp({64, 16, 10}, 1);
    train::TrainLocal(tr, te, o, model_);
  }
  static void TearDownTestSuite() { delete model_; }

  ModelServer* Replica(double delay_ms = 0, double error_rate = 0) {
    ServerOptions o;
    o.inject_delay_ms = delay_ms;
    o.inject_error_rate = error_rate;
    auto s = ModelServer::Start(*model_, o);
    EXPECT_TRUE(s.ok()) << s.status();
    replicas_.push_back(*std::move(s));
    return replicas_.back().get();
  }
  Gateway* Start(std::vector<EndpointConfig> eps, GatewayOptions o = {}) {
    o.listen = "127.0.0.1:0";
    if (o.health.interval_s == 1.0) o.health.interval_s = 0.05;
    auto g = Gateway::Start(o, std::move(eps), &clock_);
    EXPECT_TRUE(g.ok()) << g.status();
    gateway_ = *std::move(g);
    return gateway_.get();
  }
  static std::string Input() {
    Json row = Json::array();
    for (int i = 0; i < 64; ++i) row.push_back(0.25);
    return Json{{"input", row}}.dump();
  }

  static train::Mlp* model_;
  SystemClock clock_;
  std::vector<std::unique_ptr<ModelServer>> replicas_;
  std::unique_ptr<Gateway> gateway_;  // declared last: stops first
};
train::Mlp* GatewayTest::model_ = nullptr;

TEST_F(GatewayTest, ForwardsPredictionsAndSpreadsThem) {
  EndpointConfig ep{"digits", {}, ""};
  for (int i = 0; i < 3; ++i) ep.hosts.push_back({Replica()->address(), "us"});
  Gateway* g = Start({ep});
  Client c(g->port());
  std::map<std::string, int> seen;
  for (int i = 0; i < 60; ++i) {
    Answer a = c.Send(http::verb::post, "/v1/endpoints/digits/predict", Input());
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(Json::parse(a.body)["predictions"].size(), 1u);
    ++seen[a.replica];
  }
  EXPECT_EQ(seen.size(), 3u) << "every replica answered some";
  // With one endpoint, /v1/predict needs no name.
  EXPECT_EQ(c.Send(http::verb::post, "/v1/predict", Input()).status, 200);
  Json status = Json::parse(c.Send(http::verb::get, "/gateway/status", "").body);
  EXPECT_EQ(status["endpoints"][0]["requests"], 61);
  EXPECT_EQ(status["endpoints"][0]["failed"], 0);
}

TEST_F(GatewayTest, TheLocalityPolicyKeepsCallersInTheirZone) {
  ModelServer* us_a = Replica();
  ModelServer* us_b = Replica();
  ModelServer* eu_a = Replica();
  ModelServer* eu_b = Replica();
  EndpointConfig ep{"digits", {}, ""};
  ep.hosts.push_back({us_a->address(), "us", true, "a"});
  ep.hosts.push_back({us_b->address(), "us", true, "b"});
  ep.hosts.push_back({eu_a->address(), "eu", true, "a"});
  ep.hosts.push_back({eu_b->address(), "eu", true, "b"});
  GatewayOptions o;
  o.policy = "locality";
  o.region = "us";
  o.zone = "a";
  o.outlier.slow_factor = 0;  // only locality decides here
  Gateway* g = Start({ep}, o);
  Client c(g->port());
  auto replicas = [&](const std::map<std::string, std::string>& headers) {
    std::set<std::string> seen;
    for (int i = 0; i < 30; ++i) {
      Answer a = c.Send(http::verb::post, "/v1/predict", Input(), headers);
      EXPECT_EQ(a.status, 200) << a.body;
      seen.insert(a.replica);
    }
    return seen;
  };
  // No headers: the gateway's region and zone.
  EXPECT_EQ(replicas({}), std::set<std::string>{us_a->address()});
  // The caller's own zone.
  EXPECT_EQ(replicas({{"X-Meridian-Zone", "b"}}), std::set<std::string>{us_b->address()});
  // A caller from another region without a zone: that region, either zone
  // (the gateway's zone is not the caller's).
  EXPECT_EQ(replicas({{"X-Meridian-Region", "eu"}}),
            (std::set<std::string>{eu_a->address(), eu_b->address()}));
  Json status = Json::parse(c.Send(http::verb::get, "/gateway/status", "").body);
  EXPECT_EQ(status["zone"], "a");
  std::set<std::string> zones;
  for (const Json& r : status["endpoints"][0]["replicas"]) zones.insert(r["zone"]);
  EXPECT_EQ(zones, (std::set<std::string>{"a", "b"}));
}

TEST_F(GatewayTest, BadInputGetsAClearAnswer) {
  GatewayOptions o;
  o.max_body_bytes = 4096;
  Gateway* g = Start({EndpointConfig{"digits", {{Replica()->address(), ""}}, ""}}, o);
  Client c(g->port());
  Answer bad = c.Send(http::verb::post, "/v1/endpoints/digits/predict", "{\"input\": [1,");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("malformed JSON"));
  Answer size = c.Send(http::verb::post, "/v1/endpoints/digits/predict", "{\"input\": [1, 2]}");
  EXPECT_EQ(size.status, 400);
  EXPECT_THAT(size.body, HasSubstr("has 2 values; the model takes 64"));
  Answer unknown = c.Send(http::verb::post, "/v1/endpoints/nope/predict", Input());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body, HasSubstr("no endpoint 'nope'; endpoints: digits"));
  // 4xx answers are the caller's fault: they neither retry nor eject.
  Json status = Json::parse(c.Send(http::verb::get, "/gateway/status", "").body);
  EXPECT_EQ(status["endpoints"][0]["replicas"][0]["errors"], 0);
  Client c2(g->port());
  Answer big = c2.Send(http::verb::post, "/v1/endpoints/digits/predict", std::string(8192, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_THAT(big.body, HasSubstr("over the limit of 4096 bytes"));
}

TEST_F(GatewayTest, EndpointTokensAreChecked) {
  Gateway* g = Start({EndpointConfig{"private", {{Replica()->address(), ""}}, "s3cret"},
                      EndpointConfig{"open", {{Replica()->address(), ""}}, ""}});
  Client c(g->port());
  Answer none = c.Send(http::verb::post, "/v1/endpoints/private/predict", Input());
  EXPECT_EQ(none.status, 401);
  EXPECT_THAT(none.body, HasSubstr("needs a bearer token"));
  Answer wrong = c.Send(http::verb::post, "/v1/endpoints/private/predict", Input(),
                        {{"Authorization", "Bearer guess"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_THAT(wrong.body, HasSubstr("wrong token"));
  EXPECT_EQ(c.Send(http::verb::post, "/v1/endpoints/private/predict", Input(),
                   {{"Authorization", "Bearer s3cret"}})
                .status,
            200);
  EXPECT_EQ(c.Send(http::verb::post, "/v1/endpoints/open/predict", Input()).status, 200);
  Answer ambiguous = c.Send(http::verb::post, "/v1/predict", Input());
  EXPECT_EQ(ambiguous.status, 404) << "two endpoints: the path must name one";
}

TEST_F(GatewayTest, NoReachableReplicaIsA503NotAHang) {
  ModelServer* r = Replica();
  std::string addr = r->address();
  r->Stop();  // nothing listens there any more
  Gateway* g = Start({EndpointConfig{"digits", {{addr, ""}}, ""}});
  Client c(g->port());
  for (int i = 0; i < 20; ++i) {
    Answer a = c.Send(http::verb::post, "/v1/endpoints/digits/predict", Input());
    EXPECT_EQ(a.status, 503) << a.body;
    EXPECT_THAT(a.body, ::testing::AnyOf(HasSubstr("could be reached"),
                                         HasSubstr("no healthy replica for endpoint digits")));
  }
}

TEST_F(GatewayTest, AReplicaPastTheUpstreamTimeoutIsA504NotAHang) {
  GatewayOptions o;
  o.upstream_timeout_s = 0.2;  // the watchdog cancels the read; the replica takes 1.5 s
  o.retries = 0;
  Gateway* g = Start({EndpointConfig{"digits", {{Replica(1500)->address(), ""}}, ""}}, o);
  Client c(g->port());
  Answer a = c.Send(http::verb::post, "/v1/endpoints/digits/predict", Input());
  EXPECT_EQ(a.status, 504) << a.body;
  EXPECT_THAT(a.body, HasSubstr("timed out after 0.2 s"));
  // The gateway itself still answers on the same client connection.
  EXPECT_EQ(c.Send(http::verb::get, "/healthz", "").status, 200);
}

TEST_F(GatewayTest, AnEndpointWithoutReplicasIsA503AtOnce) {
  Gateway* g = Start({EndpointConfig{"digits", {}, ""}});
  Client c(g->port());
  Answer a = c.Send(http::verb::post, "/v1/endpoints/digits/predict", Input());
  EXPECT_EQ(a.status, 503);
  EXPECT_THAT(a.body, HasSubstr("no healthy replica for endpoint digits (0 replicas"));
}

TEST_F(GatewayTest, RetriesAroundAFailingReplicaAndEjectsIt) {
  EndpointConfig ep{"digits", {}, ""};
  ep.hosts.push_back({Replica(0, 1.0)->address(), ""});  // every prediction: 500
  ep.hosts.push_back({Replica()->address(), ""});
  ep.hosts.push_back({Replica()->address(), ""});
  GatewayOptions o;
  o.outlier.consecutive_errors = 3;
  o.outlier.base_ejection_s = 60;
  Gateway* g = Start({ep}, o);
  Client c(g->port());
  for (int i = 0; i < 100; ++i) {
    Answer a = c.Send(http::verb::post, "/v1/endpoints/digits/predict", Input());
    ASSERT_EQ(a.status, 200) << "request " << i << ": " << a.body;
    EXPECT_NE(a.replica, ep.hosts[0].id);
  }
  Json status = Json::parse(c.Send(http::verb::get, "/gateway/status", "").body);
  Json failing;
  for (const Json& r : status["endpoints"][0]["replicas"])
    if (r["address"] == ep.hosts[0].id) failing = r;
  EXPECT_EQ(failing["ejected"], true);
  EXPECT_EQ(failing["errors"], 3) << "ejected after 3 consecutive errors, then left alone";
  EXPECT_THAT(failing["last_ejection"].get<std::string>(), HasSubstr("3 consecutive errors"));
  EXPECT_EQ(status["endpoints"][0]["failed"], 0);
}

TEST_F(GatewayTest, WithoutRetriesOnlyTheRequestsBeforeEjectionFail) {
  EndpointConfig ep{"digits", {}, ""};
  ep.hosts.push_back({Replica(0, 1.0)->address(), ""});
  ep.hosts.push_back({Replica()->address(), ""});
  GatewayOptions o;
  o.retries = 0;
  o.outlier.consecutive_errors = 2;
  o.outlier.base_ejection_s = 60;
  Gateway* g = Start({ep}, o);
  Client c(g->port());
  int failed = 0;
  for (int i = 0; i < 100; ++i) failed += c.Send(http::verb::post, "/v1/predict", Input()).status != 200;
  EXPECT_EQ(failed, 2);
}

TEST_F(GatewayTest, ADrainingReplicaGetsNoNewRequests) {
  ModelServer* a = Replica();
  ModelServer* b = Replica();
  GatewayOptions o;
  o.health.unhealthy_threshold = 1;
  Gateway* g = Start({EndpointConfig{"digits", {{a->address(), ""}, {b->address(), ""}}, ""}}, o);
  a->Drain();  // /readyz answers 503 from now on
  // Wait (bounded) until a health check has seen it.
  for (int i = 0; i < 200; ++i) {
    Json s = Json::parse(g->StatusJson());
    bool unhealthy = false;
    for (const Json& r : s["endpoints"][0]["replicas"])
      if (r["address"] == a->address()) unhealthy = r["healthy"] == false;
    if (unhealthy) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  Client c(g->port());
  for (int i = 0; i < 30; ++i) {
    Answer r = c.Send(http::verb::post, "/v1/predict", Input());
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.replica, b->address());
  }
}

TEST_F(GatewayTest, HealthChecksKeepOneConnectionPerReplica) {
  ModelServer* a = Replica();
  Start({EndpointConfig{"digits", {{a->address(), ""}}, ""}});  // a check every 50 ms
  // Wait (bounded) for ten checks, two requests each (/readyz, /metrics).
  for (int i = 0; i < 400 && a->metrics().requests < 20; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_GE(a->metrics().requests, 20u);
  // One connection, kept from check to check: a replica serves each
  // connection with a thread, and a new one per check would cost a thread.
  EXPECT_EQ(a->metrics().connections, 1u);
}

TEST_F(GatewayTest, AKeptHealthCheckConnectionTheReplicaClosedIsReplacedInTheSameCheck) {
  OneCheckPerConnection replica;
  GatewayOptions o;
  o.health.unhealthy_threshold = 1;  // one failed check would mark it unhealthy
  o.health.healthy_threshold = 1;
  Gateway* g = Start({EndpointConfig{"digits", {{replica.address(), ""}}, ""}}, o);
  replica.Watch(g);
  // Wait (bounded) for six connections: one per check, as each finds the last closed.
  for (int i = 0; i < 400 && replica.connections() < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_GE(replica.connections(), 6);
  // Each new connection came from a check that found the kept one closed and
  // tried again at once: no check failed, so the replica never looked unhealthy.
  EXPECT_EQ(replica.unhealthy_at_accept(), 0);
}

TEST_F(GatewayTest, EndpointsCanBeReplacedWhileServing) {
  ModelServer* a = Replica();
  ModelServer* b = Replica();
  Gateway* g = Start({EndpointConfig{"digits", {{a->address(), ""}}, ""}});
  Client c(g->port());
  EXPECT_EQ(c.Send(http::verb::post, "/v1/predict", Input()).replica, a->address());
  g->SetEndpoints({EndpointConfig{"digits", {{b->address(), ""}}, "t"}});
  EXPECT_EQ(c.Send(http::verb::post, "/v1/predict", Input()).status, 401);
  EXPECT_EQ(c.Send(http::verb::post, "/v1/predict", Input(), {{"Authorization", "Bearer t"}}).replica,
            b->address());
}

TEST_F(GatewayTest, ZeroThreadsMeansOnePerUsableCpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  GatewayOptions o;
  o.threads = 0;
  Gateway* g = Start({EndpointConfig{"digits", {{Replica()->address(), "us"}}, ""}}, o);
  Client c(g->port());
  Json status = Json::parse(c.Send(http::verb::get, "/gateway/status", "").body);
  EXPECT_EQ(status["threads"], CPU_COUNT(&set));
  EXPECT_EQ(c.Send(http::verb::post, "/v1/predict", Input()).status, 200);
}

// Request smuggling: `Transfer-Encoding: xchunked` reached the replica
// with `Content-Length: 0` added, the rest of the bytes read as another
// request. Refused, and nothing reaches the replica.
TEST_F(GatewayTest, AmbiguousTransferEncodingIs400) {
  RecordingReplica replica;
  GatewayOptions o;
  o.health.interval_s = 0;
  Gateway* g = Start({EndpointConfig{"m", {{replica.address(), ""}}, ""}}, o);
  const std::string smuggled = "GET /v1/admin HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string& framing :
       {std::string("Transfer-Encoding: xchunked\r\n"),
        std::string("Transfer-Encoding: gzip, chunked\r\n"),
        std::string("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        std::string("Transfer-Encoding: chunked\r\nContent-Length: 40\r\n"),
        std::string("Content-Length: 40\r\nContent-Length: 40\r\n"),
        std::string("Content-Length: 40, 40\r\n")}) {
    rawhttp::RawConn c(g->port());
    c.Send("POST /v1/endpoints/m/predict HTTP/1.1\r\nHost: g\r\n" + framing + "\r\n" + smuggled);
    auto [code, body] = c.Read();
    EXPECT_EQ(code, 400) << framing << body;
    EXPECT_TRUE(c.ClosedByPeer()) << framing;
  }
  EXPECT_THAT(replica.headers(), ::testing::IsEmpty());
  // A plain chunked request still goes through, as Content-Length.
  rawhttp::RawConn c(g->port());
  c.Send(
      "POST /v1/endpoints/m/predict HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(c.Read().first, 200);
  ASSERT_EQ(replica.headers().size(), 1u);
  EXPECT_THAT(replica.headers()[0], HasSubstr("Content-Length: 2"));
  EXPECT_THAT(replica.headers()[0], ::testing::Not(HasSubstr("Transfer-Encoding")));
}

TEST_F(GatewayTest, HopByHopHeadersAreNotForwarded) {
  RecordingReplica replica;
  GatewayOptions o;
  o.health.interval_s = 0;
  Gateway* g = Start({EndpointConfig{"m", {{replica.address(), ""}}, ""}}, o);
  rawhttp::RawConn c(g->port());
  c.Send(
      "POST /v1/endpoints/m/predict HTTP/1.1\r\nHost: g\r\nConnection: keep-alive, X-Secret\r\n"
      "X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\n"
      "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\n"
      "X-Kept: yes\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(c.Read().first, 200);
  ASSERT_EQ(replica.headers().size(), 1u);
  std::string h = replica.headers()[0];
  for (const char* gone :
       {"X-Secret", "Keep-Alive: timeout", "Proxy-", "TE:", "Trailer", "Upgrade", "websocket"})
    EXPECT_THAT(h, ::testing::Not(HasSubstr(gone))) << h;
  EXPECT_THAT(h, HasSubstr("X-Kept: yes"));
  EXPECT_THAT(h, HasSubstr("POST /v1/predict HTTP/1.1"));
}

TEST_F(GatewayTest, DotSegmentsAndEncodedSlashesInPathsAre400) {
  RecordingReplica replica;
  GatewayOptions o;
  o.health.interval_s = 0;
  Gateway* g = Start({EndpointConfig{"m", {{replica.address(), ""}}, ""},
                      EndpointConfig{"other", {{replica.address(), ""}}, "t0ken"}},
                     o);
  Client c(g->port());
  for (const char* target :
       {"/v1/endpoints/m/../other/predict", "/v1/endpoints/m/%2e%2e/other/predict",
        "/v1/endpoints/m/%2E./predict", "/v1/endpoints/m%2fother/predict", "/v1/endpoints//predict",
        "/v1/endpoints/m/./predict", "/v1/endpoints/m\\predict", "/v1/endpoints/m/predict%00",
        "/v1/endpoints/m/%252e%252e/predict"}) {
    Answer a = c.Send(http::verb::post, target, "{}");
    EXPECT_EQ(a.status, 400) << target << " " << a.body;
  }
  EXPECT_THAT(replica.headers(), ::testing::IsEmpty());
  EXPECT_EQ(c.Send(http::verb::post, "/v1/endpoints/m/predict?x=1", "{}").status, 200);
  ASSERT_EQ(replica.headers().size(), 1u);
  EXPECT_THAT(replica.headers()[0], HasSubstr("POST /v1/predict?x=1 HTTP/1.1"));
}

TEST(HttpFront, RoutesOnlyNormalPaths) {
  auto route = front::RouteTarget("/v1/endpoints/digits/predict?a=b");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->endpoint, "digits");
  EXPECT_EQ(route->upstream_target, "/v1/predict?a=b");
  EXPECT_EQ(front::RouteTarget("/healthz")->kind, front::Route::Kind::kHealth);
  EXPECT_TRUE(absl::IsNotFound(front::RouteTarget("/nope").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(front::RouteTarget("http://x/v1/predict").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(front::RouteTarget("/v1/a/..").status()));
  EXPECT_TRUE(front::RouteTarget("/v1/endpoints/m/").ok());  // a trailing slash is fine
  front::FrontResult r = front::ParseFront(
      "POST /v1/predict HTTP/1.1\r\nHost: g\r\nConnection: close, X-A\r\nX-A: 1\r\n"
      "Content-Length: 2\r\n\r\n{}",
      1024);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.request.count("X-A"), 0u);
  EXPECT_EQ(r.request.body(), "{}");
  EXPECT_EQ(front::ParseFront("POST /v1/predict HTTP/1.1\r\nContent-Length: 9\r\n\r\n{}", 4).status,
            413);
  EXPECT_EQ(front::ParseFront("POST /v1/predict HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 4)
                .status,
            400);
}

TEST_F(GatewayTest, SlowAndIdleClientsAreDisconnected) {
  GatewayOptions o;
  o.request_timeout_s = 0.3;
  o.idle_timeout_s = 0.3;
  Gateway* g = Start({EndpointConfig{"digits", {{Replica()->address(), ""}}, ""}}, o);
  rawhttp::RawConn half(g->port());
  half.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le");
  EXPECT_TRUE(half.ClosedByPeer());
  rawhttp::RawConn slow_body(g->port());
  slow_body.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in");
  EXPECT_TRUE(slow_body.ClosedByPeer());
  rawhttp::RawConn idle(g->port());
  idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(idle.Read().first, 200);
  EXPECT_TRUE(idle.ClosedByPeer());
}

TEST_F(GatewayTest, ConnectionsOverTheCapGet503) {
  GatewayOptions o;
  o.max_connections = 3;
  Gateway* g = Start({EndpointConfig{"digits", {{Replica()->address(), ""}}, ""}}, o);
  std::vector<std::unique_ptr<rawhttp::RawConn>> conns;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(std::make_unique<rawhttp::RawConn>(g->port()));
    conns.back()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(conns.back()->Read().first, 200);
  }
  rawhttp::RawConn extra(g->port());
  auto [code, body] = extra.Read();
  EXPECT_EQ(code, 503) << body;
  EXPECT_THAT(body, HasSubstr("too many connections"));
  EXPECT_TRUE(extra.ClosedByPeer());
  conns.clear();
  // The closed ones free their places (bounded wait).
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    rawhttp::RawConn again(g->port());
    again.Send("GET /gateway/status HTTP/1.1\r\nHost: x\r\n\r\n");
    auto [c2, b2] = again.Read();
    status = c2;
    if (status == 200) {
      EXPECT_GE(Json::parse(b2)["connections_refused"].get<int>(), 1);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_EQ(status, 200);
}

// HTTPS in front (--tls-cert/--tls-key) and to a replica that offers it
// (https:// address, verified against --upstream-ca), health checks too.
TEST_F(GatewayTest, ServesHttpsAndReachesHttpsReplicas) {
  std::string dir = ::testing::TempDir() + "/gw-tls-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(rawhttp::MakeSelfSignedCert(dir));
  ServerOptions so;
  so.tls_cert = dir + "/cert.pem";
  so.tls_key = dir + "/key.pem";
  auto replica = ModelServer::Start(*model_, so);
  ASSERT_TRUE(replica.ok()) << replica.status();
  GatewayOptions o;
  o.tls_cert = so.tls_cert;
  o.tls_key = so.tls_key;
  o.upstream_ca = so.tls_cert;
  o.health.unhealthy_threshold = 1;
  std::string host = "https://" + (*replica)->address();
  Gateway* g = Start({EndpointConfig{"digits", {{host, ""}}, ""}}, o);
  auto [code, body] = rawhttp::HttpsExchange(g->port(), so.tls_cert, http::verb::post,
                                             "/v1/endpoints/digits/predict", Input());
  EXPECT_EQ(code, 200) << body;
  EXPECT_THAT(body, HasSubstr(host));
  // Health checks reach it over TLS: it stays healthy through several.
  for (int i = 0; i < 400 && (*replica)->metrics().requests < 8; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  Json status = Json::parse(rawhttp::HttpsExchange(g->port(), so.tls_cert, http::verb::get,
                                                   "/gateway/status", "")
                                .second);
  EXPECT_EQ(status["endpoints"][0]["replicas"][0]["healthy"], true) << status.dump();
  // Plain HTTP to the gateway gets nothing.
  rawhttp::RawConn plain(g->port(), 5);
  plain.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(plain.Read().first, 0);
  // A replica whose certificate the CA does not vouch for is not trusted.
  std::string other = dir + "/other";
  std::filesystem::create_directories(other);
  ASSERT_TRUE(rawhttp::MakeSelfSignedCert(other));
  GatewayOptions o2;
  o2.upstream_ca = other + "/cert.pem";
  o2.health.interval_s = 0;
  o2.listen = "127.0.0.1:0";
  auto g2 = Gateway::Start(o2, {EndpointConfig{"digits", {{host, ""}}, ""}}, &clock_);
  ASSERT_TRUE(g2.ok()) << g2.status();
  Client c((*g2)->port());
  Answer a = c.Send(http::verb::post, "/v1/predict", Input());
  EXPECT_EQ(a.status, 502) << a.body;
  EXPECT_THAT(a.body, HasSubstr("TLS handshake"));
  (*g2)->Stop();
  std::filesystem::remove_all(dir);
}

TEST(GatewayOptionsTest, BadPolicyOrListenAddressIsRefused) {
  SystemClock clock;
  GatewayOptions o;
  o.policy = "fastest";
  auto g = Gateway::Start(o, {}, &clock);
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), HasSubstr("unknown load-balancing policy 'fastest'"));
  GatewayOptions l;
  l.listen = "nowhere";
  auto g2 = Gateway::Start(l, {}, &clock);
  ASSERT_FALSE(g2.ok());
  EXPECT_THAT(g2.status().message(), HasSubstr("is not HOST:PORT"));
}

}  // namespace
}  // namespace meridian::serve
