#include "train/distributed.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/clock.h"
#include "train/mlp.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Rows of this rank's shard in a seeded order; reshuffled after each pass.
class Sampler {
 public:
  Sampler(const Dataset* d, uint64_t seed) : d_(d), rng_(seed), order_(d->size()) {
    std::iota(order_.begin(), order_.end(), 0);
    Shuffle();
  }
  void Next(int n, Eigen::MatrixXf* x, std::vector<int>* y) {
    x->resize(n, d_->x.cols());
    y->resize(size_t(n));
    for (int i = 0; i < n; ++i) {
      if (pos_ == order_.size()) {
        Shuffle();
        pos_ = 0;
      }
      size_t row = order_[pos_++];
      x->row(i) = d_->x.row(static_cast<Eigen::Index>(row));
      (*y)[size_t(i)] = d_->y[row];
    }
  }

 private:
  void Shuffle() {
    for (size_t i = order_.size(); i > 1; --i)
      std::swap(order_[i - 1], order_[size_t(rng_.Uniform(0, static_cast<int64_t>(i) - 1))]);
  }
  const Dataset* d_;
  Rng rng_;
  std::vector<size_t> order_;
  size_t pos_ = 0;
};

struct Groups {
  std::unique_ptr<Group> world, region, leaders;
  bool leader = false;
};

absl::StatusOr<Groups> Connect(KvClient* store, const DistOptions& o) {
  auto device = LoopbackDevice();
  Groups g;
  GroupOptions wo;
  wo.prefix = o.epoch + "/world";
  wo.member_regions = o.regions;
  wo.rank = o.rank;
  wo.resolver = o.resolver;
  absl::StatusOr<std::unique_ptr<Group>> w = Group::Connect(store, device, wo);
  if (!w.ok()) return w.status();
  g.world = *std::move(w);
  if (o.mode != Mode::kHierarchical && o.mode != Mode::kDiloco) return g;
  int mine = o.regions[size_t(o.rank)];
  GroupOptions ro;
  ro.prefix = absl::StrCat(o.epoch, "/region", mine);
  GroupOptions lo;
  lo.prefix = o.epoch + "/leaders";
  lo.resolver = o.resolver;
  std::vector<bool> seen;
  for (int r = 0; r < static_cast<int>(o.regions.size()); ++r) {
    int reg = o.regions[size_t(r)];
    if (reg == mine) {
      if (r == o.rank) ro.rank = static_cast<int>(ro.member_regions.size());
      ro.member_regions.push_back(reg);
    }
    if (size_t(reg) >= seen.size()) seen.resize(size_t(reg) + 1, false);
    if (!seen[size_t(reg)]) {  // the lowest rank of a region leads it
      seen[size_t(reg)] = true;
      if (r == o.rank) {
        g.leader = true;
        lo.rank = static_cast<int>(lo.member_regions.size());
      }
      lo.member_regions.push_back(reg);
    }
  }
  absl::StatusOr<std::unique_ptr<Group>> rg = Group::Connect(store, device, ro);
  if (!rg.ok()) return rg.status();
  g.region = *std::move(rg);
  if (g.leader) {
    absl::StatusOr<std::unique_ptr<Group>> lg = Group::Connect(store, device, lo);
    if (!lg.ok()) return lg.status();
    g.leaders = *std::move(lg);
  }
  return g;
}

constexpr char kMagic[8] = {'M', 'R', 'D', 'N', 'C', 'K', 'P', '1'};

absl::Status WriteCheckpoint(const std::string& dir, int64_t step, const Eigen::VectorXf& params,
                             const Eigen::VectorXf& velocity) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string tmp = dir + "/checkpoint.tmp", final_path = dir + "/checkpoint.bin";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("checkpoint: cannot write ", tmp));
  int64_t p = params.size();
  std::string buf(kMagic, 8);
  buf.append(reinterpret_cast<const char*>(&step), 8);
  buf.append(reinterpret_cast<const char*>(&p), 8);
  buf.append(reinterpret_cast<const char*>(params.data()), size_t(p) * 4);
  Eigen::VectorXf v = velocity.size() == p ? velocity : Eigen::VectorXf::Zero(p);
  buf.append(reinterpret_cast<const char*>(v.data()), size_t(p) * 4);
  bool ok = ::write(fd, buf.data(), buf.size()) == static_cast<ssize_t>(buf.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0)
    return absl::UnavailableError(absl::StrCat("checkpoint: cannot write ", final_path));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

// Returns the step of the checkpoint, or 0 when there is none.
absl::StatusOr<int64_t> ReadCheckpoint(const std::string& dir, Eigen::VectorXf* params,
                                       Eigen::VectorXf* velocity) {
  std::string path = dir + "/checkpoint.bin";
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int64_t step = 0, p = 0;
  if (data.size() < 24 || std::memcmp(data.data(), kMagic, 8) != 0)
    return absl::DataLossError(absl::StrCat(path, ": not a Meridian checkpoint"));
  std::memcpy(&step, data.data() + 8, 8);
  std::memcpy(&p, data.data() + 16, 8);
  if (p != params->size())
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": holds ", p, " parameters but the model has ", params->size()));
  if (data.size() != 24 + size_t(p) * 8)
    return absl::DataLossError(absl::StrCat(path, ": truncated"));
  std::memcpy(params->data(), data.data() + 24, size_t(p) * 4);
  velocity->resize(p);
  std::memcpy(velocity->data(), data.data() + 24 + size_t(p) * 4, size_t(p) * 4);
  return step;
}

}  // namespace

absl::StatusOr<Mode> ParseMode(const std::string& s) {
  if (s == "allreduce") return Mode::kAllreduce;
  if (s == "central") return Mode::kCentral;
  if (s == "hierarchical") return Mode::kHierarchical;
  if (s == "diloco") return Mode::kDiloco;
  return absl::InvalidArgumentError(absl::StrCat(
      "mode '", s, "' is not one of allreduce, central, hierarchical, diloco"));
}

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kAllreduce:
      return "allreduce";
    case Mode::kCentral:
      return "central";
    case Mode::kHierarchical:
      return "hierarchical";
    case Mode::kDiloco:
      return "diloco";
  }
  return "?";
}

std::vector<int> Shares(const std::vector<double>& rates, int total) {
  size_t n = rates.size();
  std::vector<int> out(n, 1);
  if (n == 0) return out;
  double sum = 0;
  for (double r : rates) sum += std::max(r, 0.0);
  int left = total - static_cast<int>(n);
  if (left <= 0 || sum <= 0) {
    // Too few samples to weigh: spread evenly.
    for (size_t i = 0; i < n; ++i)
      out[i] = total / static_cast<int>(n) + (static_cast<int>(i) < total % static_cast<int>(n));
    for (int& v : out) v = std::max(v, 1);
    return out;
  }
  std::vector<double> frac(n);
  int given = 0;
  for (size_t i = 0; i < n; ++i) {
    double ideal = left * std::max(rates[i], 0.0) / sum;
    int whole = static_cast<int>(std::floor(ideal));
    out[i] += whole;
    given += whole;
    frac[i] = ideal - whole;
  }
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return frac[a] > frac[b]; });
  for (size_t k = 0; given < left; ++k, ++given) ++out[idx[k % n]];
  return out;
}

absl::StatusOr<DistResult> RunWorker(KvClient* store, const Dataset& train, const Dataset& test,
                                     const DistOptions& o) {
  const int world = static_cast<int>(o.regions.size());
  if (o.rank < 0 || o.rank >= world)
    return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " outside 0..", world - 1));
  if (o.batch < world)
    return absl::InvalidArgumentError(
        absl::StrCat("batch ", o.batch, " is smaller than the ", world, " workers"));
  absl::StatusOr<Groups> connected = Connect(store, o);
  if (!connected.ok()) return connected.status();
  Groups g = *std::move(connected);

  Dataset shard = Shard(train, o.rank, world);
  Dataset eval_set = test;
  if (o.eval_samples > 0 && size_t(o.eval_samples) < test.size()) {
    eval_set.x = test.x.topRows(o.eval_samples);
    eval_set.y.assign(test.y.begin(), test.y.begin() + o.eval_samples);
  }
  std::vector<int> sizes = {static_cast<int>(train.x.cols())};
  sizes.insert(sizes.end(), o.hidden.begin(), o.hidden.end());
  sizes.push_back(train.classes);
  Mlp mlp(sizes, o.seed);
  const size_t P = mlp.num_params();
  const int64_t total_steps =
      (static_cast<int64_t>(o.epochs) * static_cast<int64_t>(train.size()) + o.batch - 1) / o.batch;

  Sgd sgd;
  sgd.lr = o.lr;
  sgd.momentum = o.momentum;
  Eigen::VectorXf global = mlp.params();  // diloco: the shared model
  Eigen::VectorXf outer_v = Eigen::VectorXf::Zero(static_cast<Eigen::Index>(P));

  DistResult res;
  res.rank = o.rank;
  // Resume: rank 0 reads the checkpoint and broadcasts it, so all ranks start
  // from the same bytes.
  {
    std::vector<float> head(2, 0);
    Eigen::VectorXf vel = Eigen::VectorXf::Zero(static_cast<Eigen::Index>(P));
    if (o.rank == 0 && !o.checkpoint_dir.empty()) {
      absl::StatusOr<int64_t> step = ReadCheckpoint(o.checkpoint_dir, &mlp.params(), &vel);
      if (!step.ok()) return step.status();
      head[0] = static_cast<float>(*step);
    }
    absl::Status s = g.world->Broadcast(head.data(), head.size(), 0);
    if (!s.ok()) return s;
    res.start_step = static_cast<int64_t>(head[0]);
    if (res.start_step > 0) {
      if (!(s = g.world->Broadcast(mlp.params().data(), P, 0)).ok()) return s;
      if (!(s = g.world->Broadcast(vel.data(), P, 0)).ok()) return s;
      global = mlp.params();
      if (o.mode == Mode::kDiloco) {
        outer_v = vel;
      } else {
        sgd.velocity = vel;
      }
      if (o.progress)
        o.progress(absl::StrCat("resumed from checkpoint at step ", res.start_step, " (epoch ",
                                o.epoch, ")"));
    }
  }

  Clock::time_point start = Clock::now();  // training time: after rendezvous and resume
  // Aggregation buffer: the weighted gradients (or deltas), then per-rank
  // rates and the weighted loss.
  const size_t kRate = P, kLoss = P + size_t(world);
  const size_t extras = size_t(world) + 1;
  std::vector<float> buf(P + extras), gathered;

  auto aggregate = [&](std::vector<float>& b) -> absl::Status {
    absl::Status s;
    Eigen::Map<Eigen::VectorXf> bhead(b.data(), static_cast<Eigen::Index>(P));
    switch (o.mode) {
      case Mode::kAllreduce:
        return g.world->Allreduce(b.data(), b.size());
      case Mode::kCentral: {
        if (o.rank == 0) gathered.resize(b.size() * size_t(world));
        if (!(s = g.world->Gather(b.data(), b.size(), gathered.data(), 0)).ok()) return s;
        std::vector<float> bc(P + extras);
        if (o.rank == 0) {
          std::fill(b.begin(), b.end(), 0.0f);
          for (int r = 0; r < world; ++r)
            for (size_t i = 0; i < b.size(); ++i) b[i] += gathered[size_t(r) * b.size() + i];
          sgd.Step(&mlp.params(), bhead);  // the coordinator steps
          std::copy(mlp.params().data(), mlp.params().data() + P, bc.begin());
          std::copy(b.begin() + static_cast<long>(P), b.end(), bc.begin() + static_cast<long>(P));
        }
        if (!(s = g.world->Broadcast(bc.data(), bc.size(), 0)).ok()) return s;
        if (o.rank != 0) {
          std::copy(bc.begin(), bc.begin() + static_cast<long>(P), mlp.params().data());
          std::copy(bc.begin() + static_cast<long>(P), bc.end(), b.begin() + static_cast<long>(P));
        }
        return absl::OkStatus();
      }
      case Mode::kHierarchical:
      case Mode::kDiloco: {
        if (!(s = g.region->Reduce(b.data(), b.size(), 0)).ok()) return s;
        if (g.leader) {
          if (o.mode == Mode::kDiloco && o.codec != Codec::kFp32) {
            if (!(s = g.leaders->CompressedAllreduce(b.data(), P, o.codec)).ok()) return s;
            if (!(s = g.leaders->Allreduce(b.data() + P, extras)).ok()) return s;
          } else {
            if (!(s = g.leaders->Allreduce(b.data(), b.size())).ok()) return s;
          }
        }
        return g.region->Broadcast(b.data(), b.size(), 0);
      }
    }
    return absl::OkStatus();
  };

  Sampler sampler(&shard, o.seed * 7919 + uint64_t(o.rank) + 1);
  std::vector<int> shares = Shares(std::vector<double>(size_t(world), 1.0), o.batch);
  double rate = 0;  // this rank's samples per second of compute, smoothed
  bool stop = false;
  double stopped_at = 0;  // training time when the target was reached
  Eigen::MatrixXf xb;
  std::vector<int> yb;
  Eigen::VectorXf grads;
  int64_t step = res.start_step;
  int64_t last_ckpt = step;
  const int64_t report_every = std::max<int64_t>(1, total_steps / 20);
  int64_t next_report = step + report_every;
  int64_t rounds = 0;
  double last_acc = -1;

  // One local step: this rank's share of the batch; returns the loss.
  auto local_step = [&](bool apply) -> float {
    int b = shares[size_t(o.rank)];
    Clock::time_point t0 = Clock::now();
    sampler.Next(b, &xb, &yb);
    float loss = mlp.Gradients(xb, yb, &grads);
    if (apply) sgd.Step(&mlp.params(), grads);
    double c = Since(t0);
    if (o.slow_factor > 1)
      std::this_thread::sleep_for(std::chrono::duration<double>((o.slow_factor - 1) * c));
    double busy = Since(t0);
    res.compute_s += busy;
    res.samples += b;
    double r = busy > 0 ? b / busy : 0;
    rate = rate == 0 ? r : 0.7 * rate + 0.3 * r;
    return loss;
  };

  // diloco: the outer Nesterov step on an averaged delta (the "outer gradient").
  auto outer_step = [&](const float* delta) {
    Eigen::Map<const Eigen::VectorXf> d(delta, static_cast<Eigen::Index>(P));
    outer_v = o.outer_momentum * outer_v + d;
    global -= o.outer_lr * (d + o.outer_momentum * outer_v);
  };
  // Overlapped diloco: the exchange of round k runs on this thread while
  // round k + 1 computes; its result is applied as soon as it lands.
  std::thread comm;
  absl::Status comm_status;
  std::atomic<bool> comm_done{false};
  std::vector<float> inflight;
  bool pending = false;
  Eigen::VectorXf anchor;  // diloco: where this rank's current delta is measured from
  auto finish_exchange = [&]() -> absl::Status {
    if (!pending) return absl::OkStatus();
    Clock::time_point tw = Clock::now();
    comm.join();
    res.exchange_wait_s += Since(tw);
    pending = false;
    if (!comm_status.ok()) return comm_status;
    outer_step(inflight.data());
    std::copy(inflight.begin() + static_cast<long>(P), inflight.end(),
              buf.begin() + static_cast<long>(P));
    return absl::OkStatus();
  };
  // Applies a landed (or, waiting, the pending) exchange and moves this
  // rank's un-averaged progress onto the new global model.
  auto reanchor = [&]() -> absl::Status {
    if (!pending) return absl::OkStatus();
    Eigen::VectorXf progress = anchor - mlp.params();
    absl::Status s = finish_exchange();
    if (!s.ok()) return s;
    mlp.params() = global - progress;
    anchor = global;
    return absl::OkStatus();
  };
  struct JoinOnExit {
    std::thread* t;
    ~JoinOnExit() {
      if (t->joinable()) t->join();
    }
  } join_on_exit{&comm};

  while (step < total_steps && !stop) {
    int b = shares[size_t(o.rank)];
    float wb = static_cast<float>(b) / static_cast<float>(o.batch);
    int64_t advance = 1;
    float loss = 0;
    Eigen::Map<Eigen::VectorXf> head(buf.data(), static_cast<Eigen::Index>(P));
    if (o.mode == Mode::kDiloco) {
      advance = std::min<int64_t>(o.local_steps, total_steps - step);
      anchor = mlp.params();  // this round's starting point
      for (int64_t k = 0; k < advance; ++k) {
        loss += local_step(true) / static_cast<float>(advance);
        // Overlapped: the previous round's average lands mid-round; apply
        // it at once and keep this round's progress on top of it.
        if (o.overlap && pending && comm_done.load()) {
          absl::Status s = reanchor();
          if (!s.ok()) return absl::UnavailableError(absl::StrCat("step ", step, ": ", s.message()));
        }
      }
      if (o.overlap) {
        absl::Status s = reanchor();  // waits if the exchange is slower than a round
        if (!s.ok()) return absl::UnavailableError(absl::StrCat("step ", step, ": ", s.message()));
        Eigen::VectorXf own = anchor - mlp.params();  // this rank's delta this round
        inflight.assign(P + extras, 0.0f);
        Eigen::Map<Eigen::VectorXf>(inflight.data(), static_cast<Eigen::Index>(P)) = own * wb;
        inflight[kRate + size_t(o.rank)] = static_cast<float>(rate);
        inflight[kLoss] = loss * wb;
        comm_status = absl::OkStatus();
        comm_done = false;
        pending = true;
        comm = std::thread([&] {
          comm_status = aggregate(inflight);
          comm_done = true;
        });
        // The next round continues from here; the average is applied when it lands.
      } else {
        head = (anchor - mlp.params()) * wb;
      }
    } else {
      loss = local_step(false);
      head = grads * wb;
    }
    if (o.mode != Mode::kDiloco || !o.overlap) {
      std::fill(buf.begin() + static_cast<long>(P), buf.end(), 0.0f);
      buf[kRate + size_t(o.rank)] = static_cast<float>(rate);
      buf[kLoss] = loss * wb;
      absl::Status s = aggregate(buf);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("step ", step, ": ", s.message()));
      Clock::time_point tu = Clock::now();
      if (o.mode == Mode::kDiloco) {
        outer_step(buf.data());
        mlp.params() = global;
      } else if (o.mode != Mode::kCentral) {
        sgd.Step(&mlp.params(), head);
      }
      res.compute_s += Since(tu);
    }
    step += advance;
    ++rounds;
    if (step >= total_steps) {  // the last exchange lands before the end
      absl::Status s = finish_exchange();
      if (!s.ok()) return s;
      if (o.mode == Mode::kDiloco) mlp.params() = global;
    }
    res.train_loss = buf[kLoss];
    if (o.dynamic_shares && rounds % std::max(1, o.rebalance_every) == 0) {
      std::vector<double> rates(static_cast<size_t>(world));
      for (int r = 0; r < world; ++r) rates[size_t(r)] = buf[kRate + size_t(r)];
      if (std::all_of(rates.begin(), rates.end(), [](double x) { return x > 0; }))
        shares = Shares(rates, o.batch);
    }
    // Evaluation (rank 0) is a phase of its own: everyone waits for its
    // verdict, and its time counts for no one.
    bool eval_now = (o.eval_every > 0 && step / o.eval_every != (step - advance) / o.eval_every) ||
                    (o.mode == Mode::kDiloco && o.target_accuracy > 0);
    if (eval_now) {
      Clock::time_point te = Clock::now();
      float verdict = 0;
      if (o.rank == 0) {
        Mlp eval_model = mlp;
        if (o.mode == Mode::kDiloco) eval_model.params() = global;
        last_acc = eval_model.Accuracy(eval_set);
        if (o.target_accuracy > 0 && last_acc >= o.target_accuracy) {
          res.time_to_target_s = Since(start) - res.eval_s;
          res.steps_to_target = step;
          verdict = 1;
        }
      }
      absl::Status s = g.world->Broadcast(&verdict, 1, 0);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("step ", step, ": ", s.message()));
      res.eval_s += Since(te);
      if (verdict > 0) {
        // The model just evaluated is the result. An exchange still in
        // flight carries progress past the target: it is drained, not applied,
        // and not counted as training time.
        stop = true;
        stopped_at = Since(start) - res.eval_s;
        if (pending) {
          comm.join();
          pending = false;
        }
        if (o.mode == Mode::kDiloco) mlp.params() = global;
      }
    }
    if (o.rank == 0) {
      if (!o.checkpoint_dir.empty() && o.checkpoint_every > 0 &&
          step - last_ckpt >= o.checkpoint_every && step < total_steps && !stop) {
        Eigen::VectorXf vel = o.mode == Mode::kDiloco ? outer_v : sgd.velocity;
        absl::Status cs = WriteCheckpoint(o.checkpoint_dir, step,
                                          o.mode == Mode::kDiloco ? global : mlp.params(), vel);
        if (!cs.ok()) return cs;
        last_ckpt = step;
        ++res.checkpoints;
        if (o.progress) o.progress(absl::StrCat("checkpoint at step ", step));
      }
      if (o.progress && (step >= next_report || step >= total_steps || stop)) {
        next_report = step + report_every;
        double wall = Since(start) - res.eval_s;
        o.progress(absl::StrCat(
            "step ", step, "/", total_steps, " loss ", absl::StrFormat("%.4f", buf[kLoss]),
            last_acc >= 0 ? absl::StrFormat(" accuracy %.4f", last_acc) : std::string(),
            absl::StrFormat(" samples/s(rank0) %.0f", res.samples / std::max(wall, 1e-9)),
            " shares ", absl::StrJoin(shares, ",")));
      }
    }
    if (o.fail_after_step >= 0 && step >= o.fail_after_step) {
      std::fflush(nullptr);
      ::raise(SIGKILL);  // a test's stand-in for a crashed worker
    }
  }
  if (absl::Status f = finish_exchange(); !f.ok()) return f;
  if (o.mode == Mode::kDiloco) mlp.params() = global;
  res.steps = step;
  res.final_shares = shares;
  res.wall_s = stop ? stopped_at : Since(start) - res.eval_s;
  if (o.rank == 0) {
    res.test_accuracy = mlp.Accuracy(test);
    if (!o.save_path.empty())
      if (absl::Status s = SaveModel(o.save_path, mlp); !s.ok()) return s;
  }
  // Keep every rank until rank 0 has evaluated, so no one tears down early.
  absl::Status s = g.world->Barrier();
  if (!s.ok()) return s;
  return res;
}

}  // namespace meridian::train
