// least_loaded: every host scanned, the fewest requests in flight, ties
// broken at random. Exact where least_request samples; costs O(hosts).
#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class LeastLoaded final : public Policy {
 public:
  std::string_view name() const override { return "least_loaded"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext&, Rng& rng) override {
    size_t best = 0;
    int ties = 0;
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (i == 0 || hosts[i].in_flight < hosts[best].in_flight) {
        best = i;
        ties = 1;
      } else if (hosts[i].in_flight == hosts[best].in_flight) {
        // Reservoir sampling keeps each tied host equally likely.
        if (rng.Uniform(0, ties++) == 0) best = i;
      }
    }
    return best;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakeLeastLoaded(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {}, "least_loaded"); !s.ok()) return s;
  return std::make_unique<LeastLoaded>();
}

}  // namespace meridian::lb
