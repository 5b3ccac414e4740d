#include "core/model_format.h"
#include "train/mlp.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

#include <cmath>
#include <numeric>

#include "core/check.h"
#include "core/clock.h"

namespace meridian::train {

namespace {
using Map = Eigen::Map<Eigen::MatrixXf>;
using ConstMap = Eigen::Map<const Eigen::MatrixXf>;
}  // namespace

Mlp::Mlp(std::vector<int> sizes, uint64_t seed) : sizes_(sizes) {
  MERIDIAN_CHECK(sizes.size() >= 2, "an MLP needs inputs and outputs");
  size_t n = 0;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    Layer l;
    l.in = sizes[i];
    l.out = sizes[i + 1];
    l.w = n;
    n += size_t(l.in) * size_t(l.out);
    l.b = n;
    n += size_t(l.out);
    layers_.push_back(l);
  }
  params_ = Eigen::VectorXf::Zero(static_cast<Eigen::Index>(n));
  Rng rng(seed);
  for (const Layer& l : layers_) {
    // He initialisation: uniform with the variance of N(0, 2/in).
    float bound = std::sqrt(6.0f / static_cast<float>(l.in));
    for (size_t i = 0; i < size_t(l.in) * size_t(l.out); ++i)
      params_[static_cast<Eigen::Index>(l.w + i)] =
          static_cast<float>((rng.UniformReal() * 2 - 1) * bound);
  }
}

void Mlp::Forward(const Eigen::MatrixXf& x, std::vector<Eigen::MatrixXf>* acts) const {
  acts->clear();
  acts->push_back(x);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    ConstMap w(params_.data() + l.w, l.out, l.in);
    Eigen::Map<const Eigen::RowVectorXf> b(params_.data() + l.b, l.out);
    Eigen::MatrixXf z = acts->back() * w.transpose();
    z.rowwise() += b;
    if (i + 1 < layers_.size()) z = z.cwiseMax(0.0f);  // ReLU
    acts->push_back(std::move(z));
  }
}

float Mlp::Gradients(const Eigen::MatrixXf& x, const std::vector<int>& y,
                     Eigen::VectorXf* grads) const {
  std::vector<Eigen::MatrixXf> acts;
  Forward(x, &acts);
  const Eigen::Index batch = x.rows();
  Eigen::MatrixXf logits = acts.back();
  // Softmax with the max subtracted for stability; loss = -log p[label].
  Eigen::VectorXf mx = logits.rowwise().maxCoeff();
  Eigen::MatrixXf p = (logits.colwise() - mx).array().exp().matrix();
  Eigen::VectorXf sum = p.rowwise().sum();
  float loss = 0;
  for (Eigen::Index r = 0; r < batch; ++r) {
    p.row(r) /= sum[r];
    loss -= std::log(std::max(p(r, y[size_t(r)]), 1e-12f));
  }
  grads->setZero(params_.size());
  Eigen::MatrixXf dz = p;  // d loss / d logits = (p - onehot) / batch
  for (Eigen::Index r = 0; r < batch; ++r) dz(r, y[size_t(r)]) -= 1.0f;
  dz /= static_cast<float>(batch);
  for (size_t i = layers_.size(); i-- > 0;) {
    const Layer& l = layers_[i];
    const Eigen::MatrixXf& a = acts[i];
    Map(grads->data() + l.w, l.out, l.in) = dz.transpose() * a;
    Eigen::Map<Eigen::RowVectorXf>(grads->data() + l.b, l.out) = dz.colwise().sum();
    if (i == 0) break;
    ConstMap w(params_.data() + l.w, l.out, l.in);
    Eigen::MatrixXf da = dz * w;
    dz = (a.array() > 0.0f).select(da, 0.0f);  // ReLU'
  }
  return loss / static_cast<float>(batch);
}

Eigen::MatrixXf Mlp::Probabilities(const Eigen::MatrixXf& x) const {
  std::vector<Eigen::MatrixXf> acts;
  Forward(x, &acts);
  Eigen::MatrixXf p = acts.back();
  for (Eigen::Index r = 0; r < p.rows(); ++r) {
    p.row(r).array() -= p.row(r).maxCoeff();
    p.row(r) = p.row(r).array().exp().matrix();
    p.row(r) /= p.row(r).sum();
  }
  return p;
}

std::vector<int> Mlp::Predict(const Eigen::MatrixXf& x) const {
  std::vector<Eigen::MatrixXf> acts;
  Forward(x, &acts);
  std::vector<int> out(size_t(x.rows()));
  for (Eigen::Index r = 0; r < x.rows(); ++r) acts.back().row(r).maxCoeff(&out[size_t(r)]);
  return out;
}

double Mlp::Accuracy(const Dataset& d) const {
  if (d.size() == 0) return 0;
  std::vector<int> pred = Predict(d.x);
  size_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == d.y[i] ? 1 : 0;
  return static_cast<double>(ok) / static_cast<double>(d.size());
}

void Sgd::Step(Eigen::VectorXf* params, const Eigen::VectorXf& grad) {
  if (velocity.size() != params->size()) velocity = Eigen::VectorXf::Zero(params->size());
  velocity = momentum * velocity + grad;
  *params -= lr * velocity;
}

TrainResult TrainLocal(const Dataset& train, const Dataset& test, const TrainOptions& o,
                       Mlp* model) {
  std::vector<int> sizes = {static_cast<int>(train.x.cols())};
  sizes.insert(sizes.end(), o.hidden.begin(), o.hidden.end());
  sizes.push_back(train.classes);
  Mlp mlp(sizes, o.seed);
  Sgd sgd;
  sgd.lr = o.lr;
  sgd.momentum = o.momentum;
  Rng rng(o.seed + 1);
  std::vector<size_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  TrainResult r;
  Eigen::VectorXf grads;
  for (int e = 0; e < o.epochs; ++e) {
    for (size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[size_t(rng.Uniform(0, static_cast<int64_t>(i) - 1))]);
    double loss_sum = 0;
    int batches = 0;
    for (size_t start = 0; start < order.size(); start += size_t(o.batch)) {
      size_t end = std::min(order.size(), start + size_t(o.batch));
      Eigen::MatrixXf xb(static_cast<Eigen::Index>(end - start), train.x.cols());
      std::vector<int> yb;
      for (size_t k = start; k < end; ++k) {
        xb.row(static_cast<Eigen::Index>(k - start)) =
            train.x.row(static_cast<Eigen::Index>(order[k]));
        yb.push_back(train.y[order[k]]);
      }
      loss_sum += mlp.Gradients(xb, yb, &grads);
      sgd.Step(&mlp.params(), grads);
      ++batches;
      ++r.steps;
      r.samples += static_cast<int64_t>(end - start);
    }
    r.train_loss = batches ? loss_sum / batches : 0;
  }
  r.test_accuracy = mlp.Accuracy(test);
  if (model) *model = mlp;
  return r;
}

namespace {
}

absl::Status SaveModel(const std::string& path, const Mlp& mlp) {
  std::string buf(kModelMagic, 8);
  uint32_t n = static_cast<uint32_t>(mlp.sizes().size());
  buf.append(reinterpret_cast<const char*>(&n), 4);
  for (int s : mlp.sizes()) buf.append(reinterpret_cast<const char*>(&s), 4);
  buf.append(reinterpret_cast<const char*>(mlp.params().data()), mlp.num_params() * 4);
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write model ", tmp, ": ", strerror(errno)));
  bool ok = ::write(fd, buf.data(), buf.size()) == static_cast<ssize_t>(buf.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::UnavailableError(absl::StrCat("cannot write model ", path));
  return absl::OkStatus();
}

absl::StatusOr<Mlp> LoadModel(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("model ", path, ": cannot open"));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 12 || std::memcmp(data.data(), kModelMagic, 8) != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("model ", path, ": not a Meridian model (write one with `meridian train --save`)"));
  uint32_t n = 0;
  std::memcpy(&n, data.data() + 8, 4);
  if (n < 2 || n > 64 || data.size() < 12 + size_t(n) * 4)
    return absl::InvalidArgumentError(absl::StrCat("model ", path, ": bad layer count ", n));
  std::vector<int> sizes(n);
  std::memcpy(sizes.data(), data.data() + 12, size_t(n) * 4);
  size_t params = 0;
  for (uint32_t i = 0; i + 1 < n; ++i) {
    if (sizes[i] < 1 || sizes[i] > (1 << 16) || sizes[i + 1] < 1 || sizes[i + 1] > (1 << 16))
      return absl::InvalidArgumentError(absl::StrCat("model ", path, ": bad layer size"));
    params += size_t(sizes[i] + 1) * size_t(sizes[i + 1]);
  }
  size_t off = 12 + size_t(n) * 4;
  if (data.size() != off + params * 4)
    return absl::InvalidArgumentError(absl::StrCat("model ", path, ": expected ", params,
                                                   " parameters, file is truncated or padded"));
  Mlp mlp(sizes, 0);
  std::memcpy(mlp.params().data(), data.data() + off, params * 4);
  return mlp;
}

}  // namespace meridian::train
