// Datasets for the training runtime: the UCI digits CSV (64 pixel columns
// 0..16, then the label 0..9; optionally gzip-compressed), a generated set in
// the same format for tests, a seeded train/test split and per-rank shards.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace meridian::train {

struct Dataset {
  Eigen::MatrixXf x;   // one row per sample, features scaled to [0, 1]
  std::vector<int> y;  // class per row
  int classes = 0;
  size_t size() const { return y.size(); }
};

// Reads a digits-format CSV (".gz" handled). Errors name FILE:LINE and what is wrong.
absl::StatusOr<Dataset> LoadDigitsCsv(const std::string& path);
// Parses CSV text in the digits format (`filename` is used in errors).
absl::StatusOr<Dataset> ParseDigitsCsv(const std::string& text, const std::string& filename);

// `n` samples of 10 classes in the digits format: each class has a fixed
// random 8x8 prototype; samples are the prototype plus seeded noise.
Dataset SyntheticDigits(int n, uint64_t seed);

// The larger task, where communication matters: `n` samples with `features`
// values in `classes` classes. Each class is a mixture of a few random
// centres; samples are a centre plus Gaussian noise, so the classes overlap
// and a wide MLP (millions of parameters) is needed to separate them well.
Dataset SyntheticClusters(int n, int features, int classes, uint64_t seed);

// Shuffles with `seed` and puts `test_fraction` of the rows in `test`.
void Split(const Dataset& all, double test_fraction, uint64_t seed, Dataset* train, Dataset* test);

// Rows rank, rank + world, rank + 2*world, ... (every rank reads its own shard).
Dataset Shard(const Dataset& all, int rank, int world);

}  // namespace meridian::train
