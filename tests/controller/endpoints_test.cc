// The EndpointManager's placement of replicas driven directly: a real
// Controller and SQLite store in process, a FakeClock, Tick() instead of the
// loops, no agents (nodes register and heartbeat through the API). Covers
// the spread of one endpoint's replicas over the zones of a region, the
// move of a replica whose zone has no ready node left, and readiness from
// the agents' probes.
#include "controller/endpoints.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "controller/validate.h"
#include "controller_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class EndpointPlacementTest : public ControllerFixture {
 protected:
  void SetUp() override {
    ControllerFixture::SetUp();
    EndpointManagerOptions eo;
    eo.start_loop = false;
    em_ = std::make_unique<EndpointManager>(eo, ctl_.get(), store_.get(), &clock_);
    ASSERT_TRUE(em_->Start().ok());
  }
  void TearDown() override {
    em_.reset();
    ControllerFixture::TearDown();
  }
  // A node in REGION/ZONE with 4 CPUs unless said.
  void AddZonalNode(const std::string& name, const std::string& region, const std::string& zone,
                    int64_t cpu_milli = 4000) {
    AddNode(name, region, cpu_milli, zone);
  }
  v1::HeartbeatResponse Beat(const std::string& node) {
    v1::HeartbeatRequest req;
    req.set_node(node);
    absl::StatusOr<v1::HeartbeatResponse> r = ctl_->Heartbeat(req);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : v1::HeartbeatResponse();
  }
  // The agent's report of one running run and its readiness probe.
  void Report(const std::string& node, const v1::Assignment& a, bool ready) {
    v1::HeartbeatRequest req;
    req.set_node(node);
    v1::RunReport* run = req.add_runs();
    run->set_key(a.key());
    run->set_job_id(a.job_id());
    run->set_replica(a.replica());
    run->set_attempt(a.attempt());
    run->set_state(v1::REPLICA_RUNNING);
    run->set_ready(ready);
    ASSERT_TRUE(ctl_->Heartbeat(req).ok());
  }
  bool Ready() {
    em_->Tick();
    absl::StatusOr<v1::Endpoint> e = em_->Get("digits");
    EXPECT_TRUE(e.ok());
    if (!e.ok()) return false;
    EXPECT_EQ(e->replicas_size(), 1);
    return e->replicas_size() == 1 && e->replicas(0).ready();
  }
  // One reconcile pass of the manager, then one scheduling pass.
  void Pass() {
    em_->Tick();
    ctl_->Tick();
  }
  // Zone of each placed replica job of the endpoint, by job id.
  std::map<uint64_t, std::string> PlacedZones() {
    std::map<std::string, std::string> zone_of;
    for (const v1::Node& n : ctl_->ListNodes()) zone_of[n.name()] = n.zone();
    std::map<uint64_t, std::string> out;
    for (const v1::Job& j :
         ctl_->ListJobs({v1::JOB_PENDING, v1::JOB_SCHEDULED, v1::JOB_RUNNING}, 0)) {
      if (j.replica_status_size() == 0 || j.replica_status(0).node().empty()) continue;
      out[j.id()] = zone_of[j.replica_status(0).node()];
    }
    return out;
  }
  std::string Spec(int replicas) {
    return absl::StrCat("kind: endpoint\nname: digits\nmodel: m.model\nreplicas: {min: ", replicas,
                        ", max: ", replicas,
                        "}\nshape: {cpu: 500m, memory: 128Mi}\nregions: [us-east]\n");
  }

  std::unique_ptr<EndpointManager> em_;
};

TEST_F(EndpointPlacementTest, ReplicasSpreadOverTheZonesOfARegion) {
  // Zone "a" has two nodes and more room than "b": packing or "most room"
  // alone would put every replica in "a".
  AddZonalNode("e1", "us-east", "a");
  AddZonalNode("e2", "us-east", "a");
  AddZonalNode("e3", "us-east", "b", 2000);
  AddZonalNode("w1", "eu-west", "a");
  ASSERT_TRUE(em_->Apply(Spec(4), "ep.yaml").ok());
  Pass();
  std::map<uint64_t, std::string> zones = PlacedZones();
  ASSERT_EQ(zones.size(), 4u);
  std::map<std::string, int> per_zone;
  for (const auto& [id, z] : zones) ++per_zone[z];
  EXPECT_EQ(per_zone, (std::map<std::string, int>{{"a", 2}, {"b", 2}}));

  // The endpoint shows each replica's zone.
  em_->Tick();
  absl::StatusOr<v1::Endpoint> e = em_->Get("digits");
  ASSERT_TRUE(e.ok());
  std::multiset<std::string> shown;
  for (const v1::EndpointReplica& r : e->replicas()) {
    EXPECT_EQ(r.region(), "us-east");
    shown.insert(r.zone());
  }
  EXPECT_EQ(shown, (std::multiset<std::string>{"a", "a", "b", "b"}));
}

TEST_F(EndpointPlacementTest, AZoneWithoutRoomForAReplicaIsSkipped) {
  // "b" cannot hold a replica (shape 500m): both go to "a".
  AddZonalNode("e1", "us-east", "a");
  AddZonalNode("e2", "us-east", "b", 250);
  ASSERT_TRUE(em_->Apply(Spec(2), "ep.yaml").ok());
  Pass();
  std::map<uint64_t, std::string> zones = PlacedZones();
  ASSERT_EQ(zones.size(), 2u);
  for (const auto& [id, z] : zones) {
    EXPECT_EQ(z, "a");
    // Pinned to "a", so that a replica does not wait for room in "b".
    absl::StatusOr<v1::Job> j = ctl_->GetJob(id);
    ASSERT_TRUE(j.ok());
    EXPECT_THAT(j->spec(), HasSubstr("allowed_zones: [\"us-east/a\"]"));
  }
}

TEST_F(EndpointPlacementTest, AReplicaWhoseZoneHasNoReadyNodeIsMovedWithinItsRegion) {
  AddZonalNode("e1", "us-east", "a");
  AddZonalNode("e2", "us-east", "b");
  ASSERT_TRUE(em_->Apply(Spec(2), "ep.yaml").ok());
  Pass();
  std::map<uint64_t, std::string> zones = PlacedZones();
  ASSERT_EQ(zones.size(), 2u);
  uint64_t in_b = 0;
  for (const auto& [id, z] : zones)
    if (z == "b") in_b = id;
  ASSERT_NE(in_b, 0u);

  // e2, the only node of zone b, goes silent: its replica is re-queued, and
  // pinned to zone b it would wait forever. The manager replaces it in "a".
  clock_.Advance(6);
  Beat("e1");
  ctl_->Tick();
  Pass();
  absl::StatusOr<v1::Endpoint> e = em_->Get("digits");
  ASSERT_TRUE(e.ok());
  EXPECT_THAT(e->message(), HasSubstr(absl::StrCat("replica job ", in_b,
                                                   " moved: zone us-east/b has no ready node")));
  Pass();
  zones = PlacedZones();
  EXPECT_FALSE(zones.count(in_b));
  ASSERT_EQ(zones.size(), 2u);
  for (const auto& [id, z] : zones) EXPECT_EQ(z, "a");
  // With one ready zone left, the replacement is pinned to the region only.
  for (const auto& [id, z] : zones) {
    if (id <= in_b) continue;
    absl::StatusOr<v1::Job> j = ctl_->GetJob(id);
    ASSERT_TRUE(j.ok());
    EXPECT_THAT(j->spec(), Not(HasSubstr("allowed_zones")));
  }
}

TEST_F(EndpointPlacementTest, AReplicaIsReadyAfterItsProbeAnswersForMinReady) {
  AddZonalNode("e1", "us-east", "a");
  ASSERT_TRUE(em_->Apply(Spec(1), "ep.yaml").ok());  // min_ready: 1 s (default)
  Pass();
  Sync();  // assignments go out once durable
  v1::HeartbeatResponse r = Beat("e1");
  ASSERT_EQ(r.assignments_size(), 1);
  const v1::Assignment a = r.assignments(0);
  EXPECT_EQ(a.readiness_path(), "/readyz");

  // Running but not answering: not ready, however long it runs.
  Report("e1", a, false);
  EXPECT_FALSE(Ready());
  clock_.Advance(3);
  Report("e1", a, false);
  EXPECT_FALSE(Ready());
  // Answering: ready once that has lasted min_ready.
  Report("e1", a, true);
  EXPECT_FALSE(Ready());
  clock_.Advance(0.5);
  EXPECT_FALSE(Ready());
  clock_.Advance(0.6);
  EXPECT_TRUE(Ready());
  // A failed probe takes it out, and min_ready counts again from the next 200.
  Report("e1", a, false);
  EXPECT_FALSE(Ready());
  Report("e1", a, true);
  EXPECT_FALSE(Ready());
  clock_.Advance(1.1);
  EXPECT_TRUE(Ready());
}

// Gateways' load reports: a NaN, infinite, negative or absurd value is
// refused whole (INVALID_ARGUMENT, nothing recorded), so it can neither
// scale an endpoint nor overflow the replica count it computes.
TEST_F(EndpointPlacementTest, ReportLoadRefusesValuesThatAreNotFiniteAndSane) {
  AddZonalNode("e1", "us-east", "a", 16000);
  ASSERT_TRUE(em_->Apply("kind: endpoint\nname: digits\nmodel: m.model\n"
                         "replicas: {min: 1, max: 4}\nshape: {cpu: 500m, memory: 128Mi}\n"
                         "autoscale: {target_in_flight: 4, scale_up_delay: 0s, "
                         "scale_down_delay: 0s}\n",
                         "e.yaml")
                  .ok());
  auto report = [&](double in_flight, const std::string& gateway = "gw") {
    v1::ReportLoadRequest r;
    r.set_gateway(gateway);
    v1::EndpointLoad* l = r.add_loads();
    l->set_name("digits");
    l->set_in_flight(in_flight);
    return em_->ReportLoad(r);
  };
  ASSERT_TRUE(report(12).ok());
  em_->Tick();
  ASSERT_EQ(em_->Get("digits")->desired_replicas(), 3);  // ceil(12 / 4)
  for (double bad :
       {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::quiet_NaN(), -1.0, 1e300}) {
    absl::Status st = report(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(st.message()), HasSubstr("loads[0].in_flight")) << bad;
    clock_.Advance(1);
    em_->Tick();
    absl::StatusOr<v1::Endpoint> e = em_->Get("digits");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->desired_replicas(), 3) << bad;  // unchanged: the bad report was not recorded
    EXPECT_EQ(e->in_flight(), 12) << bad;
    ASSERT_TRUE(report(12).ok());  // the gateway's good report stays fresh
  }
  // One bad entry refuses the whole report: the good entry is not recorded either.
  v1::ReportLoadRequest mixed;
  mixed.set_gateway("gw2");
  mixed.add_loads()->set_name("digits");
  mixed.mutable_loads(0)->set_in_flight(100);
  mixed.add_loads()->set_name("digits");
  mixed.mutable_loads(1)->set_in_flight(std::nan(""));
  EXPECT_EQ(em_->ReportLoad(mixed).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(em_->Get("digits")->in_flight(), 12);
  EXPECT_EQ(report(1, "").code(), absl::StatusCode::kInvalidArgument);  // no gateway id
}

// The largest load a gateway may report caps at max; nothing overflows.
TEST(AutoscalerLimitsTest, HugeLoadsClampToMax) {
  spec::EndpointSpec s;
  s.min_replicas = 1;
  s.max_replicas = 5;
  s.target_in_flight = 1e-9;
  s.scale_up_delay_s = 0;
  Autoscaler a;
  EXPECT_EQ(a.Decide(0, kMaxInFlight * 100, 2, s), 5);
  EXPECT_EQ(a.Decide(1, std::numeric_limits<double>::max(), 5, s), 5);
}

}  // namespace
}  // namespace meridian::controller
