#include "placement/policy/queue_policies.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace meridian {

namespace {

class DrfQueuePolicy final : public QueuePolicy {
 public:
  std::string_view name() const override { return "drf"; }
  double Key(const QueuedJob&, double tenant_share) const override { return tenant_share; }
  bool UsesTenantShare() const override { return true; }
};

class FifoQueuePolicy final : public QueuePolicy {
 public:
  std::string_view name() const override { return "fifo"; }
  double Key(const QueuedJob& j, double) const override { return j.job.submit_time_s; }
};

class SjfQueuePolicy final : public QueuePolicy {
 public:
  std::string_view name() const override { return "sjf"; }
  double Key(const QueuedJob& j, double) const override { return j.job.duration_s; }
};

class LasQueuePolicy final : public QueuePolicy {
 public:
  LasQueuePolicy(std::vector<double> thresholds, double interval)
      : thresholds_(std::move(thresholds)), interval_(interval) {}
  std::string_view name() const override { return "las"; }
  double Key(const QueuedJob& j, double) const override {
    // Tier first, FIFO inside the tier.
    return double(Tier(j)) * 1e12 + j.job.submit_time_s;
  }
  int32_t Tier(const QueuedJob& j) const override {
    return static_cast<int32_t>(
        std::upper_bound(thresholds_.begin(), thresholds_.end(), j.attained_gpu_s) -
        thresholds_.begin());
  }
  double PassIntervalSeconds() const override { return interval_; }

 private:
  std::vector<double> thresholds_;
  double interval_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeDrfQueuePolicy(const PolicyOptions& o) {
  if (auto s = CheckKnownOptions(o, {}, "queue policy drf"); !s.ok()) return s;
  return std::make_unique<DrfQueuePolicy>();
}
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeFifoQueuePolicy(const PolicyOptions& o) {
  if (auto s = CheckKnownOptions(o, {}, "queue policy fifo"); !s.ok()) return s;
  return std::make_unique<FifoQueuePolicy>();
}
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeSjfQueuePolicy(const PolicyOptions& o) {
  if (auto s = CheckKnownOptions(o, {}, "queue policy sjf"); !s.ok()) return s;
  return std::make_unique<SjfQueuePolicy>();
}
absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeLasQueuePolicy(const PolicyOptions& o) {
  if (auto s = CheckKnownOptions(o, {"thresholds", "interval_s"}, "queue policy las"); !s.ok())
    return s;
  std::vector<double> thresholds = {3600, 36000};
  double interval = 60;
  if (auto it = o.find("thresholds"); it != o.end()) {
    thresholds.clear();
    for (absl::string_view part : absl::StrSplit(it->second, ',')) {
      double v;
      if (!absl::SimpleAtod(part, &v) || !(v > 0) || v > 1e15 ||
          (!thresholds.empty() && v <= thresholds.back()))
        return absl::InvalidArgumentError(absl::StrCat(
            "queue policy las: thresholds must be increasing positive GPU-seconds, got '",
            it->second, "'"));
      thresholds.push_back(v);
    }
  }
  if (auto it = o.find("interval_s"); it != o.end()) {
    if (!absl::SimpleAtod(it->second, &interval) || !(interval > 0) || interval > 1e9)
      return absl::InvalidArgumentError(
          absl::StrCat("queue policy las: interval_s must be a positive number, got '",
                       it->second, "'"));
  }
  return std::make_unique<LasQueuePolicy>(std::move(thresholds), interval);
}

}  // namespace meridian
