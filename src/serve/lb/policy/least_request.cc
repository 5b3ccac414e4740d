// least_request: power of two choices (Mitzenmacher). Two hosts at random,
// the one with fewer requests in flight, as Envoy's least request. When
// their latency averages differ by more than half, the lower expected wait,
// (in flight + 1) x latency, decides instead, as in Linkerd's peak-EWMA
// balancer: a slow host gets few requests even while its queue is short.
#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class LeastRequest final : public Policy {
 public:
  explicit LeastRequest(bool latency_aware) : latency_aware_(latency_aware) {}
  std::string_view name() const override { return "least_request"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext&, Rng& rng) override {
    all_.resize(hosts.size());
    for (size_t i = 0; i < hosts.size(); ++i) all_[i] = i;
    return PickTwoByCost(hosts, all_, latency_aware_, rng);
  }

 private:
  bool latency_aware_;
  std::vector<size_t> all_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakeLeastRequest(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {"latency_aware"}, "least_request"); !s.ok())
    return s;
  bool latency_aware = true;
  if (auto it = options.find("latency_aware"); it != options.end()) {
    if (it->second != "true" && it->second != "false")
      return absl::InvalidArgumentError("policy least_request option latency_aware='" +
                                        it->second + "' is not true or false");
    latency_aware = it->second == "true";
  }
  return std::make_unique<LeastRequest>(latency_aware);
}

}  // namespace meridian::lb
