// Goodput job model: a training job's progress per second as a function of
// its placement (GPUs per node, nodes spanned) and batch size, from the
// per-application profiles that the Pollux artifact measured on 16 x 4 T4
// (../shared/data/pollux-goodput-profiles, read at run time).
//
// What the profiles give, per application:
//   placements.csv   step and gradient-sync time per iteration for every
//                    placement of up to 4 nodes x 4 GPUs, at several local
//                    batch sizes;
//   scalability.csv  the same for 6..16 nodes;
//   validation-B.csv per epoch at global batch size B: the statistical
//                    progress needed to finish it and the gradient noise
//                    statistics (grad_sqr, grad_var).
// The model (written from the Pollux paper, OSDI '21, section 3, and the
// artifact's description of its simulator):
//   throughput   step time at the placement and the per-GPU (atomic) batch,
//                linear in the local batch between measured points; a
//                placement that was not measured is interpolated between the
//                nearest measured node counts and replica counts;
//   efficiency   gain = (var + sqr) / (var / scale + sqr), scale = global
//                batch / the smallest profiled batch (the gradient noise
//                scale argument of McCandlish et al.);
//   goodput      gain / (step time + accumulation steps x compute time):
//                statistical progress per second;
//   completion   a job is done when its progress reaches the end of its
//                application's last epoch (max_epochs; the artifact's values).
// A loaded GoodputModel is immutable; its const methods are thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace meridian::sim {

struct GoodputApp {
  std::string name;
  struct Epoch {
    double progress = 0;  // cumulative progress at the end of the epoch
    double grad_sqr = 0;
    double grad_var = 0;
  };
  std::map<int64_t, std::vector<Epoch>> validation;  // global batch -> epochs
  // Canonical placement ("24" = 2 GPUs on one node, 4 on another, rotated to
  // its smallest form) -> (local batch, step s, sync s), sorted by batch.
  std::map<std::string, std::vector<std::array<double, 3>>> placements;
  // node count -> replicas -> (local batch, step s, sync s): the mean of the
  // measured placements with that many nodes and replicas, plus scalability.csv.
  std::map<int32_t, std::map<int32_t, std::vector<std::array<double, 3>>>> grid;
  int64_t init_batch = 0;  // smallest profiled global batch
  int64_t max_batch = 0;   // largest profiled global batch
  int64_t min_local = 0;   // smallest measured per-GPU batch
  int64_t max_local = 0;   // largest measured per-GPU batch (yolov3: 8, as the artifact)
  int32_t max_epochs = 0;
  std::vector<double> epoch_end;  // progress at the end of epoch e (index e)
};

// A job's batch configuration: per-GPU batch and gradient-accumulation steps.
struct BatchConfig {
  int64_t atomic = 0;
  int32_t accum = 0;
  int64_t Global(int32_t replicas) const { return replicas * atomic * (accum + 1); }
};

// Where a job runs, as the goodput model sees it: GPUs on each node (no
// zeros) and, for jobs across regions, the extra time of each gradient sync.
struct GoodputPlacement {
  std::vector<int32_t> gpus_per_node;
  // Cross-region synchronisation: sync time is multiplied by this and
  // `extra_sync_s` is added (1 and 0 inside one region).
  double sync_factor = 1;
  double extra_sync_s = 0;
  int32_t replicas() const;
};

// The global batches a job may use: lo == hi > 0 is a fixed batch; 0 means
// the profile's bound (smallest / largest profiled batch).
struct BatchRange {
  int64_t lo = 0;
  int64_t hi = 0;
  bool fixed() const { return lo > 0 && lo == hi; }
};

// Progress state of one job under the goodput model.
struct GoodputJobState {
  int32_t epoch = 0;
  double progress = 0;
  BatchConfig batch;
};

class GoodputModel {
 public:
  // Loads every application directory under `dir` that has placements.csv,
  // scalability.csv and validation-*.csv. Errors name the file and line.
  static absl::StatusOr<std::unique_ptr<GoodputModel>> Load(const std::string& dir);
  // Builds a model from applications already in memory (tests).
  static std::unique_ptr<GoodputModel> FromApps(std::vector<GoodputApp> apps);

  const GoodputApp* Find(const std::string& app) const;

  // (step time, sync time) in seconds per iteration.
  std::array<double, 2> Throughput(const GoodputApp& app, const GoodputPlacement& p,
                                   double atomic) const;
  // Statistical progress per second at this placement, batch and epoch.
  double Goodput(const GoodputApp& app, const GoodputPlacement& p, const BatchConfig& b,
                 int32_t epoch) const;
  // The batch a job uses at this placement: a fixed global batch is split
  // over the GPUs (with accumulation when the per-GPU batch exceeds the
  // largest measured one, as the artifact does); otherwise the batch in the
  // range that maximises goodput at this placement and epoch. atomic == 0
  // when no batch in the range fits this many GPUs.
  BatchConfig ChooseBatch(const GoodputApp& app, const GoodputPlacement& p, BatchRange range,
                          int32_t epoch) const;
  // Advances `state` by `seconds` of training on `p`. Returns the seconds
  // used until the job completed, or -1 when it is still running after all
  // of them. The batch is re-chosen at each epoch boundary (ChooseBatch).
  double Advance(const GoodputApp& app, const GoodputPlacement& p, BatchRange range, double seconds,
                 GoodputJobState& state) const;
  // Fraction of the job done (progress / progress at completion), in [0, 1].
  double FractionDone(const GoodputApp& app, const GoodputJobState& state) const;

 private:
  GoodputModel() = default;
  std::vector<GoodputApp> apps_;
  std::map<std::string, size_t> by_name_;
};

// Default max_epochs (and max per-GPU batch) the Pollux artifact sets per
// application (simulator/applications.py): bert 2, cifar10 100, ncf 10,
// imagenet 90, deepspeech2 80, yolov3 50 (max local batch 8). Other
// applications: the fewest epochs any validation file has.
int32_t DefaultMaxEpochs(const std::string& app, int32_t rows);

}  // namespace meridian::sim
