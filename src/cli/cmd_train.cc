// `meridian train`: single-process training of the MLP on the UCI digits (or
// a generated set), the reference the distributed modes are measured against.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/cluster.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "train/dataset.h"
#include "train/mlp.h"

namespace meridian::cli {

int RunTrain(const TrainArgs& a) {
  train::Dataset all;
  std::string source = a.dataset;
  if (a.dataset == "synthetic") {
    all = train::SyntheticDigits(a.synthetic_samples, a.seed);
  } else {
    std::string path = a.dataset;
    if (a.dataset == "digits") {
      const char* data = std::getenv("MERIDIAN_DATA");
      path = std::string(data ? data : "../shared/data") + "/sklearn-digits/digits.csv.gz";
    }
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr,
                   "meridian train: dataset file %s not found (set MERIDIAN_DATA to the data "
                   "folder, give a CSV path, or use --dataset synthetic)\n",
                   path.c_str());
      return kExitInvalid;
    }
    absl::StatusOr<train::Dataset> d = train::LoadDigitsCsv(path);
    if (!d.ok()) {
      std::fprintf(stderr, "meridian train: %s\n", std::string(d.status().message()).c_str());
      return kExitInvalid;
    }
    all = *std::move(d);
    source = path;
  }
  train::Dataset tr, te;
  train::Split(all, a.test_fraction, a.seed, &tr, &te);
  train::TrainOptions o;
  o.hidden = a.hidden;
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.lr = static_cast<float>(a.lr);
  o.seed = a.seed;
  auto t0 = std::chrono::steady_clock::now();
  train::TrainResult r = train::TrainLocal(tr, te, o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json out = {{"mode", "local"},
                        {"workers", 1},
                        {"dataset", source},
                        {"train_samples", tr.size()},
                        {"test_samples", te.size()},
                        {"epochs", a.epochs},
                        {"steps", r.steps},
                        {"train_loss", r.train_loss},
                        {"test_accuracy", r.test_accuracy},
                        {"seconds", s},
                        {"samples_per_sec", static_cast<double>(r.samples) / s},
                        {"wan_bytes", 0},
                        {"compute_fraction", 1.0}};
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "trained on %zu samples of %s for %d epochs (%lld steps) in %.2fs: test accuracy "
        "%.2f%% on %zu held-out samples\n",
        tr.size(), source.c_str(), a.epochs, static_cast<long long>(r.steps), s,
        r.test_accuracy * 100, te.size());
  }
  return kExitOk;
}

}  // namespace meridian::cli
