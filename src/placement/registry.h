// PolicyRegistry: policy name -> factory, for filters, scorers and selectors.
//
// Factories validate their own options (a string map, as read from a
// profile) and return a ready policy or InvalidArgument naming the bad option.
// Built-ins are added by an explicit RegisterBuiltinPolicies() call, never by
// static initialisation, so a test can build a registry with exactly the
// policies it wants. Not thread-safe while registering; const use afterwards
// is safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "placement/policy.h"
#include "placement/queue_policy.h"

namespace meridian {

using PolicyOptions = std::map<std::string, std::string>;

class PolicyRegistry {
 public:
  using FilterFactory = std::function<absl::StatusOr<std::unique_ptr<Filter>>(const PolicyOptions&)>;
  using ScorerFactory = std::function<absl::StatusOr<std::unique_ptr<Scorer>>(const PolicyOptions&)>;
  using SelectorFactory =
      std::function<absl::StatusOr<std::unique_ptr<Selector>>(const PolicyOptions&)>;

  absl::Status RegisterFilter(std::string name, FilterFactory f);
  absl::Status RegisterScorer(std::string name, ScorerFactory f);
  absl::Status RegisterSelector(std::string name, SelectorFactory f);
  using QueuePolicyFactory =
      std::function<absl::StatusOr<std::unique_ptr<QueuePolicy>>(const PolicyOptions&)>;
  absl::Status RegisterQueuePolicy(std::string name, QueuePolicyFactory f);
  absl::StatusOr<std::unique_ptr<QueuePolicy>> MakeQueuePolicy(const std::string& name,
                                                               const PolicyOptions& opts = {}) const;
  std::vector<std::string> QueuePolicyNames() const;

  absl::StatusOr<std::unique_ptr<Filter>> MakeFilter(const std::string& name,
                                                     const PolicyOptions& opts = {}) const;
  absl::StatusOr<std::unique_ptr<Scorer>> MakeScorer(const std::string& name,
                                                     const PolicyOptions& opts = {}) const;
  absl::StatusOr<std::unique_ptr<Selector>> MakeSelector(const std::string& name,
                                                         const PolicyOptions& opts = {}) const;

  std::vector<std::string> FilterNames() const;
  std::vector<std::string> ScorerNames() const;
  std::vector<std::string> SelectorNames() const;

 private:
  std::map<std::string, FilterFactory> filters_;
  std::map<std::string, ScorerFactory> scorers_;
  std::map<std::string, SelectorFactory> selectors_;
  std::map<std::string, QueuePolicyFactory> queue_policies_;
};

// Adds every built-in policy of placement/policy/.
void RegisterBuiltinPolicies(PolicyRegistry& registry);

// Rejects options a policy does not know. Helper for factories.
absl::Status CheckKnownOptions(const PolicyOptions& opts, std::initializer_list<const char*> known,
                               const char* policy);

// The number in option `key` (`fallback` when absent). InvalidArgument naming
// the policy and the option when it is not a number in [lo, hi].
absl::StatusOr<double> NumberOption(const PolicyOptions& opts, const char* key, double fallback,
                                    double lo, double hi, const char* policy);

}  // namespace meridian
