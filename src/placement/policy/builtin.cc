// RegisterBuiltinPolicies: the one place that lists the built-in policies.
#include "placement/policy/best_fit_scorer.h"
#include "placement/policy/capacity_filter.h"
#include "placement/policy/cost_scorer.h"
#include "placement/policy/data_locality_scorer.h"
#include "placement/policy/dot_product_scorer.h"
#include "placement/policy/fragmentation_scorer.h"
#include "placement/policy/gpu_type_filter.h"
#include "placement/policy/health_filter.h"
#include "placement/policy/max_score_selector.h"
#include "placement/policy/queue_policies.h"
#include "placement/policy/random_top_selector.h"
#include "placement/policy/residency_filter.h"
#include "placement/policy/spot_filter.h"
#include "placement/policy/spread_scorer.h"
#include "placement/policy/taints_filter.h"
#include "placement/policy/topology_scorer.h"
#include "placement/registry.h"

namespace meridian {

void RegisterBuiltinPolicies(PolicyRegistry& r) {
  auto must = [](absl::Status s) {
    if (!s.ok()) std::abort();  // a name registered twice is a programming error
  };
  must(r.RegisterFilter("health", MakeHealthFilter));
  must(r.RegisterFilter("residency", MakeResidencyFilter));
  must(r.RegisterFilter("gpu_type", MakeGpuTypeFilter));
  must(r.RegisterFilter("spot", MakeSpotFilter));
  must(r.RegisterFilter("taints", MakeTaintsFilter));
  must(r.RegisterFilter("capacity", MakeCapacityFilter));
  must(r.RegisterScorer("best_fit", MakeBestFitScorer));
  must(r.RegisterScorer("spread", MakeSpreadScorer));
  must(r.RegisterScorer("fragmentation", MakeFragmentationScorer));
  must(r.RegisterScorer("cost", MakeCostScorer));
  must(r.RegisterScorer("data_locality", MakeDataLocalityScorer));
  must(r.RegisterScorer("topology", MakeTopologyScorer));
  must(r.RegisterScorer("dot_product", MakeDotProductScorer));
  must(r.RegisterSelector("max_score", MakeMaxScoreSelector));
  must(r.RegisterSelector("random_top", MakeRandomTopSelector));
  must(r.RegisterQueuePolicy("drf", MakeDrfQueuePolicy));
  must(r.RegisterQueuePolicy("fifo", MakeFifoQueuePolicy));
  must(r.RegisterQueuePolicy("sjf", MakeSjfQueuePolicy));
  must(r.RegisterQueuePolicy("las", MakeLasQueuePolicy));
}

}  // namespace meridian
