// meridian serve: model files, the request handler, and the HTTP server on
// a real socket (keep-alive, size limits).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "raw_http.h"
#include "serve/predict_request.h"
#include "serve/server.h"
#include "train/dataset.h"
#include "train/mlp.h"

namespace meridian::serve {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
namespace net = boost::asio;
namespace http = boost::beast::http;

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    train::Dataset all = train::SyntheticDigits(600, 9);
    train::Split(all, 0.25, 9, &train_, &test_);
    train::TrainOptions o;
    o.epochs = 5;
    train::TrainLocal(train_, test_, o, &model_);
    dir_ = ::testing::TempDir() + "/serve-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Json Row(int i) const {
    Json r = Json::array();
    for (Eigen::Index k = 0; k < test_.x.cols(); ++k) r.push_back(test_.x(i, k));
    return r;
  }

  train::Dataset train_, test_;
  train::Mlp model_{{1, 1}, 0};
  std::string dir_;
};

TEST_F(ServeTest, ModelFilesRoundTripAndBadFilesAreErrors) {
  std::string path = dir_ + "/m.bin";
  ASSERT_TRUE(train::SaveModel(path, model_).ok());
  absl::StatusOr<train::Mlp> back = train::LoadModel(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sizes(), model_.sizes());
  EXPECT_TRUE(back->params() == model_.params());
  EXPECT_TRUE(absl::IsNotFound(train::LoadModel(dir_ + "/none").status()));
  std::ofstream(dir_ + "/junk") << "not a model at all";
  EXPECT_THAT(std::string(train::LoadModel(dir_ + "/junk").status().message()),
              HasSubstr("not a Meridian model"));
  std::string data;
  {
    std::ifstream in(path, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(dir_ + "/short", std::ios::binary) << data.substr(0, data.size() - 8);
  EXPECT_THAT(std::string(train::LoadModel(dir_ + "/short").status().message()),
              HasSubstr("truncated"));
}

TEST_F(ServeTest, PredictMatchesTheModelAndBadRequestsGetClearErrors) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  ModelServer& srv = **s;
  std::vector<int> want = model_.Predict(test_.x.topRows(3));
  auto [code, body] = srv.Handle("POST", "/v1/predict", Json{{"input", Row(0)}}.dump());
  ASSERT_EQ(code, 200) << body;
  Json one = Json::parse(body);
  EXPECT_EQ(one["predictions"], Json::array({want[0]}));
  EXPECT_NEAR(one["probabilities"][0].get<std::vector<double>>()[size_t(want[0])], 1.0, 0.5);
  auto [code3, body3] =
      srv.Handle("POST", "/v1/predict", Json{{"inputs", {Row(0), Row(1), Row(2)}}}.dump());
  ASSERT_EQ(code3, 200) << body3;
  EXPECT_EQ(Json::parse(body3)["predictions"].get<std::vector<int>>(), want);

  auto error = [&](const std::string& method, const std::string& target, const std::string& b) {
    auto [c, out] = srv.Handle(method, target, b);
    return std::make_pair(c, Json::parse(out).value("error", std::string()));
  };
  auto [c1, e1] = error("POST", "/v1/predict", "{\"input\": [1, 2,");
  EXPECT_EQ(c1, 400);
  EXPECT_THAT(e1, HasSubstr("malformed JSON"));
  auto [c2, e2] = error("POST", "/v1/predict", "{\"input\": [1, 2, 3]}");
  EXPECT_EQ(c2, 400);
  EXPECT_THAT(e2, HasSubstr("input 0 has 3 values; the model takes 64"));
  Json bad = Row(0);
  bad[5] = "x";
  auto [c3, e3] = error("POST", "/v1/predict", Json{{"inputs", {Row(0), bad}}}.dump());
  EXPECT_EQ(c3, 400);
  EXPECT_THAT(e3, HasSubstr("input 1 value 5 is not a number"));
  EXPECT_EQ(error("POST", "/v1/predict", "{\"inputs\": []}").first, 400);
  EXPECT_EQ(error("POST", "/v1/predict", "[1, 2]").first, 400);
  EXPECT_EQ(error("GET", "/v1/predict", "").first, 405);
  EXPECT_EQ(error("GET", "/nope", "").first, 404);

  EXPECT_EQ(srv.Handle("GET", "/healthz", "").first, 200);
  EXPECT_EQ(srv.Handle("GET", "/readyz", "").first, 200);
  srv.Drain();
  EXPECT_EQ(srv.Handle("GET", "/readyz", "").first, 503);
  EXPECT_EQ(srv.Handle("GET", "/healthz", "").first, 200);
}

// One HTTP/1.1 exchange on an open connection.
http::response<http::string_body> Exchange(net::ip::tcp::socket& sock, http::verb verb,
                                           const std::string& target, const std::string& body) {
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(sock, buf, res);
  return res;
}

TEST_F(ServeTest, ServesOverHttpWithKeepAliveAndLimits) {
  ServerOptions o;
  o.max_body_bytes = 4096;
  o.name = "test-model";
  auto s = ModelServer::Start(model_, o);
  ASSERT_TRUE(s.ok()) << s.status();
  net::io_context ioc;
  net::ip::tcp::socket sock(ioc);
  sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>((*s)->port())});
  // Two requests on one connection.
  for (int i = 0; i < 2; ++i) {
    auto res = Exchange(sock, http::verb::post, "/v1/predict", Json{{"input", Row(i)}}.dump());
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(Json::parse(res.body())["predictions"][0].get<int>(),
              model_.Predict(test_.x.row(i))[0]);
  }
  auto metrics = Exchange(sock, http::verb::get, "/metrics", "");
  EXPECT_EQ(Json::parse(metrics.body())["requests"].get<int>(), 2);
  EXPECT_EQ(Json::parse(metrics.body())["model"], "test-model");
  // Over the limit: 413, and the server closes that connection.
  auto big = Exchange(sock, http::verb::post, "/v1/predict", std::string(8000, ' '));
  EXPECT_EQ(big.result_int(), 413);
  EXPECT_THAT(big.body(), HasSubstr("over the limit"));
  // A new connection still works; the server stops with it open.
  net::ip::tcp::socket again(ioc);
  again.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>((*s)->port())});
  EXPECT_EQ(Exchange(again, http::verb::get, "/readyz", "").result_int(), 200);
  (*s)->Stop();
  EXPECT_EQ((*s)->metrics().errors, 1u);
}

// The error message of an answer, which must be JSON whatever the input.
std::string ErrorOf(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  EXPECT_TRUE(j.is_object()) << body;
  return j.is_object() ? j.value("error", std::string()) : std::string();
}

std::string Repeat(const std::string& one, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + one;
  return out;
}

// The outside tester's crashes: a number that overflows a double (also as
// a 400-digit integer) threw out of nlohmann and killed the process.
TEST_F(ServeTest, OverflowingNumberIs400NotACrash) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  for (const std::string& big :
       {std::string("1e400"), std::string(400, '9'), std::string("-") + std::string(400, '7')}) {
    std::string body = "{\"input\": [" + big + ", " + Repeat("0", 63) + "]}";
    auto [code, out] = (*s)->Handle("POST", "/v1/predict", body);
    EXPECT_EQ(code, 400) << out;
    EXPECT_THAT(ErrorOf(out), HasSubstr("number overflow")) << big.substr(0, 10);
  }
  // And over a socket: the server answers, then still serves.
  rawhttp::RawConn c((*s)->port());
  std::string body = "{\"input\": [1e400]}";
  c.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body);
  auto [code, out] = c.Read();
  EXPECT_EQ(code, 400) << out;
  EXPECT_THAT(ErrorOf(out), HasSubstr("number overflow"));
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.Read().first, 200);
}

// A one-byte body 0xff: the parse error quoted the byte, and writing that
// message as JSON threw (invalid UTF-8).
TEST_F(ServeTest, InvalidUtf8BodyIs400) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  for (const std::string& body :
       {std::string("\xff"), std::string("{\"input\": [\"\xc3\x28\"]}"), std::string("\xfe\xff")}) {
    auto [code, out] = (*s)->Handle("POST", "/v1/predict", body);
    EXPECT_EQ(code, 400) << out;
    EXPECT_THAT(ErrorOf(out), HasSubstr("malformed JSON"));
  }
  rawhttp::RawConn c((*s)->port());
  c.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\xff");
  auto [code, out] = c.Read();
  EXPECT_EQ(code, 400) << out;
  EXPECT_THAT(ErrorOf(out), HasSubstr("malformed JSON"));
}

// 1e39 is a finite double but no float: it answered 200 with null
// probabilities. Non-finite outputs are refused too.
TEST_F(ServeTest, OutOfFloatRangeInputIs400) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  auto [code, out] =
      (*s)->Handle("POST", "/v1/predict", "{\"input\": [1e39, " + Repeat("0", 63) + "]}");
  EXPECT_EQ(code, 400) << out;
  EXPECT_THAT(ErrorOf(out), HasSubstr("input 0 value 0 (1e+39) is out of range"));
  auto [code2, out2] =
      (*s)->Handle("POST", "/v1/predict",
                   "{\"inputs\": [[" + Repeat("0", 64) + "], [" + Repeat("0", 63) + ", -1e39]]}");
  EXPECT_EQ(code2, 400) << out2;
  EXPECT_THAT(ErrorOf(out2), HasSubstr("input 1 value 63"));
  // The largest floats pass the input check; whatever the model makes of
  // them, the answer holds numbers only, or is a 400.
  auto [code3, out3] =
      (*s)->Handle("POST", "/v1/predict", "{\"input\": [" + Repeat("3.4e38", 64) + "]}");
  if (code3 == 200) {
    for (const Json& p : Json::parse(out3)["probabilities"][0]) EXPECT_TRUE(p.is_number()) << out3;
  } else {
    EXPECT_EQ(code3, 400) << out3;
    EXPECT_THAT(ErrorOf(out3), HasSubstr("not a finite number"));
  }
}

TEST_F(ServeTest, DeeplyNestedJsonIs400) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  auto [code, out] = (*s)->Handle("POST", "/v1/predict", std::string(100000, '['));
  EXPECT_EQ(code, 400);
  EXPECT_THAT(ErrorOf(out), HasSubstr("nested deeper than 32"));
}

TEST(PredictRequest, ParsesGoodBodiesAndNamesTheProblemInBadOnes) {
  PredictParse ok = ParsePredictBody("{\"inputs\": [[1, 2.5], [-3, 4e3]]}", 2, 8);
  ASSERT_TRUE(ok.ok()) << ok.error;
  EXPECT_EQ(ok.input.rows, 2u);
  EXPECT_EQ(ok.input.values, (std::vector<float>{1, 2.5, -3, 4000}));
  EXPECT_EQ(ParsePredictBody("{\"inputs\": [[1], [2], [3]]}", 1, 2).status, 413);
  EXPECT_THAT(ParsePredictBody("{\"input\": [1, true]}", 2, 8).error,
              HasSubstr("input 0 value 1 is not a number"));
  EXPECT_THAT(ParsePredictBody("", 2, 8).error, HasSubstr("malformed JSON"));
  EXPECT_EQ(Printable("a\xff\n"), "a\\xff\\x0a");
  EXPECT_TRUE(Json::parse(ErrorJson("bad \xff byte"), nullptr, false).is_object());
}

TEST_F(ServeTest, AmbiguousTransferEncodingIs400) {
  auto s = ModelServer::Start(model_, ServerOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  for (const std::string& te :
       {std::string("Transfer-Encoding: xchunked\r\n"),
        std::string("Transfer-Encoding: gzip, chunked\r\n"),
        std::string("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")}) {
    rawhttp::RawConn c((*s)->port());
    c.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + te + "\r\n0\r\n\r\n");
    auto [code, out] = c.Read();
    EXPECT_EQ(code, 400) << te << out;
    EXPECT_TRUE(c.ClosedByPeer()) << te;
  }
}

// A client that sends half a header and waits is disconnected after the
// request timeout; one that idles between requests after the idle timeout.
TEST_F(ServeTest, SlowAndIdleClientsAreDisconnected) {
  ServerOptions o;
  o.request_timeout_s = 0.3;
  o.idle_timeout_s = 0.3;
  auto s = ModelServer::Start(model_, o);
  ASSERT_TRUE(s.ok()) << s.status();
  rawhttp::RawConn half((*s)->port());
  half.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le");
  EXPECT_TRUE(half.ClosedByPeer());
  rawhttp::RawConn slow_body((*s)->port());
  slow_body.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in");
  EXPECT_TRUE(slow_body.ClosedByPeer());
  rawhttp::RawConn idle((*s)->port());
  idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(idle.Read().first, 200);
  EXPECT_TRUE(idle.ClosedByPeer());
  rawhttp::RawConn silent((*s)->port());  // never sends a byte
  EXPECT_TRUE(silent.ClosedByPeer());
}

// Threads open in this process now.
int ThreadCount() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

// Connections beyond the cap get 503 and are closed; the server does not
// start a thread per connection.
TEST_F(ServeTest, ConnectionCapAndNoThreadPerConnection) {
  ServerOptions o;
  o.max_connections = 200;
  o.threads = 2;
  auto s = ModelServer::Start(model_, o);
  ASSERT_TRUE(s.ok()) << s.status();
  int before = ThreadCount();
  std::vector<std::unique_ptr<rawhttp::RawConn>> conns;
  for (int i = 0; i < 200; ++i) {
    conns.push_back(std::make_unique<rawhttp::RawConn>((*s)->port()));
    conns.back()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(conns.back()->Read().first, 200) << "connection " << i;
  }
  EXPECT_LE(ThreadCount(), before + 2) << "200 open connections, " << before << " threads before";
  rawhttp::RawConn extra((*s)->port());
  auto [code, out] = extra.Read();
  EXPECT_EQ(code, 503) << out;
  EXPECT_THAT(ErrorOf(out), HasSubstr("too many connections"));
  EXPECT_TRUE(extra.ClosedByPeer());
  EXPECT_EQ((*s)->metrics().connections_refused, 1u);
  // Once one closes, a new connection is served.
  conns.pop_back();
  for (int i = 0; i < 200 && (*s)->metrics().connections_open >= 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rawhttp::RawConn again((*s)->port());
  again.Send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(again.Read().first, 200);
}

// A slow prediction (--inject-delay-ms) waits on a timer: with one thread,
// other connections are answered meanwhile, and Stop lets it finish.
TEST_F(ServeTest, InjectedDelayDoesNotBlockOtherConnections) {
  ServerOptions o;
  o.threads = 1;
  o.inject_delay_ms = 1500;
  auto s = ModelServer::Start(model_, o);
  ASSERT_TRUE(s.ok()) << s.status();
  rawhttp::RawConn slow((*s)->port());
  std::string body = Json{{"input", Row(0)}}.dump();
  slow.Send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  for (int i = 0; i < 200 && (*s)->metrics().in_flight == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  rawhttp::RawConn fast((*s)->port());
  fast.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  auto [code, out] = fast.Read();
  EXPECT_EQ(code, 200);
  // Answered while the prediction waits: in flight are it and this request.
  EXPECT_EQ(Json::parse(out)["in_flight"], 2);
  auto [pcode, pout] = slow.Read();
  EXPECT_EQ(pcode, 200) << pout;
}

TEST_F(ServeTest, ServesHttpsOnlyWithACertificate) {
  ASSERT_TRUE(rawhttp::MakeSelfSignedCert(dir_));
  ServerOptions o;
  o.tls_cert = dir_ + "/cert.pem";
  o.tls_key = dir_ + "/key.pem";
  o.request_timeout_s = 2;
  auto s = ModelServer::Start(model_, o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->tls());
  namespace ssl = boost::asio::ssl;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(o.tls_cert);
  ctx.set_verify_mode(ssl::verify_peer);
  net::io_context ioc;
  boost::beast::ssl_stream<boost::beast::tcp_stream> tls(ioc, ctx);
  tls.next_layer().connect(
      {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>((*s)->port())});
  tls.next_layer().expires_after(std::chrono::seconds(10));
  tls.handshake(ssl::stream_base::client);
  http::request<http::string_body> req(http::verb::post, "/v1/predict", 11);
  req.set(http::field::host, "127.0.0.1");
  req.body() = Json{{"input", Row(0)}}.dump();
  req.prepare_payload();
  http::write(tls, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(tls, buf, res);
  EXPECT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(Json::parse(res.body())["predictions"][0].get<int>(),
            model_.Predict(test_.x.row(0))[0]);
  // Plain HTTP gets no answer.
  rawhttp::RawConn plain((*s)->port(), 5);
  plain.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(plain.Read().first, 0);
  // A missing key file is an error at start.
  o.tls_key = dir_ + "/none.pem";
  EXPECT_TRUE(absl::IsInvalidArgument(ModelServer::Start(model_, o).status()));
}

TEST(ServeStart, BadListenAddressesAreErrors) {
  train::Mlp m({4, 2}, 1);
  ServerOptions o;
  o.listen = "nonsense";
  EXPECT_TRUE(absl::IsInvalidArgument(ModelServer::Start(m, o).status()));
  o.listen = "127.0.0.1:99999";
  EXPECT_TRUE(absl::IsInvalidArgument(ModelServer::Start(m, o).status()));
}

}  // namespace
}  // namespace meridian::serve
