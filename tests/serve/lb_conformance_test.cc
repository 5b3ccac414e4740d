// One conformance suite for every load-balancing policy in the registry,
// over a seeded discrete-event simulation of replicas (virtual time on a
// FakeClock, no sockets, no sleeps): distribution under equal load,
// avoidance of a slow replica, locality preference and overflow, ejection
// and return. Policy-specific properties (hash affinity) follow.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <queue>
#include <set>

#include "core/clock.h"
#include "serve/lb/lb.h"
#include "serve/lb/upstreams.h"

namespace meridian::lb {
namespace {

using ::testing::HasSubstr;

struct SimReplica {
  std::string id, region;
  double service_ms = 10;
  bool fails = false;  // answers every request with an error, at once
};

struct SimLoad {
  int requests = 20000;
  double in_flight = 8;          // mean requests in flight (sets the arrival rate)
  std::string client_region;
  bool keys = true;              // a distinct affinity key per request
};

struct SimResult {
  std::map<std::string, int> picks;
  int unavailable = 0;  // no eligible replica
  int errors = 0;
  double Share(const std::string& id, int total) const {
    auto it = picks.find(id);
    return it == picks.end() ? 0.0 : static_cast<double>(it->second) / total;
  }
};

std::vector<std::string> Policies() {
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  return r.Names();
}

// Policies that look at load or latency; round_robin and consistent_hash do
// not, by design, and rely on outlier ejection to avoid a slow replica.
bool LoadAware(const std::string& p) { return p != "round_robin" && p != "consistent_hash"; }

class LbConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Upstreams> Make(const std::vector<SimReplica>& replicas, OutlierOptions o = {},
                                  LbOptions options = {}) {
    LbRegistry r;
    RegisterBuiltinLbPolicies(r);
    absl::StatusOr<std::unique_ptr<Policy>> p = r.Make(GetParam(), options);
    EXPECT_TRUE(p.ok()) << p.status();
    auto up = std::make_unique<Upstreams>(*std::move(p), o, &clock_, 7);
    std::vector<HostConfig> hosts;
    for (const SimReplica& s : replicas) hosts.push_back({s.id, s.region});
    up->SetHosts(hosts);
    return up;
  }

  // Poisson arrivals at the rate that keeps `load.in_flight` requests in
  // flight on average at the mean service time; service times jitter
  // +-20%. Every event advances the fake clock.
  SimResult Run(Upstreams& up, const std::vector<SimReplica>& replicas, const SimLoad& load) {
    Rng rng(11);
    double mean_ms = 0;
    for (const SimReplica& s : replicas) mean_ms += s.service_ms / replicas.size();
    double gap_ms = mean_ms / load.in_flight;
    struct Done {
      double at_ms;
      std::string id;
      bool ok;
      double latency_ms;
      bool operator>(const Done& o) const { return at_ms > o.at_ms; }
    };
    std::priority_queue<Done, std::vector<Done>, std::greater<Done>> pending;
    SimResult out;
    double now_ms = clock_.NowSeconds() * 1000;
    for (int i = 0; i < load.requests; ++i) {
      now_ms += -gap_ms * std::log(1 - rng.UniformReal());
      while (!pending.empty() && pending.top().at_ms <= now_ms) {
        Done d = pending.top();
        pending.pop();
        clock_.Set(d.at_ms / 1000);
        up.Done(d.id, d.ok, d.latency_ms);
      }
      clock_.Set(now_ms / 1000);
      PickContext ctx;
      ctx.client_region = load.client_region;
      if (load.keys) ctx.affinity_key = "user-" + std::to_string(rng.Uniform(0, 1000000));
      std::optional<std::string> id = up.Pick(ctx, {});
      if (!id) {
        ++out.unavailable;
        continue;
      }
      ++out.picks[*id];
      const SimReplica& s = *std::find_if(replicas.begin(), replicas.end(),
                                          [&](const SimReplica& r) { return r.id == *id; });
      double t = s.fails ? 0.1 : s.service_ms * (0.8 + 0.4 * rng.UniformReal());
      if (s.fails) ++out.errors;
      pending.push(Done{now_ms + t, *id, !s.fails, t});
    }
    while (!pending.empty()) {
      clock_.Set(pending.top().at_ms / 1000);
      up.Done(pending.top().id, pending.top().ok, pending.top().latency_ms);
      pending.pop();
    }
    return out;
  }

  FakeClock clock_{1000};
};

std::vector<SimReplica> Equal(int n, const std::string& region = "a") {
  std::vector<SimReplica> r;
  for (int i = 0; i < n; ++i) r.push_back({"10.0.0." + std::to_string(i) + ":80", region, 10, false});
  return r;
}

TEST_P(LbConformanceTest, SpreadsEquallyOverEqualReplicas) {
  std::vector<SimReplica> replicas = Equal(4);
  auto up = Make(replicas);
  SimLoad load;
  SimResult r = Run(*up, replicas, load);
  EXPECT_EQ(r.unavailable, 0);
  for (const SimReplica& s : replicas)
    EXPECT_NEAR(r.Share(s.id, load.requests), 0.25, 0.05) << GetParam() << " " << s.id;
}

TEST_P(LbConformanceTest, AvoidsAFiveTimesSlowerReplica) {
  std::vector<SimReplica> replicas = Equal(4);
  replicas[0].service_ms = 50;
  SimLoad load;
  // With outlier ejection (the gateway's default), every policy stops
  // sending to the slow replica: the latency-blind ones because it is
  // ejected once it has a latency record.
  {
    auto up = Make(replicas);
    SimResult r = Run(*up, replicas, load);
    EXPECT_LT(r.Share(replicas[0].id, load.requests), 0.02) << GetParam();
    bool ejected = false;
    for (const HostStatus& h : up->Status())
      if (h.id == replicas[0].id) ejected = h.ejections > 0;
    if (!LoadAware(GetParam())) {
      EXPECT_TRUE(ejected) << GetParam();
    }
  }
  // Without it, the policy alone: load-aware ones send it well under an
  // equal share; the others an equal share, as documented.
  OutlierOptions no_slow;
  no_slow.slow_factor = 0;
  auto up = Make(replicas, no_slow);
  SimResult r = Run(*up, replicas, load);
  double share = r.Share(replicas[0].id, load.requests);
  if (LoadAware(GetParam())) {
    EXPECT_LT(share, 0.10) << GetParam();
  } else {
    EXPECT_NEAR(share, 0.25, 0.05) << GetParam();
  }
}

TEST_P(LbConformanceTest, EjectsAFailingReplicaAndLetsItBackLater) {
  std::vector<SimReplica> replicas = Equal(4);
  replicas[0].fails = true;
  OutlierOptions o;
  o.consecutive_errors = 5;
  o.base_ejection_s = 2;
  auto up = Make(replicas, o);
  SimLoad load;
  load.requests = 4000;  // ~10 s of virtual time at this rate
  SimResult r = Run(*up, replicas, load);
  // Each return costs at most consecutive_errors failures before the next,
  // longer ejection: 2 s, 4 s, 6 s ... over ~10 s is at most 4 rounds.
  EXPECT_GE(r.errors, 5) << GetParam();
  EXPECT_LE(r.errors, 4 * 5) << GetParam();
  HostStatus failing;
  for (const HostStatus& h : up->Status())
    if (h.id == replicas[0].id) failing = h;
  EXPECT_GE(failing.ejections, 2u) << GetParam() << ": it returned and was ejected again";
  EXPECT_THAT(failing.last_ejection_reason, HasSubstr("consecutive errors"));
  // After the current ejection runs out, the replica is eligible again.
  clock_.Advance(failing.ejected_for_s + 0.001);
  std::map<std::string, int> picks;
  for (int i = 0; i < 400; ++i) {
    PickContext ctx;
    ctx.affinity_key = "k" + std::to_string(i);
    std::optional<std::string> id = up->Pick(ctx, {});
    ASSERT_TRUE(id.has_value());
    ++picks[*id];
    up->Done(*id, true, 10);
  }
  EXPECT_GT(picks[replicas[0].id], 0) << GetParam() << ": back after its ejection";
}

TEST_P(LbConformanceTest, NeverEjectsMoreThanTheCap) {
  std::vector<SimReplica> replicas = Equal(4);
  for (int i = 0; i < 3; ++i) replicas[i].fails = true;
  OutlierOptions o;
  o.max_ejected_percent = 50;
  auto up = Make(replicas, o);
  SimLoad load;
  load.requests = 2000;
  SimResult r = Run(*up, replicas, load);
  EXPECT_EQ(r.unavailable, 0);
  int ejected = 0;
  for (const HostStatus& h : up->Status()) ejected += h.ejected ? 1 : 0;
  EXPECT_EQ(ejected, 2) << GetParam();
}

TEST_P(LbConformanceTest, SkipsUnhealthyReplicasAndAnswersNoneWhenAllAreDown) {
  std::vector<SimReplica> replicas = Equal(3);
  auto up = Make(replicas);
  for (int k = 0; k < 2; ++k) up->HealthResult(replicas[1].id, false, -1, 2, 1);
  SimLoad load;
  load.requests = 2000;
  SimResult r = Run(*up, replicas, load);
  EXPECT_EQ(r.picks.count(replicas[1].id), 0u) << GetParam();
  for (const SimReplica& s : replicas)
    for (int k = 0; k < 2; ++k) up->HealthResult(s.id, false, -1, 2, 1);
  EXPECT_THAT(up->Describe(), HasSubstr("3 failing health checks"));
  // Every host failing its checks: panic mode still routes (Envoy's rule) ...
  std::optional<std::string> panic = up->Pick(PickContext{}, {});
  ASSERT_TRUE(panic.has_value());
  up->Done(*panic, true, 10);
  // ... unless it is off: then nothing is eligible.
  OutlierOptions strict;
  strict.panic_when_all_unhealthy = false;
  auto up2 = Make(replicas, strict);
  for (const SimReplica& s : replicas)
    for (int k = 0; k < 2; ++k) up2->HealthResult(s.id, false, -1, 2, 1);
  EXPECT_FALSE(up2->Pick(PickContext{}, {}).has_value());
  up2->HealthResult(replicas[2].id, true, 0, 2, 1);  // one check brings it back
  for (int i = 0; i < 10; ++i) {
    std::string id = up2->Pick(PickContext{}, {}).value_or("");
    EXPECT_EQ(id, replicas[2].id);
    up2->Done(id, true, 10);
  }
}

TEST_P(LbConformanceTest, LocalityPreferenceAndOverflow) {
  std::vector<SimReplica> replicas = Equal(2, "a");
  for (SimReplica s : Equal(2, "b")) {
    s.id = "10.0.1." + s.id.substr(7);
    replicas.push_back(s);
  }
  SimLoad light;
  light.client_region = "a";
  light.in_flight = 2;
  auto up = Make(replicas);
  SimResult r = Run(*up, replicas, light);
  double local = r.Share(replicas[0].id, light.requests) + r.Share(replicas[1].id, light.requests);
  if (GetParam() == "locality") {
    EXPECT_GT(local, 0.98) << "light load stays in the caller's region";
    SimLoad heavy = light;
    heavy.in_flight = 40;  // 20 per local replica: past overflow_in_flight (8)
    auto up2 = Make(replicas);
    SimResult h = Run(*up2, replicas, heavy);
    double local_heavy =
        h.Share(replicas[0].id, heavy.requests) + h.Share(replicas[1].id, heavy.requests);
    EXPECT_LT(local_heavy, 0.9) << "heavy load spills to the other region";
    EXPECT_GT(local_heavy, 0.5) << "but the caller's region still takes the larger part";
  } else {
    EXPECT_NEAR(local, 0.5, 0.1) << GetParam() << " ignores regions";
  }
}

TEST_P(LbConformanceTest, SameSeedSameChoices) {
  std::vector<SimReplica> replicas = Equal(5);
  auto a = Make(replicas);
  auto b = Make(replicas);
  SimLoad load;
  load.requests = 3000;
  FakeClock start = clock_;
  SimResult ra = Run(*a, replicas, load);
  clock_ = start;
  SimResult rb = Run(*b, replicas, load);
  EXPECT_EQ(ra.picks, rb.picks);
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, LbConformanceTest, ::testing::ValuesIn(Policies()),
                         [](const auto& info) { return info.param; });

// ---- Policy-specific properties.

TEST(LocalityPolicyTest, PanicSpreadsWhenTooFewLocalReplicasAreUp) {
  FakeClock clock(0);
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  Upstreams up(*r.Make("locality", {{"panic_percent", "50"}}), {}, &clock, 1);
  up.SetHosts({{"a1:1", "a"}, {"a2:1", "a"}, {"a3:1", "a"}, {"b1:1", "b"}, {"b2:1", "b"}});
  for (const char* id : {"a1:1", "a2:1"})
    for (int k = 0; k < 2; ++k) up.HealthResult(id, false, -1, 2, 1);
  PickContext ctx;
  ctx.client_region = "a";
  std::map<std::string, int> picks;
  for (int i = 0; i < 300; ++i) {
    std::string id = up.Pick(ctx, {}).value();
    ++picks[id];
    up.Done(id, true, 5);
  }
  // 1 of 3 local replicas up (33% < 50%): every region shares the load.
  EXPECT_GT(picks["b1:1"] + picks["b2:1"], 150);
  EXPECT_EQ(picks["a1:1"] + picks["a2:1"], 0);
}

TEST(LocalityPolicyTest, TheCallersZoneFirstThenItsRegionThenEveryRegion) {
  FakeClock clock(0);
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  Upstreams up(*r.Make("locality"), {}, &clock, 1);  // overflow at 8 in flight per host
  // Region a: zone z1 (a1, a2), zone z2 (a3); region b: b1.
  up.SetHosts({{"a1:1", "a", true, "z1"},
               {"a2:1", "a", true, "z1"},
               {"a3:1", "a", true, "z2"},
               {"b1:1", "b", true, "z1"}});
  PickContext ctx;
  ctx.client_region = "a";
  ctx.client_zone = "z1";
  // Requests that stay in flight fill the tiers one after the other.
  std::vector<std::string> picks;
  for (int i = 0; i < 40; ++i) picks.push_back(up.Pick(ctx, {}).value());
  std::set<std::string> first(picks.begin(), picks.begin() + 16);
  EXPECT_EQ(first, (std::set<std::string>{"a1:1", "a2:1"})) << "the caller's zone first";
  std::set<std::string> next(picks.begin() + 16, picks.begin() + 24);
  EXPECT_FALSE(next.contains("b1:1")) << "then the caller's region";
  EXPECT_TRUE(next.contains("a3:1"));
  std::set<std::string> last(picks.begin() + 24, picks.end());
  EXPECT_TRUE(last.contains("b1:1")) << "then every region";
  for (const std::string& id : picks) up.Done(id, true, 5);

  // Too few of the zone's hosts up (1 of 2 is below panic_percent 60): its
  // region takes the requests, not only the one host left in the zone.
  Upstreams up2(*r.Make("locality", {{"panic_percent", "60"}}), {}, &clock, 1);
  up2.SetHosts({{"a1:1", "a", true, "z1"},
                {"a2:1", "a", true, "z1"},
                {"a3:1", "a", true, "z2"},
                {"b1:1", "b", true, "z1"}});
  for (int k = 0; k < 2; ++k) up2.HealthResult("a1:1", false, -1, 2, 1);
  std::map<std::string, int> count;
  for (int i = 0; i < 200; ++i) {
    std::string id = up2.Pick(ctx, {}).value();
    ++count[id];
    up2.Done(id, true, 5);
  }
  EXPECT_GT(count["a3:1"], 50) << "the region's other zone shares the load";
  EXPECT_GT(count["a2:1"], 50);
  EXPECT_EQ(count["b1:1"], 0) << "the region itself is healthy enough (2 of 3 up)";
}

TEST(OutlierTest, ASubMillisecondLagIsNotSlowTwoMillisecondsAre) {
  FakeClock clock(0);
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  auto run = [&](double lag_ms) {
    // Three replicas answering in 0.1 ms, one in 0.1 + lag_ms; every
    // replica gets 40 answers, more than min_latency_samples.
    Upstreams up(*r.Make("round_robin"), {}, &clock, 1);
    up.SetHosts({{"a:1", ""}, {"b:1", ""}, {"c:1", ""}, {"d:1", ""}});
    for (int i = 0; i < 160; ++i) {
      std::optional<std::string> id = up.Pick(PickContext{}, {});
      if (!id) break;
      up.Done(*id, true, *id == "a:1" ? 0.1 + lag_ms : 0.1);
    }
    for (const HostStatus& h : up.Status())
      if (h.id == "a:1") return h.ejections > 0;
    return false;
  };
  EXPECT_FALSE(run(0.8)) << "9x the median, but 0.8 ms: noise, not a slow replica";
  EXPECT_TRUE(run(2.5)) << "26x and 2.5 ms slower: slow";
}

// The report: least_request sent 1 of 2,546 requests to one replica of three
// after its first answer took 5 ms (a cold start) and the others 0.3 ms: it
// was never picked again, so its average never corrected. Averages now fade
// towards the mean with time without answers: it is tried again, found fast,
// and gets its share.
TEST(LatencyAwarePoliciesTest, OneSlowFirstAnswerDoesNotStarveAHostForever) {
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  for (const char* policy : {"least_request", "prequal", "locality"}) {
    FakeClock clock(0);
    Upstreams up(*r.Make(policy), {}, &clock, 1);
    up.SetHosts({{"a:1", ""}, {"b:1", ""}, {"c:1", ""}});
    std::map<std::string, int> picks, late;
    for (int i = 0; i < 6000; ++i) {  // one request every 10 ms for 60 s, one at a time
      clock.Advance(0.01);
      std::string id = up.Pick(PickContext{}, {}).value();
      ++picks[id];
      if (i >= 4000) ++late[id];
      up.Done(id, true, id == "c:1" && picks[id] == 1 ? 5.0 : 0.3);
    }
    EXPECT_GT(picks["c:1"], 600) << policy << ": c starved after one slow first answer";
    EXPECT_GT(late["c:1"], 2000 / 3 - 200) << policy << ": c has its share once corrected";
  }
  // The same within a burst: 600 requests in 60 ms of the clock.
  for (const char* policy : {"least_request", "prequal", "locality"}) {
    FakeClock clock(0);
    Upstreams up(*r.Make(policy), {}, &clock, 1);
    up.SetHosts({{"a:1", ""}, {"b:1", ""}, {"c:1", ""}});
    std::map<std::string, int> picks;
    for (int i = 0; i < 600; ++i) {
      clock.Advance(0.0001);
      std::string id = up.Pick(PickContext{}, {}).value();
      ++picks[id];
      up.Done(id, true, id == "c:1" && picks[id] == 1 ? 5.0 : 0.3);
    }
    EXPECT_GT(picks["c:1"], 100) << policy << ": c starved within a burst";
  }
}

TEST(LatencyAwarePoliciesTest, ASubMillisecondLatencyGapStarvesNoHost) {
  FakeClock clock(0);
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  for (const char* policy : {"least_request", "prequal", "locality"}) {
    Upstreams up(*r.Make(policy), {}, &clock, 1);
    up.SetHosts({{"a:1", ""}, {"b:1", ""}, {"c:1", ""}, {"d:1", ""}});
    // a's first answer was slow (a cold connection): 0.6 ms against 0.05.
    std::map<std::string, int> picks;
    for (int i = 0; i < 400; ++i) {
      std::string id = up.Pick(PickContext{}, {}).value();
      ++picks[id];
      up.Done(id, true, id == "a:1" && picks[id] == 1 ? 0.6 : 0.05);
    }
    EXPECT_GT(picks["a:1"], 60) << policy << ": a 0.55 ms gap is noise, not a reason to skip a";
  }
}

TEST(ConsistentHashPolicyTest, KeysKeepTheirReplicaAndMoveLittleWhenOneGoes) {
  FakeClock clock(0);
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  std::vector<HostConfig> hosts;
  for (int i = 0; i < 5; ++i) hosts.push_back({"h" + std::to_string(i) + ":1", ""});
  Upstreams up(*r.Make("consistent_hash"), {}, &clock, 1);
  up.SetHosts(hosts);
  auto owner = [&](const std::string& key) {
    PickContext ctx;
    ctx.affinity_key = key;
    std::string id = up.Pick(ctx, {}).value();
    up.Done(id, true, 1);
    return id;
  };
  std::map<std::string, std::string> before;
  for (int k = 0; k < 2000; ++k) before["k" + std::to_string(k)] = owner("k" + std::to_string(k));
  for (const auto& [key, id] : before) ASSERT_EQ(owner(key), id) << "affinity";
  hosts.erase(hosts.begin() + 2);  // h2 goes
  up.SetHosts(hosts);
  int moved = 0;
  for (const auto& [key, id] : before)
    if (id != "h2:1" && owner(key) != id) ++moved;
  EXPECT_EQ(moved, 0) << "only the keys of the removed replica move";
}

TEST(LbRegistryTest, UnknownPolicyAndBadOptionsNameWhatIsWrong) {
  LbRegistry r;
  RegisterBuiltinLbPolicies(r);
  auto unknown = r.Make("fastest");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown load-balancing policy 'fastest'"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("least_request"));
  auto bad = r.Make("locality", {{"overflow", "3"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("no option 'overflow'"));
  auto nan = r.Make("prequal", {{"probes", "many"}});
  ASSERT_FALSE(nan.ok());
  EXPECT_THAT(nan.status().message(), HasSubstr("probes='many' is not a number"));
  EXPECT_EQ(r.Names().size(), 6u);
}

}  // namespace
}  // namespace meridian::lb
