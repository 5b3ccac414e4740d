// Control plane with real processes: a controller and agents started from
// the `meridian` binary on 127.0.0.1, driven over gRPC. Assertions are on
// outcomes; deadlines are generous and never measured.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness.h"

namespace meridian::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string JobSpec(const std::string& name, const std::string& command, int replicas = 1,
                    const std::string& cpu = "1", const std::string& extra = "") {
  return absl::StrCat("kind: job\nname: ", name, "\nreplicas: ", replicas, "\nshape: {cpu: ", cpu,
                      ", memory: 64Mi}\ncommand: ['/bin/sh', '-c', '", command, "']\n", extra);
}

bool ProcessAlive(int pid) { return pid > 1 && ::kill(pid, 0) == 0; }

int ReadPid(const std::string& path) { return std::atoi(ReadText(path).c_str()); }

class ClusterTest : public ::testing::Test {
 protected:
  void StartCluster(int agents_per_region, std::vector<std::string> regions,
                    double hb_timeout = 2.0) {
    cluster_ =
        std::make_unique<Cluster>(::testing::UnitTest::GetInstance()->current_test_info()->name());
    cluster_->StartController(hb_timeout);
    int n = 0;
    for (const std::string& r : regions)
      for (int i = 1; i <= agents_per_region; ++i, ++n)
        cluster_->StartAgent(absl::StrCat(r, "-", i), r);
    ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == n; }, 30))
        << "agents did not register; logs in " << cluster_->root();
  }
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterTest, SubmitPlaceRunSucceedAndServeLogs) {
  StartCluster(1, {"east", "west"});
  v1::Job j;
  ASSERT_TRUE(
      cluster_->Submit(JobSpec("hello", "echo hello from $MERIDIAN_NODE in $MERIDIAN_REGION"), &j)
          .ok());
  EXPECT_EQ(j.state(), v1::JOB_PENDING);
  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  ASSERT_EQ(done.replica_status_size(), 1);
  EXPECT_EQ(done.replica_status(0).state(), v1::REPLICA_SUCCEEDED);
  EXPECT_EQ(done.replica_status(0).exit_code(), 0);
  const std::string node = done.replica_status(0).node();
  EXPECT_TRUE(node == "east-1" || node == "west-1") << node;

  grpc::Status st;
  std::string out = cluster_->Logs(j.id(), "stdout", &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out, absl::StrCat("hello from ", node, " in ", done.replica_status(0).region(), "\n"));
}

TEST_F(ClusterTest, GangReplicasShareRendezvousAndGetDistinctRanks) {
  StartCluster(2, {"east", "west"});
  std::string dir = cluster_->root() + "/ranks";
  CreateWorkloadDir(dir);
  // cpu 2 on 2-core nodes: one replica per node, so the gang spans nodes.
  std::string cmd = absl::StrCat(
      "echo $MASTER_ADDR $MASTER_PORT $WORLD_SIZE $RANK $LOCAL_RANK $LOCAL_WORLD_SIZE "
      "$MERIDIAN_JOB_ID $MERIDIAN_NODE > ",
      dir, "/$RANK");
  v1::Job j;
  ASSERT_TRUE(cluster_->Submit(JobSpec("gang", cmd, 3, "2", "cross_region: true\n"), &j).ok());
  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  std::set<std::string> masters, nodes;
  std::set<int> ranks;
  for (int r = 0; r < 3; ++r) {
    std::vector<std::string> f = absl::StrSplit(ReadText(absl::StrCat(dir, "/", r)), ' ');
    ASSERT_EQ(f.size(), 8u) << "rank " << r;
    masters.insert(absl::StrCat(f[0], ":", f[1], ":", f[2], ":", f[6]));
    ranks.insert(std::atoi(f[3].c_str()));
    EXPECT_EQ(f[4], "0");  // one replica per node
    EXPECT_EQ(f[5], "1");
    nodes.insert(f[7]);
  }
  EXPECT_EQ(masters.size(), 1u) << "replicas disagree on MASTER_ADDR/PORT/WORLD_SIZE";
  EXPECT_THAT(*masters.begin(), HasSubstr(absl::StrCat(":3:", j.id())));
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(nodes.size(), 3u);
}

TEST_F(ClusterTest, CancelStopsTheProcesses) {
  StartCluster(1, {"east"});
  std::string pids = cluster_->pid_dir();
  v1::Job j;
  ASSERT_TRUE(
      cluster_
          ->Submit(JobSpec("sleeper",
                           absl::StrCat("echo $$ > ", pids, "/$MERIDIAN_RUN_KEY; exec sleep 300"),
                           2, "0.5", "grace: 2s\n"),
                   &j)
          .ok());
  ASSERT_EQ(cluster_->WaitState(j.id(), v1::JOB_RUNNING).state(), v1::JOB_RUNNING);
  std::vector<int> running;
  ASSERT_TRUE(WaitUntil(
      [&] {
        running.clear();
        for (const auto& e : fs::directory_iterator(pids)) running.push_back(ReadPid(e.path()));
        // A file the shell has created but not yet written reads as pid 0.
        return running.size() == 2 &&
               std::all_of(running.begin(), running.end(), [](int p) { return p > 1; });
      },
      10));
  for (int p : running) EXPECT_TRUE(ProcessAlive(p));
  grpc::ClientContext ctx;
  cluster_->Prepare(&ctx);
  v1::CancelJobRequest req;
  req.set_id(j.id());
  v1::Job cancelled;
  ASSERT_TRUE(cluster_->jobs().Cancel(&ctx, req, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::JOB_CANCELLED);
  for (int p : running)
    EXPECT_TRUE(WaitUntil([&] { return !ProcessAlive(p); }, 15)) << "pid " << p << " still runs";
  // Cancelling twice is a precondition failure, not a crash.
  grpc::ClientContext ctx2;
  cluster_->Prepare(&ctx2);
  EXPECT_EQ(cluster_->jobs().Cancel(&ctx2, req, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ClusterTest, KilledAgentsJobsArePlacedAgainElsewhere) {
  StartCluster(1, {"east", "west", "south"});
  std::string pids = cluster_->pid_dir();
  v1::Job j;
  ASSERT_TRUE(
      cluster_
          ->Submit(JobSpec("survivor",
                           absl::StrCat("echo $$ > ", pids, "/$MERIDIAN_RUN_KEY; exec sleep 300"),
                           1, "1"),
                   &j)
          .ok());
  v1::Job running = cluster_->WaitState(j.id(), v1::JOB_RUNNING);
  ASSERT_EQ(running.state(), v1::JOB_RUNNING);
  std::string first = running.replica_status(0).node();
  cluster_->Kill(first, SIGKILL);
  double killed_at = Now();
  // Heartbeat timeout is 2 s: re-placed whole, on another node, attempt 1.
  v1::Job again;
  ASSERT_TRUE(WaitUntil(
      [&] {
        return cluster_->Get(j.id(), &again) && again.attempt() == 1 &&
               again.state() == v1::JOB_RUNNING;
      },
      2.0 + 15))
      << again.message();
  EXPECT_NE(again.replica_status(0).node(), first);
  EXPECT_THAT(again.message(), ::testing::AnyOf(HasSubstr("running"), HasSubstr("lost")));
  (void)killed_at;
  int ready = cluster_->ReadyNodes();
  EXPECT_EQ(ready, 2);
}

TEST_F(ClusterTest, RestartedAgentReadoptsItsRunsAndTheJobFinishes) {
  StartCluster(1, {"east"}, /*hb_timeout=*/10.0);
  std::string gate = cluster_->root() + "/gate";
  v1::Job j;
  // Runs until the test creates the gate file, then exits 0.
  ASSERT_TRUE(cluster_
                  ->Submit(JobSpec("long",
                                   absl::StrCat("echo $$ > ", cluster_->pid_dir(),
                                                "/$MERIDIAN_RUN_KEY; while [ ! -e ", gate,
                                                " ]; do sleep 0.05; done; echo finished"),
                                   1, "1"),
                           &j)
                  .ok());
  ASSERT_EQ(cluster_->WaitState(j.id(), v1::JOB_RUNNING).state(), v1::JOB_RUNNING);
  cluster_->Kill("east-1", SIGKILL);
  cluster_->StartAgent("east-1", "east");  // same state dir: re-adopts the run
  std::ofstream(gate) << "go";
  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempt(), 0) << "the run was re-adopted, not re-placed";
  grpc::Status st;
  EXPECT_EQ(cluster_->Logs(j.id(), "stdout", &st), "finished\n");
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// GPUs: the agent gives each run devices of its own in CUDA_VISIBLE_DEVICES,
// hides the node's GPUs from runs that asked for none, keeps what running
// runs hold across its own restart, and gives ended runs' devices out again.
TEST_F(ClusterTest, GpuRunsGetDevicesOfTheirOwnAcrossAnAgentRestart) {
  cluster_ = std::make_unique<Cluster>("gpus");
  cluster_->StartController(/*hb_timeout_s=*/10.0);
  cluster_->StartAgent("gpu-1", "east", "4", "2Gi", false, "4");
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 1; }, 30));
  std::string dir = cluster_->root() + "/seen";
  CreateWorkloadDir(dir);
  // Writes what it sees, then runs until its gate file appears.
  auto spec = [&](const std::string& name, const std::string& gpus) {
    std::string cmd =
        absl::StrCat("echo $$ > ", cluster_->pid_dir(), "/$MERIDIAN_RUN_KEY; echo ",
                     "\"${CUDA_VISIBLE_DEVICES-unset}|$MERIDIAN_GPU_DEVICES\" > ", dir, "/", name,
                     ".tmp; mv ", dir, "/", name, ".tmp ", dir, "/", name, "; while [ ! -e ", dir,
                     "/", name, ".gate ]; do sleep 0.05; done");
    return absl::StrCat("kind: job\nname: ", name,
                        "\nshape: {cpu: 500m, memory: 64Mi, gpus: ", gpus.empty() ? "0" : gpus,
                        "}\nenv: {CUDA_VISIBLE_DEVICES: '3'}\n", "command: ['/bin/sh', '-c', '",
                        cmd, "']\n");
  };
  auto seen = [&](const std::string& name) {
    std::string text;
    WaitUntil([&] { return !(text = ReadText(absl::StrCat(dir, "/", name))).empty(); }, 30);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  };
  auto devices = [](const std::string& text) {
    std::vector<std::string> f = absl::StrSplit(text, '|');
    std::vector<std::string> d = absl::StrSplit(f[0], ',', absl::SkipEmpty());
    return std::set<std::string>(d.begin(), d.end());
  };
  v1::Job a, b, cpu, c;
  ASSERT_TRUE(cluster_->Submit(spec("a", "2"), &a).ok());
  ASSERT_TRUE(cluster_->Submit(spec("b", "1"), &b).ok());
  ASSERT_TRUE(cluster_->Submit(spec("cpu", ""), &cpu).ok());
  std::string sa = seen("a"), sb = seen("b"), scpu = seen("cpu");
  std::set<std::string> da = devices(sa), db = devices(sb);
  EXPECT_EQ(da.size(), 2u) << sa;
  EXPECT_EQ(db.size(), 1u) << sb;
  for (const std::string& d : db) EXPECT_FALSE(da.contains(d)) << sa << " and " << sb;
  EXPECT_EQ(sa, absl::StrCat(sa.substr(0, sa.find('|')), "|", sa.substr(0, sa.find('|'))));
  EXPECT_FALSE(da.contains("3")) << "the job's own CUDA_VISIBLE_DEVICES must not win";
  EXPECT_EQ(scpu, "|") << "a run without GPUs sees none of the node's";

  // kill -9 and restart the agent: a and b keep running and keep their devices.
  cluster_->Kill("gpu-1", SIGKILL);
  cluster_->StartAgent("gpu-1", "east", "4", "2Gi", false, "4");
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 1; }, 30));
  std::ofstream(dir + "/cpu.gate") << "go";
  ASSERT_EQ(cluster_->WaitState(cpu.id(), v1::JOB_SUCCEEDED).state(), v1::JOB_SUCCEEDED);
  // The one free device goes to c: neither a's nor b's.
  ASSERT_TRUE(cluster_->Submit(spec("c", "1"), &c).ok());
  std::string sc = seen("c");
  std::set<std::string> dc = devices(sc);
  ASSERT_EQ(dc.size(), 1u) << sc;
  EXPECT_FALSE(da.contains(*dc.begin()) || db.contains(*dc.begin()))
      << "c got " << sc << " while a holds " << sa << " and b " << sb;
  // Once a ends, its two devices are free for the next run that asks for two.
  std::ofstream(dir + "/a.gate") << "go";
  ASSERT_EQ(cluster_->WaitState(a.id(), v1::JOB_SUCCEEDED).state(), v1::JOB_SUCCEEDED);
  v1::Job d;
  ASSERT_TRUE(cluster_->Submit(spec("d", "2"), &d).ok());
  EXPECT_EQ(devices(seen("d")), da);
  for (const char* n : {"b", "c", "d"})
    std::ofstream(absl::StrCat(dir, "/", n, ".gate")) << "go";
  for (uint64_t id : {b.id(), c.id(), d.id()})
    EXPECT_EQ(cluster_->WaitState(id, v1::JOB_SUCCEEDED).state(), v1::JOB_SUCCEEDED);
}

// Preemption frees a node's GPUs for the controller at once, but the
// preempted process takes its grace period to exit: the preemptor's run waits
// for the devices instead of sharing them, and then runs.
// Issue 26: CPU-only work on a fleet of GPU and CPU-only nodes (no prices, as
// on-prem) runs on the CPU-only nodes, although the GPU nodes registered first
// (lower node ids) and fit it as well; only when those are full does it take
// a GPU node.
TEST_F(ClusterTest, CpuOnlyJobsRunOffTheGpuNodes) {
  cluster_ = std::make_unique<Cluster>("cpuonly");
  cluster_->StartController(/*hb_timeout_s=*/10.0);
  cluster_->StartAgent("gpu-1", "east", "4", "2Gi", false, "2");
  cluster_->StartAgent("gpu-2", "east", "4", "2Gi", false, "2");
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 2; }, 30));
  cluster_->StartAgent("cpu-1", "east", "4", "2Gi");
  cluster_->StartAgent("cpu-2", "east", "4", "2Gi");
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 4; }, 30))
      << "agents did not register; logs in " << cluster_->root();
  const std::string cmd =
      absl::StrCat("echo $$ > ", cluster_->pid_dir(), "/$MERIDIAN_RUN_KEY; exec sleep 120");
  auto node_of = [&](const v1::Job& j) {
    v1::Job r = cluster_->WaitState(j.id(), v1::JOB_RUNNING);
    EXPECT_EQ(r.state(), v1::JOB_RUNNING) << r.message();
    return r.replica_status_size() == 1 ? r.replica_status(0).node() : std::string("none");
  };
  std::set<std::string> cpu_nodes;
  for (int i = 0; i < 2; ++i) {
    v1::Job j;
    ASSERT_TRUE(cluster_->Submit(JobSpec(absl::StrCat("cpu-", i), cmd, 1, "3"), &j).ok());
    cpu_nodes.insert(node_of(j));
  }
  EXPECT_EQ(cpu_nodes, (std::set<std::string>{"cpu-1", "cpu-2"}));
  v1::Job third;
  ASSERT_TRUE(cluster_->Submit(JobSpec("cpu-third", cmd, 1, "3"), &third).ok());
  EXPECT_THAT(node_of(third), ::testing::StartsWith("gpu-"));
}

TEST_F(ClusterTest, APreemptorsRunWaitsForThePreemptedRunsGpus) {
  cluster_ = std::make_unique<Cluster>("preempt-gpus");
  cluster_->StartController();
  cluster_->StartAgent("gpu-1", "east", "4", "2Gi", false, "2");
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 1; }, 30));
  std::string dir = cluster_->root() + "/seen";
  CreateWorkloadDir(dir);
  auto spec = [&](const std::string& name, const std::string& priority, const std::string& cmd) {
    return absl::StrCat("kind: job\nname: ", name, "\npriority: ", priority,
                        "\ngrace: 10s\nshape: {cpu: 500m, memory: 64Mi, gpus: 2}\n",
                        "command: ['/bin/sh', '-c', '", cmd, "']\n");
  };
  // Low: on SIGTERM it takes a second more, then leaves a marker and exits.
  v1::Job low, high;
  ASSERT_TRUE(cluster_
                  ->Submit(spec("low", "low",
                                absl::StrCat("echo $$ > ", cluster_->pid_dir(),
                                             "/$MERIDIAN_RUN_KEY; trap \"sleep 1; touch ", dir,
                                             "/low.done; exit 0\" TERM; touch ", dir,
                                             "/low.up; while true; do sleep 0.05; done")),
                           &low)
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/low.up"); }, 30));
  ASSERT_TRUE(cluster_
                  ->Submit(spec("high", "high",
                                absl::StrCat("if [ -e ", dir, "/low.done ]; then echo clean; else ",
                                             "echo overlap; fi > ", dir, "/high.tmp; echo ",
                                             "$CUDA_VISIBLE_DEVICES >> ", dir, "/high.tmp; mv ",
                                             dir, "/high.tmp ", dir, "/high")),
                           &high)
                  .ok());
  v1::Job done = cluster_->WaitState(high.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempt(), 0) << "the first launch must not fail";
  EXPECT_EQ(ReadText(dir + "/high"), "clean\n0,1\n");
  cluster_->KillWorkloads();
}

TEST_F(ClusterTest, FollowedLogsStreamUntilTheReplicaEnds) {
  StartCluster(1, {"east"});
  std::string gate = cluster_->root() + "/gate";
  v1::Job j;
  ASSERT_TRUE(
      cluster_
          ->Submit(JobSpec("talker",
                           absl::StrCat("echo first; while [ ! -e ", gate,
                                        " ]; do sleep 0.05; done; echo second; echo oops >&2"),
                           1, "1"),
                   &j)
          .ok());
  ASSERT_EQ(cluster_->WaitState(j.id(), v1::JOB_RUNNING).state(), v1::JOB_RUNNING);
  grpc::ClientContext ctx;
  rpc::Prepare(&ctx, cluster_->token(), 60);
  v1::LogsRequest req;
  req.set_id(j.id());
  req.set_follow(true);
  auto reader = cluster_->jobs().Logs(&ctx, req);
  std::string out;
  v1::LogChunk c;
  while (out.find("first") == std::string::npos && reader->Read(&c)) out += c.data();
  EXPECT_EQ(out, "first\n");
  std::ofstream(gate) << "go";  // the replica prints again and ends; the stream ends too
  while (reader->Read(&c)) out += c.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(out, "first\nsecond\n");
  EXPECT_EQ(cluster_->Logs(j.id(), "stderr"), "oops\n");
}

// CPU and memory limits from the job's shape reach the workload's cgroups
// (v1 here) when the agent can write them; otherwise the node says why.
TEST_F(ClusterTest, ShapeLimitsAreEnforcedThroughCgroupsWhenWritable) {
  cluster_ = std::make_unique<Cluster>("limits");
  cluster_->StartController();
  std::string node = absl::StrCat("lim-", ::getpid());
  cluster_->StartAgent(node, "east", "2", "2Gi", /*limits=*/true);
  ASSERT_TRUE(WaitUntil([&] { return cluster_->ReadyNodes() == 1; }, 30));
  grpc::ClientContext lctx;
  cluster_->Prepare(&lctx);
  v1::ListNodesResponse nodes;
  ASSERT_TRUE(cluster_->nodes().List(&lctx, v1::ListNodesRequest(), &nodes).ok());
  const std::string limits = nodes.nodes(0).limits();
  if (limits.find("not enforced") != std::string::npos) GTEST_SKIP() << limits;
  v1::Job j;
  ASSERT_TRUE(
      cluster_
          ->Submit(absl::StrCat("kind: job\nname: limited\nshape: {cpu: 500m, memory: 96Mi}\n",
                                "command: ['/bin/sh', '-c', 'cat /proc/self/cgroup']\n"),
                   &j)
          .ok());
  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  std::string key = absl::StrCat("j", j.id(), "-r0-a0");
  std::string out = ReadText(cluster_->root() + "/agents/" + node + "/runs/" + key + "/stdout.log");
  EXPECT_THAT(out, HasSubstr(absl::StrCat("meridian/", node, "/", key))) << out;
  if (limits.find("v1") != std::string::npos) {
    // The run's cgroup is removed once acknowledged; the limits were written
    // before the workload started, so check what it saw from inside instead.
    std::string line;
    for (absl::string_view l : absl::StrSplit(out, '\n'))
      if (l.find(":memory:") != absl::string_view::npos) line = std::string(l);
    EXPECT_THAT(line, HasSubstr(key));
  }
  // Leave no cgroups behind on this machine (best effort: they are empty now).
  cluster_->Kill(node, SIGKILL);
  for (const char* ctl : {"cpu", "memory"}) {
    std::string base = absl::StrCat("/sys/fs/cgroup/", ctl, "/meridian/", node);
    ::rmdir(absl::StrCat(base, "/", key).c_str());
    ::rmdir(base.c_str());
  }
}

// The CLI against a live cluster: tables for people, -o json for scripts,
// exit codes and errors that name the problem.
TEST_F(ClusterTest, CliSubmitListGetLogsAndErrors) {
  StartCluster(1, {"east"});
  std::string env = absl::StrCat("MERIDIAN_CONTROLLER=", cluster_->address(),
                                 " MERIDIAN_TOKEN_FILE=", cluster_->root(), "/controller/token",
                                 " MERIDIAN_CA_FILE=", cluster_->ca_file(), " ");
  auto run = [&](const std::string& args, int* rc) {
    std::string cmd = absl::StrCat(env, MERIDIAN_BINARY, " ", args, " 2>&1");
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  };
  std::string spec = cluster_->root() + "/hello.yaml";
  std::ofstream(spec) << JobSpec("cli-hello", "echo hi from cli");
  int rc = -1;
  std::string out = run(absl::StrCat("job submit -f ", spec, " --wait"), &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("submitted: cli-hello"));
  EXPECT_THAT(out, HasSubstr("Succeeded"));
  out = run("job list", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(out, HasSubstr("NAME"));
  EXPECT_THAT(out, HasSubstr("cli-hello"));
  out = run("job list -o json", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_THAT(out, HasSubstr("\"name\":\"cli-hello\""));
  out = run("job logs 1", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, "hi from cli\n");
  out = run("node list", &rc);
  EXPECT_THAT(out, HasSubstr("east-1"));
  EXPECT_THAT(out, HasSubstr("Ready"));
  out = run("region list -o json", &rc);
  EXPECT_THAT(out, HasSubstr("\"name\":\"east\""));
  // Errors: a bad spec names file, line and field; unknown ids; a bad token.
  std::string bad = cluster_->root() + "/bad.yaml";
  std::ofstream(bad) << "kind: job\nname: b\nshape: {cpu: 1, memory: lots}\ncommand: [x]\n";
  out = run(absl::StrCat("job submit -f ", bad), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("bad.yaml:3"));
  EXPECT_THAT(out, HasSubstr("shape.memory"));
  out = run("job get 4242", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("not found"));
  std::string wrong = cluster_->root() + "/wrong-token";
  std::ofstream(wrong) << "nope\n";
  out = run(absl::StrCat("job list --token-file ", wrong), &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("unauthenticated"));
}

TEST_F(ClusterTest, FailedReplicaRetriesThenFails) {
  StartCluster(1, {"east"});
  v1::Job j;
  ASSERT_TRUE(
      cluster_->Submit(JobSpec("flaky", "echo noise >&2; echo model.bin: bad magic >&2; exit 3", 1,
                               "1", "retries: 1\nbackoff: 0.1\n"),
                       &j)
          .ok());
  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_FAILED);
  ASSERT_EQ(done.state(), v1::JOB_FAILED);
  EXPECT_EQ(done.failures(), 2);
  EXPECT_EQ(done.attempt(), 1);
  // The reason travels with the exit: the last line of the run's stderr.
  EXPECT_THAT(done.message(), HasSubstr("exited with code 3 on "));
  EXPECT_THAT(done.message(), HasSubstr(": model.bin: bad magic"));
  EXPECT_THAT(done.message(), ::testing::Not(HasSubstr("noise")));
  // A job that fails on its first attempt only succeeds on the retry.
  ASSERT_TRUE(cluster_
                  ->Submit(JobSpec("second-time", "test $MERIDIAN_ATTEMPT -ge 1", 1, "1",
                                   "retries: 2\nbackoff: 0.1\n"),
                           &j)
                  .ok());
  done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempt(), 1);
}

TEST_F(ClusterTest, BadInputGetsClearErrors) {
  StartCluster(1, {"east"});
  // Malformed spec: InvalidArgument naming the field.
  v1::Job j;
  grpc::Status st =
      cluster_->Submit("kind: job\nname: bad\nshape: {cpu: -2, memory: 1Gi}\ncommand: [x]\n", &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("shape.cpu"));
  st = cluster_->Submit("kind: job\nname: bad\nshape: {cpu: 1, memory: 1Gi}\n", &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("command"));
  st = cluster_->Submit(
      "kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\ncommand: [x]\nreplicaz: 2\n", &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("replicaz"));
  st = cluster_->Submit("{{{{", &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Missing and wrong tokens: Unauthenticated.
  auto stub = v1::JobService::NewStub(rpc::Connect(cluster_->address(), cluster_->security()));
  {
    grpc::ClientContext ctx;
    v1::ListJobsResponse resp;
    st = stub->List(&ctx, v1::ListJobsRequest(), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, "not-the-token");
    v1::ListJobsResponse resp;
    st = stub->List(&ctx, v1::ListJobsRequest(), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    auto agent_stub = v1::AgentService::NewStub(rpc::Connect(cluster_->address(), cluster_->security()));
    grpc::ClientContext ctx;
    rpc::Prepare(&ctx, cluster_->token() + "x");
    v1::HeartbeatRequest req;
    req.set_node("east-1");
    v1::HeartbeatResponse resp;
    EXPECT_EQ(agent_stub->Heartbeat(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Unknown job id: NotFound, for get, cancel and logs.
  {
    grpc::ClientContext ctx;
    cluster_->Prepare(&ctx);
    v1::GetJobRequest req;
    req.set_id(987654);
    v1::Job out;
    st = cluster_->jobs().Get(&ctx, req, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(st.error_message(), HasSubstr("987654"));
  }
  {
    grpc::ClientContext ctx;
    cluster_->Prepare(&ctx);
    v1::CancelJobRequest req;
    req.set_id(987654);
    v1::Job out;
    EXPECT_EQ(cluster_->jobs().Cancel(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  cluster_->Logs(987654, "stdout", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  // Oversized request: refused cleanly, and the controller keeps serving.
  std::string huge =
      absl::StrCat("kind: job\nname: big\nshape: {cpu: 1, memory: 1Gi}\ncommand: [x]\n# ",
                   std::string(5 << 20, 'x'), "\n");
  st = cluster_->Submit(huge, &j);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  // The agent protocol is for nodes' own credentials: a user's token (even
  // the admin's) cannot register a node.
  {
    auto agent_stub = v1::AgentService::NewStub(rpc::Connect(cluster_->address(), cluster_->security()));
    grpc::ClientContext ctx;
    cluster_->Prepare(&ctx);
    v1::RegisterRequest req;
    req.mutable_node()->set_name("east-1");
    req.mutable_node()->set_region("east");
    v1::RegisterResponse resp;
    st = agent_stub->Register(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  }
  ASSERT_TRUE(cluster_->Submit(JobSpec("after", "true"), &j).ok());
  EXPECT_EQ(cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED).state(), v1::JOB_SUCCEEDED);
}

// kill -9 of the controller while a client submits 500 jobs: after the
// restart every answered submit exists exactly once and no replica ran twice.
TEST_F(ClusterTest, ControllerKill9LosesNoAnsweredSubmitAndRunsNothingTwice) {
  StartCluster(1, {"east", "west"}, /*hb_timeout=*/5.0);
  std::string marks = cluster_->root() + "/marks";
  CreateWorkloadDir(marks);
  constexpr int kJobs = 500;
  std::mutex mu;
  std::map<uint64_t, std::string> answered;  // id -> name
  std::atomic<int> next{0};
  std::atomic<int> acked{0};
  auto submitter = [&] {
    auto stub = v1::JobService::NewStub(rpc::Connect(cluster_->address(), cluster_->security()));
    for (int i; (i = next.fetch_add(1)) < kJobs;) {
      std::string name = absl::StrCat("d", i);
      grpc::ClientContext ctx;
      rpc::Prepare(&ctx, cluster_->token(), 5);
      v1::SubmitJobRequest req;
      req.set_spec(
          JobSpec(name, absl::StrCat("echo ran >> ", marks, "/$MERIDIAN_JOB_ID.$RANK"), 1, "100m"));
      v1::SubmitJobResponse resp;
      if (stub->Submit(&ctx, req, &resp).ok()) {
        std::lock_guard<std::mutex> l(mu);
        answered[resp.job().id()] = name;
        // kill -9 from inside the stream of submits, while others are in flight.
        if (++acked == 150) cluster_->Kill("controller", SIGKILL);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(submitter);
  for (std::thread& t : threads) t.join();
  int answered_before_kill = static_cast<int>(answered.size());
  ASSERT_GE(answered_before_kill, 150);
  ASSERT_LT(answered_before_kill, kJobs) << "the kill came too late to test anything";

  cluster_->StartController(5.0);
  // Every answered job exists (exactly once: ids are unique, names too) and finishes.
  grpc::ClientContext ctx;
  cluster_->Prepare(&ctx, 30);
  v1::ListJobsResponse listed;
  ASSERT_TRUE(cluster_->jobs().List(&ctx, v1::ListJobsRequest(), &listed).ok());
  std::map<std::string, int> name_count;
  std::set<uint64_t> ids;
  for (const v1::Job& j : listed.jobs()) {
    ++name_count[j.name()];
    ids.insert(j.id());
  }
  for (const auto& [id, name] : answered) {
    EXPECT_TRUE(ids.contains(id)) << "answered job " << id << " lost";
    EXPECT_EQ(name_count[name], 1) << name;
  }
  for (const auto& [name, n] : name_count) EXPECT_EQ(n, 1) << name;
  ASSERT_TRUE(WaitUntil(
      [&] {
        grpc::ClientContext c;
        cluster_->Prepare(&c, 10);
        v1::ListJobsRequest req;
        req.add_states(v1::JOB_PENDING);
        req.add_states(v1::JOB_SCHEDULED);
        req.add_states(v1::JOB_RUNNING);
        v1::ListJobsResponse r;
        return cluster_->jobs().List(&c, req, &r).ok() && r.jobs_size() == 0;
      },
      120))
      << "jobs did not finish after the restart";
  int marked = 0;
  for (const auto& e : fs::directory_iterator(marks)) {
    ++marked;
    EXPECT_EQ(ReadText(e.path()), "ran\n") << e.path() << " ran more than once";
  }
  EXPECT_GE(marked, answered_before_kill);
  grpc::ClientContext ctx2;
  cluster_->Prepare(&ctx2, 30);
  ASSERT_TRUE(cluster_->jobs().List(&ctx2, v1::ListJobsRequest(), &listed).ok());
  for (const v1::Job& j : listed.jobs())
    EXPECT_EQ(j.state(), v1::JOB_SUCCEEDED) << j.id() << " " << j.message();
}

}  // namespace
}  // namespace meridian::testing

namespace meridian::testing {
namespace {

// The pid of the process whose environment holds `entry`, or -1.
int FindProcessWithEnv(const std::string& entry) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string env = ReadText(e.path().string() + "/environ");
    size_t at = 0;
    while (at < env.size()) {
      size_t end = env.find('\0', at);
      if (end == std::string::npos) end = env.size();
      if (env.compare(at, end - at, entry) == 0) {
        std::string stat = ReadText(e.path().string() + "/comm");
        if (stat.rfind("meridian-mon", 0) != 0) return std::atoi(name.c_str());
      }
      at = end + 1;
    }
  }
  return -1;
}

int64_t CheckpointStep(const std::string& path) {
  std::string data = ReadText(path);
  int64_t step = -1;
  if (data.size() >= 16) std::memcpy(&step, data.data() + 8, 8);
  return step;
}

TEST_F(ClusterTest, TrainingJobResumesFromItsCheckpointAfterARankIsKilled) {
  // Replicas run `meridian train --worker`: put this build's binary on PATH.
  std::string bin = std::filesystem::path(MERIDIAN_BINARY).parent_path().string();
  ::setenv("PATH", absl::StrCat(bin, ":", std::getenv("PATH")).c_str(), 1);
  // Traffic between the regions goes through relays in rank 0, as under
  // `meridian dev --wan-rtt-ms`.
  ::setenv("MERIDIAN_WAN_RTT_MS", "2", 1);
  // Checkpoints go to the replicas' shared directory (a spec's paths are relative to it).
  std::string shared =
      (fs::path(::testing::TempDir()) / absl::StrCat("shared-", ::getpid())).string();
  fs::create_directories(shared);
  ::setenv("MERIDIAN_SHARED_DIR", shared.c_str(), 1);
  StartCluster(2, {"east", "west"});
  ::unsetenv("MERIDIAN_WAN_RTT_MS");
  ::unsetenv("MERIDIAN_SHARED_DIR");
  // The agents give tenant `default` its directory in the shared one.
  std::string ckpt = shared + "/default/checkpoints";
  std::string spec = absl::StrCat(
      "kind: training\nname: trainer\nreplicas: 4\nshape: {cpu: 2, memory: 512Mi}\n"
      "cross_region: true\nbackoff: 1s\ntraining:\n  mode: hierarchical\n  dataset: synthetic\n"
      "  epochs: 120\n  batch: 32\n  shares: equal\n  checkpoint_dir: checkpoints\n"
      "  checkpoint_every: 100\n");
  v1::Job j;
  ASSERT_TRUE(cluster_->Submit(spec, &j).ok());
  std::string file = ckpt + "/checkpoint.bin";
  ASSERT_TRUE(WaitUntil([&] { return CheckpointStep(file) >= 200; }, 120))
      << "no checkpoint; logs in " << cluster_->root();
  // kill -9 one rank (not the monitor that watches it) of the running
  // attempt (on a loaded machine an earlier attempt may have ended already).
  v1::Job running = cluster_->WaitState(j.id(), v1::JOB_RUNNING, 60);
  int killed_attempt = running.attempt();
  int pid = FindProcessWithEnv(
      absl::StrCat("MERIDIAN_RUN_KEY=j", j.id(), "-r1-a", killed_attempt));
  ASSERT_GT(pid, 1) << "rank 1 of attempt " << killed_attempt << " not found";
  int64_t before = CheckpointStep(file);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  v1::Job done = cluster_->WaitState(j.id(), v1::JOB_SUCCEEDED, 300);
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  EXPECT_GE(done.attempt(), killed_attempt + 1);
  // Rank 0 of the new attempt resumed in a new epoch from the checkpoint.
  std::string out = cluster_->Logs(j.id());
  size_t at = out.find("resumed from checkpoint at step ");
  ASSERT_NE(at, std::string::npos) << out;
  int64_t resumed = std::atoll(out.c_str() + at + 32);
  EXPECT_GE(resumed, before);  // at most one checkpoint interval of work lost
  EXPECT_EQ(resumed % 100, 0);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("(epoch a", done.attempt(), ")")));
  size_t brace = out.rfind("{\"");
  ASSERT_NE(brace, std::string::npos) << out;
  std::string json = out.substr(brace);
  auto field = [&](const std::string& k) {
    size_t p = json.find("\"" + k + "\":");
    return p == std::string::npos ? -1.0 : std::atof(json.c_str() + p + k.size() + 3);
  };
  EXPECT_EQ(field("start_step"), double(resumed));
  EXPECT_GT(field("wan_bytes"), 0) << json;  // the emulated links carried the cross-region traffic
  // Parity with one process trained on the same samples.
  FILE* p = ::popen(absl::StrCat(MERIDIAN_BINARY,
                                 " train --dataset synthetic --epochs 120 --batch 32 --json")
                        .c_str(),
                    "r");
  ASSERT_NE(p, nullptr);
  char line[4096] = {0};
  std::string local = std::fgets(line, sizeof line, p) ? line : "";
  ::pclose(p);
  size_t lp = local.find("\"test_accuracy\":");
  ASSERT_NE(lp, std::string::npos) << local;
  double local_acc = std::atof(local.c_str() + lp + 16);
  EXPECT_GE(field("test_accuracy"), local_acc - 0.01) << json;
}

}  // namespace
}  // namespace meridian::testing
