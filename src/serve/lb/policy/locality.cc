// locality: requests stay in the caller's region while its hosts average
// fewer than `overflow_in_flight` requests in flight; past that, or when
// fewer than `panic_percent` of the region's configured hosts are eligible
// (Envoy's panic threshold, applied to the region), they go to every
// region. Within the chosen set: power of two choices by expected wait.
// A caller without a region, or from a region without hosts, uses all.
#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class Locality final : public Policy {
 public:
  Locality(double overflow, double panic) : overflow_(overflow), panic_(panic) {}
  std::string_view name() const override { return "locality"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext& ctx, Rng& rng) override {
    local_.clear();
    all_.resize(hosts.size());
    int64_t local_load = 0;
    for (size_t i = 0; i < hosts.size(); ++i) {
      all_[i] = i;
      if (!ctx.client_region.empty() && hosts[i].region == ctx.client_region) {
        local_.push_back(i);
        local_load += hosts[i].in_flight;
      }
    }
    bool use_local = !local_.empty();
    if (use_local && ctx.local_configured > 0 &&
        100.0 * static_cast<double>(local_.size()) / ctx.local_configured < panic_)
      use_local = false;  // too few of the region's hosts are up
    if (use_local &&
        static_cast<double>(local_load) / static_cast<double>(local_.size()) >= overflow_)
      use_local = false;  // the region is busy: spill
    return PickTwoByCost(hosts, use_local ? local_ : all_, true, rng);
  }

 private:
  double overflow_, panic_;
  std::vector<size_t> local_, all_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakeLocality(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {"overflow_in_flight", "panic_percent"}, "locality");
      !s.ok())
    return s;
  absl::StatusOr<double> overflow = LbOptionDouble(options, "overflow_in_flight", 8, 0, "locality");
  if (!overflow.ok()) return overflow.status();
  absl::StatusOr<double> panic = LbOptionDouble(options, "panic_percent", 50, 0, "locality");
  if (!panic.ok()) return panic.status();
  return std::make_unique<Locality>(*overflow, *panic);
}

}  // namespace meridian::lb
