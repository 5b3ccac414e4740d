#include "placement/policy/data_locality_scorer.h"

namespace meridian {

namespace {
class DataLocalityScorer final : public Scorer {
 public:
  std::string_view name() const override { return "data_locality"; }
  double Score(const PlacementContext& ctx, NodeId id) const override {
    if (!ctx.job.dataset.Valid()) return 100.0;
    const Dataset& d = ctx.fleet.dataset(ctx.job.dataset);
    RegionId r = ctx.fleet.node(id).region;
    if (r == d.home) return 100.0;
    const Link& l = ctx.fleet.link(d.home, r);
    if (!l.known) return 0.0;
    double egress_usd = d.size_gb * l.egress_usd_per_gb;
    double transfer_h = d.size_gb * 8.0 / l.gbps / 3600.0;
    return 100.0 / (1.0 + egress_usd / 10.0 + transfer_h);
  }
};
}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> MakeDataLocalityScorer(const PolicyOptions& options) {
  if (auto s = CheckKnownOptions(options, {}, "scorer data_locality"); !s.ok()) return s;
  return std::make_unique<DataLocalityScorer>();
}

}  // namespace meridian
