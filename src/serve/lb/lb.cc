#include "serve/lb/lb.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meridian::lb {

absl::Status LbRegistry::Register(std::string name, std::string summary, Factory f) {
  if (entries_.count(name)) return absl::AlreadyExistsError(absl::StrCat("policy ", name, " twice"));
  entries_[std::move(name)] = Entry{std::move(summary), std::move(f)};
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Policy>> LbRegistry::Make(const std::string& name,
                                                         const LbOptions& options) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    return absl::InvalidArgumentError(absl::StrCat("unknown load-balancing policy '", name,
                                                   "'; known: ", absl::StrJoin(Names(), ", ")));
  return it->second.factory(options);
}

std::vector<std::string> LbRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

std::string LbRegistry::Summary(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? "" : it->second.summary;
}

absl::Status CheckLbOptions(const LbOptions& options, std::initializer_list<const char*> known,
                            const char* policy) {
  for (const auto& [key, value] : options) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) {
      std::vector<std::string> names(known.begin(), known.end());
      return absl::InvalidArgumentError(
          absl::StrCat("policy ", policy, " has no option '", key, "'",
                       names.empty() ? "; it takes none" : "; it takes: ",
                       absl::StrJoin(names, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> LbOptionDouble(const LbOptions& options, const char* key, double fallback,
                                      double min, const char* policy) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v) || !(v >= min))
    return absl::InvalidArgumentError(absl::StrCat("policy ", policy, " option ", key, "='",
                                                   it->second, "' is not a number >= ", min));
  return v;
}

double MeanLatency(const std::vector<Host>& hosts) {
  double sum = 0;
  int n = 0;
  for (const Host& h : hosts)
    if (h.latency_ms > 0) {
      sum += h.latency_ms;
      ++n;
    }
  return n ? sum / n : 1.0;
}

double ExpectedCost(const Host& h, double mean_latency_ms) {
  double lat = h.latency_ms > 0 ? h.latency_ms : mean_latency_ms;
  return static_cast<double>(h.in_flight + 1) * lat;
}

uint64_t StableHash(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace meridian::lb
