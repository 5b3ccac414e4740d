#include "placement/registry.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meridian {

namespace {
template <typename Map, typename F>
absl::Status Add(Map& m, std::string name, F f, const char* kind) {
  if (m.contains(name))
    return absl::AlreadyExistsError(absl::StrCat(kind, " '", name, "' is already registered"));
  m.emplace(std::move(name), std::move(f));
  return absl::OkStatus();
}
template <typename Map>
std::vector<std::string> Names(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}
template <typename Map>
auto Make(const Map& m, const std::string& name, const PolicyOptions& opts, const char* kind)
    -> decltype(m.begin()->second(opts)) {
  auto it = m.find(name);
  if (it == m.end())
    return absl::NotFoundError(absl::StrCat("unknown ", kind, " '", name,
                                            "'; known: ", absl::StrJoin(Names(m), ", ")));
  return it->second(opts);
}
}  // namespace

absl::Status PolicyRegistry::RegisterFilter(std::string name, FilterFactory f) {
  return Add(filters_, std::move(name), std::move(f), "filter");
}
absl::Status PolicyRegistry::RegisterScorer(std::string name, ScorerFactory f) {
  return Add(scorers_, std::move(name), std::move(f), "scorer");
}
absl::Status PolicyRegistry::RegisterSelector(std::string name, SelectorFactory f) {
  return Add(selectors_, std::move(name), std::move(f), "selector");
}
absl::StatusOr<std::unique_ptr<Filter>> PolicyRegistry::MakeFilter(const std::string& name,
                                                                   const PolicyOptions& o) const {
  return Make(filters_, name, o, "filter");
}
absl::StatusOr<std::unique_ptr<Scorer>> PolicyRegistry::MakeScorer(const std::string& name,
                                                                   const PolicyOptions& o) const {
  return Make(scorers_, name, o, "scorer");
}
absl::StatusOr<std::unique_ptr<Selector>> PolicyRegistry::MakeSelector(
    const std::string& name, const PolicyOptions& o) const {
  return Make(selectors_, name, o, "selector");
}
absl::Status PolicyRegistry::RegisterQueuePolicy(std::string name, QueuePolicyFactory f) {
  return Add(queue_policies_, std::move(name), std::move(f), "queue policy");
}
absl::StatusOr<std::unique_ptr<QueuePolicy>> PolicyRegistry::MakeQueuePolicy(
    const std::string& name, const PolicyOptions& o) const {
  return Make(queue_policies_, name, o, "queue policy");
}
std::vector<std::string> PolicyRegistry::QueuePolicyNames() const { return Names(queue_policies_); }
std::vector<std::string> PolicyRegistry::FilterNames() const { return Names(filters_); }
std::vector<std::string> PolicyRegistry::ScorerNames() const { return Names(scorers_); }
std::vector<std::string> PolicyRegistry::SelectorNames() const { return Names(selectors_); }

absl::Status CheckKnownOptions(const PolicyOptions& opts, std::initializer_list<const char*> known,
                               const char* policy) {
  for (const auto& [k, v] : opts) {
    bool ok = false;
    for (const char* n : known) ok |= (k == n);
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(policy, ": unknown option '", k, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> NumberOption(const PolicyOptions& opts, const char* key, double fallback,
                                    double lo, double hi, const char* policy) {
  auto it = opts.find(key);
  if (it == opts.end()) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v) || !(v >= lo) || !(v <= hi))
    return absl::InvalidArgumentError(absl::StrCat(policy, ": ", key, " must be a number in [", lo,
                                                   ", ", hi, "], got '", it->second, "'"));
  return v;
}

}  // namespace meridian
