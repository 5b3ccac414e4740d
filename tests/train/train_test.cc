// Training runtime, single process: backprop matches finite differences,
// the MLP learns (generated digits always; the real UCI digits when present),
// datasets parse strictly, splits and shards partition the rows.
#include <filesystem>
#include <set>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "train/dataset.h"
#include "train/mlp.h"

namespace meridian::train {
namespace {

using ::testing::HasSubstr;

TEST(MlpTest, GradientsMatchFiniteDifferences) {
  Mlp mlp({5, 7, 4}, 3);
  Rng rng(9);
  Eigen::MatrixXf x(6, 5);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(rng.UniformReal());
  std::vector<int> y = {0, 1, 2, 3, 1, 2};
  Eigen::VectorXf g;
  mlp.Gradients(x, y, &g);
  ASSERT_EQ(static_cast<size_t>(g.size()), mlp.num_params());
  Eigen::VectorXf scratch;
  int checked = 0;
  for (size_t i = 0; i < mlp.num_params(); i += 3) {
    float& p = mlp.params()[static_cast<Eigen::Index>(i)];
    const float keep = p, h = 1e-2f;
    p = keep + h;
    float up = mlp.Gradients(x, y, &scratch);
    p = keep - h;
    float down = mlp.Gradients(x, y, &scratch);
    p = keep;
    float numeric = (up - down) / (2 * h);
    EXPECT_NEAR(g[static_cast<Eigen::Index>(i)], numeric, 2e-3f) << "parameter " << i;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(MlpTest, LearnsGeneratedDigits) {
  Dataset all = SyntheticDigits(1500, 5), train, test;
  Split(all, 0.2, 7, &train, &test);
  TrainOptions o;
  o.epochs = 10;
  TrainResult r = TrainLocal(train, test, o);
  EXPECT_GT(r.test_accuracy, 0.95);
  EXPECT_EQ(r.samples, static_cast<int64_t>(train.size()) * o.epochs);
  // Same seed, same result.
  EXPECT_EQ(TrainLocal(train, test, o).test_accuracy, r.test_accuracy);
}

TEST(MlpTest, RealDigitsReachAbout97Percent) {
  const std::string path = "../shared/data/sklearn-digits/digits.csv.gz";
  std::string full = std::string(MERIDIAN_SOURCE_DIR) + "/" + path;
  if (!std::filesystem::exists(full)) GTEST_SKIP() << full << " absent (real data is optional)";
  absl::StatusOr<Dataset> all = LoadDigitsCsv(full);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1797u);
  Dataset train, test;
  Split(*all, 0.25, 1, &train, &test);
  TrainResult r = TrainLocal(train, test, TrainOptions());
  EXPECT_GT(r.test_accuracy, 0.95);
}

TEST(DatasetTest, CsvErrorsNameTheLine) {
  std::string good;
  for (int i = 0; i < 64; ++i) good += "1,";
  good += "3";
  EXPECT_TRUE(ParseDigitsCsv(good + "\n" + good + "\n", "d.csv").ok());
  auto bad = ParseDigitsCsv(good + "\n1,2,3\n", "d.csv");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("d.csv:2: expected 65 columns"));
  std::string label = good.substr(0, good.size() - 1) + "12";
  bad = ParseDigitsCsv(label + "\n", "d.csv");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("d.csv:1: label 12"));
  std::string pixel = "17," + good.substr(2);
  bad = ParseDigitsCsv(pixel + "\n", "d.csv");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("pixel 17 outside 0..16"));
  bad = ParseDigitsCsv("x" + good.substr(1) + "\n", "d.csv");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not an integer"));
  EXPECT_FALSE(ParseDigitsCsv("", "d.csv").ok());
  EXPECT_FALSE(LoadDigitsCsv("/nonexistent/digits.csv").ok());
}

TEST(DatasetTest, SplitAndShardsPartitionTheRows) {
  Dataset all = SyntheticDigits(103, 1), train, test;
  Split(all, 0.25, 3, &train, &test);
  EXPECT_EQ(train.size() + test.size(), all.size());
  EXPECT_EQ(test.size(), 25u);
  size_t total = 0;
  for (int r = 0; r < 4; ++r) total += Shard(train, r, 4).size();
  EXPECT_EQ(total, train.size());
  Dataset s1 = Shard(train, 1, 4);
  EXPECT_TRUE(s1.x.row(0).isApprox(train.x.row(1)));
  EXPECT_EQ(s1.y[1], train.y[5]);
}

}  // namespace
}  // namespace meridian::train
