// round_robin: hosts in turn. Ignores load and latency; spreads exactly
// evenly when hosts are equal (the baseline of the conformance suite).
#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class RoundRobin final : public Policy {
 public:
  std::string_view name() const override { return "round_robin"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext&, Rng&) override {
    return next_++ % hosts.size();
  }

 private:
  uint64_t next_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakeRoundRobin(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {}, "round_robin"); !s.ok()) return s;
  return std::make_unique<RoundRobin>();
}

}  // namespace meridian::lb
