// meridian serve: model files, the request handler, and the HTTP server on
// a real socket (keep-alive, size limits).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>  // before Boost: asio 1.74 uses std::exchange unincluded
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"
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
