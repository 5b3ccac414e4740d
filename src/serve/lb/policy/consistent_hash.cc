// consistent_hash: a ring of `vnodes` points per host; a request goes to
// the first point at or after the hash of its affinity key, so the same
// key keeps its host, and adding or removing one host moves only the keys
// of its arcs (about 1/n). Requests without a key fall back to power of
// two choices. The ring is rebuilt when the eligible set changes.
#include <algorithm>

#include "serve/lb/policy/builtin.h"

namespace meridian::lb {
namespace {

class ConsistentHash final : public Policy {
 public:
  explicit ConsistentHash(int vnodes) : vnodes_(vnodes) {}
  std::string_view name() const override { return "consistent_hash"; }
  size_t Pick(const std::vector<Host>& hosts, const PickContext& ctx, Rng& rng) override {
    if (ctx.affinity_key.empty()) {
      all_.resize(hosts.size());
      for (size_t i = 0; i < hosts.size(); ++i) all_[i] = i;
      return PickTwoByCost(hosts, all_, true, rng);
    }
    Rebuild(hosts);
    uint64_t h = StableHash(ctx.affinity_key);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, size_t{0}));
    if (it == ring_.end()) it = ring_.begin();
    return it->second;
  }

 private:
  void Rebuild(const std::vector<Host>& hosts) {
    std::string key;
    for (const Host& h : hosts) key.append(h.id).append("|");
    if (key == ring_key_) return;
    ring_key_ = key;
    ring_.clear();
    for (size_t i = 0; i < hosts.size(); ++i)
      for (int v = 0; v < vnodes_; ++v)
        ring_.emplace_back(StableHash(std::string(hosts[i].id) + "#" + std::to_string(v)), i);
    std::sort(ring_.begin(), ring_.end());
  }

  int vnodes_;
  std::string ring_key_;
  std::vector<std::pair<uint64_t, size_t>> ring_;
  std::vector<size_t> all_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Policy>> MakeConsistentHash(const LbOptions& options) {
  if (absl::Status s = CheckLbOptions(options, {"vnodes"}, "consistent_hash"); !s.ok()) return s;
  absl::StatusOr<double> v = LbOptionDouble(options, "vnodes", 100, 1, "consistent_hash");
  if (!v.ok()) return v.status();
  return std::make_unique<ConsistentHash>(static_cast<int>(*v));
}

}  // namespace meridian::lb
