// Data-parallel training of the MLP across processes: one worker per rank,
// four ways to aggregate (one interface), straggler-aware batch shares,
// checkpoints, and the numbers a run is judged by.
//
//   allreduce     every step, the weighted gradients are summed with a Gloo ring
//                 over all ranks; every rank applies the same SGD step.
//   central       every step, rank 0 gathers the gradients, steps, and
//                 broadcasts the parameters (the textbook parameter server).
//   hierarchical  every step, gradients are reduced inside each region, the
//                 region leaders allreduce, and each leader broadcasts back.
//   diloco        H local SGD steps, then the parameter deltas are averaged
//                 (hierarchically, optionally fp16/int8 across regions) and
//                 applied by an outer Nesterov step, in the manner of DiLoCo.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "train/collective.h"
#include "train/dataset.h"
#include "train/kvstore.h"

namespace meridian::train {

enum class Mode { kAllreduce, kCentral, kHierarchical, kDiloco };
absl::StatusOr<Mode> ParseMode(const std::string& s);
const char* ModeName(Mode m);

struct DistOptions {
  Mode mode = Mode::kAllreduce;
  int rank = 0;
  std::vector<int> regions;  // region index of every rank; size = world
  std::string epoch = "e0";  // store prefix of this membership epoch
  RelayResolver resolver;    // empty: ranks talk directly

  std::vector<int> hidden = {64};
  int epochs = 30;   // passes over the training set (all ranks together)
  int batch = 32;    // global samples per step, split between ranks
  float lr = 0.05f;  // SGD (inner SGD for diloco), momentum below
  float momentum = 0.9f;
  uint64_t seed = 1;

  int local_steps = 50;  // diloco: H
  float outer_lr = 0.7f;
  float outer_momentum = 0.5f;
  Codec codec = Codec::kFp32;  // diloco: what crosses regions
  bool overlap = false;        // diloco: exchange while the next round computes

  bool dynamic_shares = true;  // rebalance batch shares by measured throughput
  int rebalance_every = 10;    // steps (rounds for diloco)
  double slow_factor = 1.0;    // this rank computes this many times slower (tests, benchmarks)

  double target_accuracy = 0;  // > 0: stop once rank 0 measures it
  int eval_every = 0;          // steps between evaluations (0: only at the end)
  int eval_samples = 0;        // 0: the whole test set

  std::string checkpoint_dir;  // empty: no checkpoints
  int checkpoint_every = 0;    // steps
  int fail_after_step = -1;    // tests: this rank exits hard after this step
  std::string save_path;       // rank 0 writes the final model here (meridian serve reads it)

  std::function<void(const std::string&)> progress;  // rank 0's progress lines
};

struct DistResult {
  int rank = 0;
  double test_accuracy = 0;  // rank 0: final model on the whole test set
  double train_loss = 0;     // mean over the last rebalance window
  int64_t steps = 0;         // global steps (inner steps for diloco)
  int64_t start_step = 0;    // > 0 when resumed from a checkpoint
  int64_t samples = 0;       // samples this rank processed
  double wall_s = 0;         // excluding rank 0's evaluations
  double compute_s = 0;      // forward, backward and local updates
  double time_to_target_s = -1;
  int64_t steps_to_target = -1;
  double eval_s = 0;          // in evaluation phases (excluded from wall_s)
  double exchange_wait_s = 0;  // overlapped diloco: waiting for a late exchange
  int checkpoints = 0;
  std::vector<int> final_shares;
};

// Runs one rank to the end. `store` is the job's rendezvous store.
absl::StatusOr<DistResult> RunWorker(KvClient* store, const Dataset& train, const Dataset& test,
                                     const DistOptions& options);

// Batch shares proportional to `rates`, summing to `total`, each >= 1;
// identical on every rank for identical input.
std::vector<int> Shares(const std::vector<double>& rates, int total);

}  // namespace meridian::train
