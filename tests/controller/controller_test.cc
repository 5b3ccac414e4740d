// The controller's state machine driven directly (no gRPC, no processes):
// a FakeClock, Tick() instead of the loop thread, a real SQLite store.
#include "controller/controller.h"

#include <filesystem>
#include <future>

#include "absl/strings/str_cat.h"
#include "controller_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::controller {
namespace {

using ::testing::HasSubstr;

class ControllerTest : public ControllerFixture {
 protected:
  void Restart() {
    ctl_.reset();
    store_.reset();
    Open();
  }
  uint64_t Submit(const std::string& spec) {
    std::promise<absl::StatusOr<v1::Job>> p;
    ctl_->Submit(spec, "job.yaml", [&](absl::StatusOr<v1::Job> j) { p.set_value(std::move(j)); });
    absl::StatusOr<v1::Job> j = p.get_future().get();
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? j->id() : 0;
  }
  v1::HeartbeatResponse Beat(
      const std::string& node,
      std::vector<std::tuple<std::string, v1::ReplicaState, int>> runs = {}) {
    v1::HeartbeatRequest req;
    req.set_node(node);
    for (const auto& [key, state, code] : runs) {
      v1::RunReport* r = req.add_runs();
      unsigned long long job = 0;
      int replica = 0, attempt = 0;
      std::sscanf(key.c_str(), "j%llu-r%d-a%d", &job, &replica, &attempt);
      r->set_key(key);
      r->set_job_id(job);
      r->set_replica(replica);
      r->set_attempt(attempt);
      r->set_state(state);
      r->set_exit_code(code);
    }
    absl::StatusOr<v1::HeartbeatResponse> resp = ctl_->Heartbeat(req);
    EXPECT_TRUE(resp.ok());
    return *resp;
  }
  v1::Job Get(uint64_t id) { return *ctl_->GetJob(id); }
};

constexpr char kGang[] =
    "kind: job\nname: gang\nreplicas: 2\nshape: {cpu: 2, memory: 1Gi}\ncross_region: true\n"
    "command: [train, --steps, '10']\nenv: {MODE: fast}\n";

TEST_F(ControllerTest, GangLifecycleWithLostNodeAndRecovery) {
  AddNode("a1", "east");
  AddNode("b1", "west");
  uint64_t id = Submit(kGang);
  EXPECT_EQ(Get(id).state(), v1::JOB_PENDING);
  ctl_->Tick();
  v1::Job j = Get(id);
  ASSERT_EQ(j.state(), v1::JOB_SCHEDULED) << j.message();
  std::set<std::string> nodes = {j.replica_status(0).node(), j.replica_status(1).node()};
  EXPECT_EQ(nodes, (std::set<std::string>{"a1", "b1"}));

  // Assignments reach agents only once durable; then with the rendezvous env.
  Sync();
  v1::HeartbeatResponse ra = Beat("a1");
  v1::HeartbeatResponse rb = Beat("b1");
  ASSERT_EQ(ra.assignments_size(), 1);
  ASSERT_EQ(rb.assignments_size(), 1);
  const auto& ea = ra.assignments(0).env();
  const auto& eb = rb.assignments(0).env();
  EXPECT_EQ(ea.at("MASTER_ADDR"), eb.at("MASTER_ADDR"));
  EXPECT_EQ(ea.at("MASTER_PORT"), eb.at("MASTER_PORT"));
  EXPECT_EQ(ea.at("WORLD_SIZE"), "2");
  EXPECT_NE(ea.at("RANK"), eb.at("RANK"));
  EXPECT_EQ(ea.at("LOCAL_RANK"), "0");
  EXPECT_EQ(ea.at("LOCAL_WORLD_SIZE"), "1");
  EXPECT_EQ(ea.at("MODE"), "fast");
  EXPECT_EQ(ea.at("MERIDIAN_JOB_ID"), absl::StrCat(id));
  EXPECT_EQ(ea.at("MERIDIAN_CONTROLLER"), "127.0.0.1:7000");
  EXPECT_THAT(ra.assignments(0).argv(), ::testing::ElementsAre("train", "--steps", "10"));
  std::string ka = ra.assignments(0).key(), kb = rb.assignments(0).key();

  Beat("a1", {{ka, v1::REPLICA_RUNNING, 0}});
  EXPECT_EQ(Get(id).state(), v1::JOB_SCHEDULED);
  Beat("b1", {{kb, v1::REPLICA_RUNNING, 0}});
  EXPECT_EQ(Get(id).state(), v1::JOB_RUNNING);

  // b1 goes silent past the timeout: NotReady, the gang is re-queued whole.
  clock_.Advance(6);
  Beat("a1", {{ka, v1::REPLICA_RUNNING, 0}});
  ctl_->Tick();
  j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_PENDING);
  EXPECT_EQ(j.attempt(), 1);
  EXPECT_EQ(j.failures(), 0);                      // a lost node is not the job's failure
  EXPECT_THAT(j.message(), HasSubstr("b1 lost"));  // shown while it waits
  Sync();
  // a1 is told to stop the old attempt (no assignments), and the old run's
  // stop is acknowledged once reported.
  EXPECT_EQ(Beat("a1", {{ka, v1::REPLICA_RUNNING, 0}}).assignments_size(), 0);
  v1::HeartbeatResponse stop = Beat("a1", {{ka, v1::REPLICA_STOPPED, 143}});
  EXPECT_THAT(stop.acknowledged(), ::testing::ElementsAre(ka));
  ctl_->Tick();
  j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_PENDING);
  EXPECT_THAT(j.message(), HasSubstr("waiting"));

  // b1 comes back: the gang is placed again.
  Beat("b1");
  ctl_->Tick();
  j = Get(id);
  ASSERT_EQ(j.state(), v1::JOB_SCHEDULED) << j.message();
  Sync();
  ra = Beat("a1");
  rb = Beat("b1");
  ASSERT_EQ(ra.assignments_size(), 1);
  EXPECT_THAT(ra.assignments(0).key(), HasSubstr("-a1"));
  ka = ra.assignments(0).key();
  kb = rb.assignments(0).key();

  // The controller restarts mid-run: state comes back from the store.
  Restart();
  j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_SCHEDULED);
  EXPECT_EQ(j.attempt(), 1);
  ra = Beat("a1", {{ka, v1::REPLICA_RUNNING, 0}});
  ASSERT_EQ(ra.assignments_size(), 1);
  EXPECT_EQ(ra.assignments(0).key(), ka);  // the same run, not a new one
  Beat("b1", {{kb, v1::REPLICA_SUCCEEDED, 0}});
  Beat("a1", {{ka, v1::REPLICA_SUCCEEDED, 0}});
  j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_SUCCEEDED);
  Sync();
  EXPECT_THAT(Beat("a1", {{ka, v1::REPLICA_SUCCEEDED, 0}}).acknowledged(),
              ::testing::ElementsAre(ka));
}

TEST_F(ControllerTest, FailureRetriesWithBackoffThenFails) {
  AddNode("a1", "east");
  uint64_t id = Submit(
      "kind: job\nname: flaky\nshape: {cpu: 1, memory: 1Gi}\ncommand: [x]\nretries: 1\nbackoff: "
      "10s\n");
  ctl_->Tick();
  Sync();
  std::string k0 = Beat("a1").assignments(0).key();
  Beat("a1", {{k0, v1::REPLICA_FAILED, 3}});
  v1::Job j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_PENDING);
  EXPECT_EQ(j.failures(), 1);
  EXPECT_THAT(j.message(), HasSubstr("retry 1/1 in 10s"));
  // While it waits, `job logs` reads the attempt that failed.
  absl::StatusOr<Controller::LogLocation> logs = ctl_->LogSource(id, 0);
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(logs->key, k0);
  EXPECT_EQ(logs->node, "a1");
  EXPECT_EQ(logs->attempt, 0);
  EXPECT_EQ(ctl_->LogSource(id, 0, 5).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ctl_->LogSource(id, 0, 5).status().message(), HasSubstr("attempts 0"));
  ctl_->Tick();
  EXPECT_EQ(Get(id).state(), v1::JOB_PENDING);  // still backing off
  clock_.Advance(11);
  Beat("a1");
  ctl_->Tick();
  j = Get(id);
  ASSERT_EQ(j.state(), v1::JOB_SCHEDULED);
  Sync();
  std::string k1 = Beat("a1").assignments(0).key();
  EXPECT_NE(k0, k1);
  EXPECT_EQ(ctl_->LogSource(id, 0)->key, k1);     // the current attempt
  EXPECT_EQ(ctl_->LogSource(id, 0, 0)->key, k0);  // asked for by number
  Beat("a1", {{k1, v1::REPLICA_FAILED, 4}});
  j = Get(id);
  EXPECT_EQ(j.state(), v1::JOB_FAILED);
  EXPECT_THAT(j.message(), HasSubstr("exited with code 4"));
}

TEST_F(ControllerTest, ReadinessIsTheAgentsProbeForJobsWithAReadinessPath) {
  AddNode("a1", "east");
  uint64_t web = Submit(
      "kind: job\nname: web\nshape: {cpu: 1, memory: 1Gi}\nreadiness_path: /readyz\n"
      "command: [serve]\n");
  uint64_t batch =
      Submit("kind: job\nname: batch\nshape: {cpu: 1, memory: 1Gi}\ncommand: [work]\n");
  ctl_->Tick();
  Sync();
  v1::HeartbeatResponse r = Beat("a1");
  ASSERT_EQ(r.assignments_size(), 2);
  std::string kweb, kbatch;
  for (const v1::Assignment& a : r.assignments()) {
    if (a.job_id() == web) {
      kweb = a.key();
      EXPECT_EQ(a.readiness_path(), "/readyz");  // the agent probes it
    } else {
      kbatch = a.key();
      EXPECT_EQ(a.readiness_path(), "");
    }
  }
  auto report = [&](bool web_ready) {
    v1::HeartbeatRequest req;
    req.set_node("a1");
    for (const auto& [key, id] : {std::pair{kweb, web}, std::pair{kbatch, batch}}) {
      v1::RunReport* run = req.add_runs();
      run->set_key(key);
      run->set_job_id(id);
      run->set_state(v1::REPLICA_RUNNING);
      run->set_ready(key == kweb && web_ready);
    }
    ASSERT_TRUE(ctl_->Heartbeat(req).ok());
  };
  report(false);
  EXPECT_EQ(Get(web).state(), v1::JOB_RUNNING);
  EXPECT_FALSE(Get(web).replica_status(0).ready());  // running, not answering yet
  EXPECT_TRUE(Get(batch).replica_status(0).ready());  // no probe: running is ready
  report(true);
  EXPECT_TRUE(Get(web).replica_status(0).ready());
  report(false);
  EXPECT_FALSE(Get(web).replica_status(0).ready());
}

TEST_F(ControllerTest, CancelDrainAndWaitingReasons) {
  AddNode("a1", "east", 1000);
  uint64_t big = Submit("kind: job\nname: big\nshape: {cpu: 4, memory: 1Gi}\ncommand: [x]\n");
  uint64_t small = Submit("kind: job\nname: small\nshape: {cpu: 1, memory: 1Gi}\ncommand: [x]\n");
  ctl_->Tick();
  EXPECT_THAT(Get(big).message(), HasSubstr("waiting"));
  EXPECT_EQ(Get(small).state(), v1::JOB_SCHEDULED);
  // Drain re-queues; nothing else fits, so it waits.
  AddNode("a2", "east", 1000);
  ctl_->Tick();
  absl::StatusOr<v1::DrainResponse> d = ctl_->Drain("a1");
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->requeued_jobs(), ::testing::ElementsAre(small));
  ctl_->Tick();
  v1::Job s = Get(small);
  EXPECT_EQ(s.state(), v1::JOB_SCHEDULED);
  EXPECT_EQ(s.replica_status(0).node(), "a2");
  ASSERT_TRUE(ctl_->Cancel(small).ok());
  EXPECT_EQ(Get(small).state(), v1::JOB_CANCELLED);
  EXPECT_EQ(ctl_->Cancel(small).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ctl_->Cancel(999).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ctl_->Drain("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, InvalidSpecsAreRejectedWithTheField) {
  std::promise<absl::StatusOr<v1::Job>> p;
  ctl_->Submit("kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\ncommand: []\n", "bad.yaml",
               [&](absl::StatusOr<v1::Job> j) { p.set_value(std::move(j)); });
  absl::StatusOr<v1::Job> j = p.get_future().get();
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("bad.yaml:4"));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("command"));
  EXPECT_TRUE(ctl_->ListJobs({}, 0).empty());
}

}  // namespace
}  // namespace meridian::controller
