// prequal: in the spirit of Prequal (Wydrowski et al., NSDI '24). Each
// pick samples `probes` hosts; a host's load is the larger of this
// gateway's requests in flight and the replica's own count from its last
// probe (requests from other gateways included). Sampled hosts above the
// `quantile` of load among all eligible hosts are hot; the cold one with
// the lowest latency wins (a host without a latency yet is tried first;
// latencies within half of the lowest tie, and the lighter load wins), and
// if every sampled host is hot, the least loaded. Load keeps queues
// short; latency steers away from slow hosts whose queues are short.
#include <algorithm>

#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

int64_t Load(const Host& h) { return std::max(h.in_flight, h.probed_in_flight); }

class Prequal final : public Policy {
 public:
  Prequal(int probes, double quantile) : probes_(probes), quantile_(quantile) {}
  std::string_view name() const override { return "prequal"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext&, Rng& rng) override {
    size_t n = hosts.size();
    loads_.resize(n);
    for (size_t i = 0; i < n; ++i) loads_[i] = Load(hosts[i]);
    std::vector<int64_t> sorted = loads_;
    size_t q = std::min(n - 1, static_cast<size_t>(quantile_ * static_cast<double>(n - 1) + 0.5));
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(q), sorted.end());
    int64_t hot_above = sorted[q];
    // Sample without replacement: a partial Fisher-Yates shuffle.
    order_.resize(n);
    for (size_t i = 0; i < n; ++i) order_[i] = i;
    size_t k = std::min(n, static_cast<size_t>(probes_));
    for (size_t i = 0; i < k; ++i)
      std::swap(order_[i], order_[static_cast<size_t>(
                               rng.Uniform(static_cast<int64_t>(i), static_cast<int64_t>(n) - 1))]);
    // Among the cold probes, the lowest latency, where latencies within
    // kLatencyTolerance (or kLatencyNoiseMs) of the lowest count as equal and the lighter load
    // decides (latency averages jitter; a strict minimum would pile
    // everything on whichever host is luckiest).
    constexpr double kLatencyTolerance = 1.5;
    double min_latency = -1;
    size_t coolest = order_[0];
    for (size_t j = 0; j < k; ++j) {
      size_t i = order_[j];
      if (loads_[i] < loads_[coolest]) coolest = i;
      if (loads_[i] > hot_above) continue;
      if (min_latency < 0 || hosts[i].latency_ms < min_latency) min_latency = hosts[i].latency_ms;
    }
    size_t best = n;
    for (size_t j = 0; j < k && min_latency >= 0; ++j) {
      size_t i = order_[j];
      bool slower = hosts[i].latency_ms > kLatencyTolerance * min_latency &&
                    hosts[i].latency_ms - min_latency >= kLatencyNoiseMs;
      if (loads_[i] > hot_above || slower) continue;
      if (best == n || loads_[i] < loads_[best]) best = i;
    }
    return best == n ? coolest : best;
  }

 private:
  int probes_;
  double quantile_;
  std::vector<int64_t> loads_;
  std::vector<size_t> order_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakePrequal(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {"probes", "quantile"}, "prequal"); !s.ok())
    return s;
  absl::StatusOr<double> probes = LbOptionDouble(options, "probes", 3, 1, "prequal");
  if (!probes.ok()) return probes.status();
  absl::StatusOr<double> quantile = LbOptionDouble(options, "quantile", 0.75, 0, "prequal");
  if (!quantile.ok()) return quantile.status();
  if (*quantile > 1) return absl::InvalidArgumentError("policy prequal option quantile is above 1");
  return std::make_unique<Prequal>(static_cast<int>(*probes), *quantile);
}

}  // namespace meridian::lb
