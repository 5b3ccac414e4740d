#include "serve/lb/upstreams.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace meridian::lb {

Upstreams::Upstreams(std::unique_ptr<Policy> policy, OutlierOptions options, const Clock* clock,
                     uint64_t seed)
    : policy_(std::move(policy)), options_(options), clock_(clock), rng_(seed) {}

std::vector<std::string> Upstreams::SetHosts(const std::vector<HostConfig>& hosts) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<State> next;
  std::vector<std::string> added;
  for (const HostConfig& c : hosts) {
    auto it = std::find_if(hosts_.begin(), hosts_.end(),
                           [&](const State& s) { return s.config.id == c.id; });
    State s;
    if (it == hosts_.end()) {
      s.healthy = c.presumed_healthy;
      added.push_back(c.id);
    } else {
      s = *it;
    }
    s.config = c;
    next.push_back(std::move(s));
  }
  std::sort(next.begin(), next.end(),
            [](const State& a, const State& b) { return a.config.id < b.config.id; });
  next.erase(std::unique(next.begin(), next.end(),
                         [](const State& a, const State& b) { return a.config.id == b.config.id; }),
             next.end());
  hosts_ = std::move(next);
  return added;
}

std::optional<std::string> Upstreams::Pick(const PickContext& in_ctx,
                                           const std::vector<std::string>& exclude) {
  std::lock_guard<std::mutex> l(mu_);
  double now = clock_->NowSeconds();
  scratch_.clear();
  scratch_index_.clear();
  PickContext ctx = in_ctx;
  ctx.local_configured = 0;
  ctx.zone_configured = 0;
  for (const State& s : hosts_) {
    if (ctx.client_region.empty() || s.config.region != ctx.client_region) continue;
    ++ctx.local_configured;
    if (!ctx.client_zone.empty() && s.config.zone == ctx.client_zone) ++ctx.zone_configured;
  }
  bool any_healthy = false;
  for (const State& s : hosts_) any_healthy = any_healthy || s.healthy;
  bool panic = !any_healthy && options_.panic_when_all_unhealthy;
  const LatencySum latencies = LatencySumLocked();
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const State& s = hosts_[i];
    if ((!s.healthy && !panic) || EjectedLocked(s, now) ||
        std::find(exclude.begin(), exclude.end(), s.config.id) != exclude.end())
      continue;
    scratch_.push_back(Host{s.config.id, s.config.region, s.in_flight, s.probed_in_flight,
                            s.latency_samples ? FadedLatencyLocked(s, now, latencies) : 0,
                            s.config.zone});
    scratch_index_.push_back(i);
  }
  if (scratch_.empty()) return std::nullopt;
  size_t pick = policy_->Pick(scratch_, ctx, rng_);
  State& s = hosts_[scratch_index_[std::min(pick, scratch_.size() - 1)]];
  ++s.in_flight;
  ++s.requests;
  ++picks_;
  return s.config.id;
}

bool Upstreams::SlowLocked(const State& s) const {
  if (options_.slow_factor <= 0 || s.latency_samples < static_cast<uint64_t>(options_.min_latency_samples))
    return false;
  std::vector<double> others;
  for (const State& o : hosts_)
    if (&o != &s && o.latency_samples >= static_cast<uint64_t>(options_.min_latency_samples))
      others.push_back(o.latency_ms);
  if (others.empty()) return false;
  std::nth_element(others.begin(), others.begin() + static_cast<long>(others.size() / 2),
                   others.end());
  double median = others[others.size() / 2];
  return s.latency_ms > options_.slow_factor * median &&
         s.latency_ms - median >= options_.slow_min_ms;
}

void Upstreams::MaybeEjectLocked(State& s, double now, const std::string& reason) {
  if (EjectedLocked(s, now)) return;
  int ejected = 0;
  for (const State& o : hosts_) ejected += EjectedLocked(o, now) ? 1 : 0;
  if (100.0 * (ejected + 1) > options_.max_ejected_percent * static_cast<double>(hosts_.size()))
    return;  // the cap: keep serving from this host rather than from too few
  ++s.ejections;
  s.ejected_until =
      now + std::min(options_.max_ejection_s, options_.base_ejection_s * s.ejections);
  s.consecutive_errors = 0;
  s.reason = reason;
}

Upstreams::LatencySum Upstreams::LatencySumLocked() const {
  LatencySum t;
  for (const State& o : hosts_)
    if (o.latency_samples > 0) {
      t.sum += o.policy_latency_ms;
      ++t.n;
    }
  return t;
}

double Upstreams::FadedLatencyLocked(const State& s, double now, const LatencySum& all) const {
  if ((options_.latency_decay_s <= 0 && options_.latency_decay_picks <= 0) ||
      s.latency_samples == 0 || all.n < 2)
    return s.policy_latency_ms;
  // Towards the others' mean: its own old average must not hold it up.
  double others = (all.sum - s.policy_latency_ms) / (all.n - 1);
  double age = std::max(0.0, now - s.last_answer_s);
  double missed = static_cast<double>(picks_ - s.picks_at_answer);
  double by_picks = options_.latency_decay_picks > 0
                        ? missed / (options_.latency_decay_picks * static_cast<double>(hosts_.size()))
                        : 0;
  double by_time = options_.latency_decay_s > 0 ? age / options_.latency_decay_s : 0;
  double w = std::exp(-by_time - by_picks);
  return others + (s.policy_latency_ms - others) * w;
}

void Upstreams::Done(const std::string& id, bool ok, double latency_ms) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = std::lower_bound(hosts_.begin(), hosts_.end(), id,
                             [](const State& s, const std::string& k) { return s.config.id < k; });
  if (it == hosts_.end() || it->config.id != id) return;  // removed meanwhile
  State& s = *it;
  double now = clock_->NowSeconds();
  if (s.in_flight > 0) --s.in_flight;
  if (ok) {
    s.consecutive_errors = 0;
    s.policy_latency_ms = s.latency_samples == 0
                              ? latency_ms
                              : (1 - options_.latency_alpha) *
                                        FadedLatencyLocked(s, now, LatencySumLocked()) +
                                    options_.latency_alpha * latency_ms;
    s.latency_ms = s.latency_samples == 0 ? latency_ms
                                          : (1 - options_.latency_alpha) * s.latency_ms +
                                                options_.latency_alpha * latency_ms;
    ++s.latency_samples;
    s.last_answer_s = now;
    s.picks_at_answer = picks_;
    // The median of the others costs a scan: look every few answers.
    if (s.latency_samples % 4 == 0 && SlowLocked(s))
      MaybeEjectLocked(s, now, absl::StrCat("slow: ", static_cast<int>(s.latency_ms + 0.5),
                                            " ms average"));
    return;
  }
  ++s.errors;
  ++s.consecutive_errors;
  if (options_.consecutive_errors > 0 && s.consecutive_errors >= options_.consecutive_errors)
    MaybeEjectLocked(s, now, absl::StrCat(s.consecutive_errors, " consecutive errors"));
}

void Upstreams::HealthResult(const std::string& id, bool ok, int64_t probed_in_flight,
                             int unhealthy_threshold, int healthy_threshold) {
  std::lock_guard<std::mutex> l(mu_);
  for (State& s : hosts_) {
    if (s.config.id != id) continue;
    if (ok) {
      s.check_failures = 0;
      if (++s.check_successes >= healthy_threshold) s.healthy = true;
      s.probed_in_flight = probed_in_flight;
    } else {
      s.check_successes = 0;
      if (++s.check_failures >= unhealthy_threshold) s.healthy = false;
      s.probed_in_flight = -1;
    }
  }
}

std::vector<HostStatus> Upstreams::Status() const {
  std::lock_guard<std::mutex> l(mu_);
  double now = clock_->NowSeconds();
  std::vector<HostStatus> out;
  for (const State& s : hosts_) {
    HostStatus h;
    h.id = s.config.id;
    h.region = s.config.region;
    h.zone = s.config.zone;
    h.healthy = s.healthy;
    h.ejected = EjectedLocked(s, now);
    h.in_flight = s.in_flight;
    h.probed_in_flight = s.probed_in_flight;
    h.latency_ms = s.latency_ms;
    h.requests = s.requests;
    h.errors = s.errors;
    h.ejections = static_cast<uint64_t>(s.ejections);
    h.ejected_for_s = h.ejected ? s.ejected_until - now : 0;
    h.last_ejection_reason = s.reason;
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<std::string> Upstreams::HostIds() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const State& s : hosts_) out.push_back(s.config.id);
  return out;
}

int64_t Upstreams::InFlight() const {
  std::lock_guard<std::mutex> l(mu_);
  int64_t n = 0;
  for (const State& s : hosts_) n += s.in_flight;
  return n;
}

std::string Upstreams::Describe() const {
  std::lock_guard<std::mutex> l(mu_);
  double now = clock_->NowSeconds();
  int unhealthy = 0, ejected = 0;
  for (const State& s : hosts_) {
    if (!s.healthy) ++unhealthy;
    else if (EjectedLocked(s, now)) ++ejected;
  }
  return absl::StrCat(hosts_.size(), hosts_.size() == 1 ? " replica" : " replicas", ": ",
                      unhealthy, " failing health checks, ", ejected, " ejected");
}

}  // namespace meridian::lb
