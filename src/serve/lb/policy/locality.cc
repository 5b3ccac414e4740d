// locality: requests stay as near the caller as load allows, in tiers, as
// Envoy's zone-aware routing and locality failover do: first the caller's
// zone (when the caller and the replicas say one), then the caller's
// region, then every region. A tier is used while its eligible hosts
// average fewer than `overflow_in_flight` requests in flight and at least
// `panic_percent` of its configured hosts are eligible (Envoy's panic
// threshold, per tier); otherwise the next tier. Within the chosen tier:
// power of two choices by expected wait. A caller without a region, or
// from a region without hosts, uses all.
#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class Locality final : public Policy {
 public:
  Locality(double overflow, double panic) : overflow_(overflow), panic_(panic) {}
  std::string_view name() const override { return "locality"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext& ctx, Rng& rng) override {
    zone_.clear();
    region_.clear();
    all_.resize(hosts.size());
    int64_t zone_load = 0, region_load = 0;
    for (size_t i = 0; i < hosts.size(); ++i) {
      all_[i] = i;
      if (ctx.client_region.empty() || hosts[i].region != ctx.client_region) continue;
      region_.push_back(i);
      region_load += hosts[i].in_flight;
      if (!ctx.client_zone.empty() && hosts[i].zone == ctx.client_zone) {
        zone_.push_back(i);
        zone_load += hosts[i].in_flight;
      }
    }
    if (Usable(zone_, zone_load, ctx.zone_configured))
      return PickTwoByCost(hosts, zone_, true, rng);
    if (Usable(region_, region_load, ctx.local_configured))
      return PickTwoByCost(hosts, region_, true, rng);
    return PickTwoByCost(hosts, all_, true, rng);
  }

 private:
  // A tier takes the request unless it is empty, too few of its configured
  // hosts are up (panic), or it is busy (overflow).
  bool Usable(const std::vector<size_t>& tier, int64_t load, int configured) const {
    if (tier.empty()) return false;
    if (configured > 0 && 100.0 * static_cast<double>(tier.size()) / configured < panic_)
      return false;
    return static_cast<double>(load) / static_cast<double>(tier.size()) < overflow_;
  }

  double overflow_, panic_;
  std::vector<size_t> zone_, region_, all_;
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
