#include "train/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/clock.h"
#include "spec/spec.h"

namespace meridian::train {

namespace {
constexpr int kFeatures = 64;
constexpr int kClasses = 10;
constexpr float kMaxPixel = 16.0f;

Dataset Rows(const Dataset& all, const std::vector<size_t>& rows) {
  Dataset out;
  out.classes = all.classes;
  out.x.resize(static_cast<Eigen::Index>(rows.size()), all.x.cols());
  out.y.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    out.x.row(static_cast<Eigen::Index>(i)) = all.x.row(static_cast<Eigen::Index>(rows[i]));
    out.y[i] = all.y[rows[i]];
  }
  return out;
}
}  // namespace

absl::StatusOr<Dataset> ParseDigitsCsv(const std::string& text, const std::string& filename) {
  std::vector<std::vector<float>> rows;
  std::vector<int> labels;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::vector<absl::string_view> cols = absl::StrSplit(line, ',');
    if (cols.size() != kFeatures + 1)
      return absl::InvalidArgumentError(absl::StrCat(filename, ":", line_no, ": expected ",
                                                     kFeatures + 1, " columns, got ", cols.size()));
    std::vector<float> px(kFeatures);
    for (int c = 0; c <= kFeatures; ++c) {
      int v = 0;
      if (!absl::SimpleAtoi(cols[size_t(c)], &v))
        return absl::InvalidArgumentError(absl::StrCat(filename, ":", line_no, ": column ", c + 1,
                                                       ": not an integer: '", cols[size_t(c)],
                                                       "'"));
      if (c < kFeatures) {
        if (v < 0 || v > 16)
          return absl::InvalidArgumentError(absl::StrCat(filename, ":", line_no, ": column ", c + 1,
                                                         ": pixel ", v, " outside 0..16"));
        px[size_t(c)] = static_cast<float>(v) / kMaxPixel;
      } else {
        if (v < 0 || v >= kClasses)
          return absl::InvalidArgumentError(
              absl::StrCat(filename, ":", line_no, ": label ", v, " outside 0..9"));
        labels.push_back(v);
      }
    }
    rows.push_back(std::move(px));
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(filename, ": no samples"));
  Dataset d;
  d.classes = kClasses;
  d.x.resize(static_cast<Eigen::Index>(rows.size()), kFeatures);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int c = 0; c < kFeatures; ++c) d.x(static_cast<Eigen::Index>(r), c) = rows[r][size_t(c)];
  d.y = std::move(labels);
  return d;
}

absl::StatusOr<Dataset> LoadDigitsCsv(const std::string& path) {
  absl::StatusOr<std::string> text = spec::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseDigitsCsv(*text, path);
}

Dataset SyntheticDigits(int n, uint64_t seed) {
  Rng rng(seed);
  Eigen::MatrixXf proto(kClasses, kFeatures);
  for (int k = 0; k < kClasses; ++k)
    for (int c = 0; c < kFeatures; ++c) proto(k, c) = static_cast<float>(rng.Uniform(0, 16));
  Dataset d;
  d.classes = kClasses;
  d.x.resize(n, kFeatures);
  d.y.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    int k = i % kClasses;
    d.y[size_t(i)] = k;
    for (int c = 0; c < kFeatures; ++c) {
      float v = proto(k, c) + static_cast<float>(rng.Uniform(-6, 6));
      d.x(i, c) = std::clamp(v, 0.0f, kMaxPixel) / kMaxPixel;
    }
  }
  return d;
}

void Split(const Dataset& all, double test_fraction, uint64_t seed, Dataset* train, Dataset* test) {
  std::vector<size_t> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed);
  for (size_t i = order.size(); i > 1; --i)  // Fisher-Yates with our own Rng
    std::swap(order[i - 1], order[size_t(rng.Uniform(0, static_cast<int64_t>(i) - 1))]);
  size_t n_test = static_cast<size_t>(static_cast<double>(all.size()) * test_fraction);
  *test = Rows(all, std::vector<size_t>(order.begin(), order.begin() + static_cast<long>(n_test)));
  *train = Rows(all, std::vector<size_t>(order.begin() + static_cast<long>(n_test), order.end()));
}

Dataset Shard(const Dataset& all, int rank, int world) {
  std::vector<size_t> rows;
  for (size_t i = static_cast<size_t>(rank); i < all.size(); i += static_cast<size_t>(world))
    rows.push_back(i);
  return Rows(all, rows);
}

Dataset SyntheticClusters(int n, int features, int classes, uint64_t seed) {
  constexpr int kCentres = 4;
  Rng rng(seed);
  auto gauss = [&rng] {
    double u1 = std::max(rng.UniformReal(), 1e-12), u2 = rng.UniformReal();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  };
  Eigen::MatrixXf centres(classes * kCentres, features);
  for (Eigen::Index i = 0; i < centres.size(); ++i) centres.data()[i] = gauss();
  Dataset d;
  d.classes = classes;
  d.x.resize(n, features);
  d.y.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    int cls = static_cast<int>(rng.Uniform(0, classes - 1));
    int c = cls * kCentres + static_cast<int>(rng.Uniform(0, kCentres - 1));
    for (int f = 0; f < features; ++f) d.x(i, f) = 0.5f * centres(c, f) + 1.0f * gauss();
    d.y[size_t(i)] = cls;
  }
  return d;
}

}  // namespace meridian::train
