// A multi-layer perceptron classifier (ReLU hidden layers, softmax output,
// cross-entropy loss) whose parameters live in one flat vector, so that a
// data-parallel trainer can aggregate gradients or parameter deltas as a
// single buffer. SGD with momentum in Sgd. Deterministic for a seed.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "train/dataset.h"

namespace meridian::train {

class Mlp {
 public:
  // sizes = {inputs, hidden..., classes}; weights He-initialised from `seed`.
  Mlp(std::vector<int> sizes, uint64_t seed);

  size_t num_params() const { return static_cast<size_t>(params_.size()); }
  Eigen::VectorXf& params() { return params_; }
  const Eigen::VectorXf& params() const { return params_; }

  // Mean cross-entropy over the batch; *grads (resized to num_params()) gets
  // its gradient with respect to params().
  float Gradients(const Eigen::MatrixXf& x, const std::vector<int>& y,
                  Eigen::VectorXf* grads) const;
  std::vector<int> Predict(const Eigen::MatrixXf& x) const;
  // Softmax class probabilities, one row per sample.
  Eigen::MatrixXf Probabilities(const Eigen::MatrixXf& x) const;
  const std::vector<int>& sizes() const { return sizes_; }
  double Accuracy(const Dataset& d) const;

 private:
  struct Layer {
    int in = 0, out = 0;
    size_t w = 0, b = 0;  // offsets into params_
  };
  // Activations of every layer (input first) and the output logits.
  void Forward(const Eigen::MatrixXf& x, std::vector<Eigen::MatrixXf>* acts) const;

  std::vector<int> sizes_;
  std::vector<Layer> layers_;
  Eigen::VectorXf params_;
};

// A trained model on disk: its layer sizes and parameters ("MRDNMDL1").
// Written atomically (temporary file, fsync, rename); errors name the path.
absl::Status SaveModel(const std::string& path, const Mlp& mlp);
absl::StatusOr<Mlp> LoadModel(const std::string& path);

struct Sgd {
  float lr = 0.05f;
  float momentum = 0.9f;
  Eigen::VectorXf velocity;
  void Step(Eigen::VectorXf* params, const Eigen::VectorXf& grad);
};

struct TrainOptions {
  std::vector<int> hidden = {64};
  int epochs = 30;
  int batch = 32;
  float lr = 0.05f;
  float momentum = 0.9f;
  uint64_t seed = 1;
};

struct TrainResult {
  double test_accuracy = 0;
  double train_loss = 0;  // mean over the last epoch
  int64_t steps = 0;
  int64_t samples = 0;
};

// Single-process training: the reference every distributed mode is compared with.
// `model`, when given, receives the trained model.
TrainResult TrainLocal(const Dataset& train, const Dataset& test, const TrainOptions& options,
                       Mlp* model = nullptr);

}  // namespace meridian::train
