// End-to-end tests of the `meridian` binary: real process, real files.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int rc = -1;
  std::string out;  // stdout + stderr
};

Result RunCli(const std::string& args, bool merge_stderr = true, const std::string& prefix = "") {
  std::string cmd = prefix + std::string(MERIDIAN_BIN) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Src(const std::string& rel) { return std::string(MERIDIAN_SOURCE_DIR) + "/" + rel; }
std::string Fix(const std::string& name) { return Src("tests/cli/fixtures/" + name); }

TEST(CliValidate, ExamplesAreValid) {
  Result r = RunCli("validate " + Src("examples/fleets/multi-region.yaml") + " " +
                 Src("examples/jobs/mixed.yaml"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ok (fleet: 4 regions"));
  EXPECT_THAT(r.out, HasSubstr("ok (workload: 3 tenants, 8 jobs"));
}

TEST(CliValidate, EveryClusterExampleIsValidEndpointsAndTrainingIncluded) {
  std::string files;
  for (const auto& e : std::filesystem::directory_iterator(Src("examples/cluster")))
    if (e.path().extension() == ".yaml") files += " " + e.path().string();
  Result r = RunCli("validate" + files);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("07-endpoint.yaml: ok (endpoint '"));
  EXPECT_THAT(r.out, Not(HasSubstr("cannot tell")));
}

TEST(CliData, TrainingFindsTheDataSetsOutsideTheCheckoutToo) {
  if (!std::filesystem::exists(Src("../shared/data/sklearn-digits/digits.csv.gz")))
    GTEST_SKIP() << "../shared/data/sklearn-digits is absent";
  // From another working directory, without MERIDIAN_DATA (meridian dev and
  // its replicas used to look only at ./../shared/data).
  Result r = RunCli("train --epochs 1", true, "cd / && env -u MERIDIAN_DATA ");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("shared/data/sklearn-digits/digits.csv.gz"));
  EXPECT_THAT(r.out, HasSubstr("test accuracy"));
}

// `meridian dev` twice on one data dir: the second run must not wait on the
// first controller's address file (it printed the dead address and failed),
// and --master-port-base reaches the controller.
TEST(CliDev, RestartingOnAUsedDataDirUsesTheNewControllerAndItsPortBase) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(::testing::TempDir()) / ("cli-dev-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "specs");
  {
    std::ofstream spec(root / "specs/01-port.yaml");
    spec << "kind: job\nname: port-echo\nshape: {cpu: 100m, memory: 64Mi}\n"
            "command: ['/bin/sh', '-c', 'echo master-port=$MASTER_PORT']\n";
  }
  fs::permissions(root, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  fs::permissions(root / "specs", fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::add);
  auto dev = [&](int port_base) {
    return RunCli("dev --regions 1 --nodes-per-region 1 --no-limits --demo-timeout 60 --data-dir " +
                  (root / "d").string() + " --demo " + (root / "specs").string() +
                  " --master-port-base " + std::to_string(port_base));
  };
  auto address = [](const std::string& out) {
    size_t at = out.find("dev: controller on ");
    return at == std::string::npos ? std::string() : out.substr(at + 19, out.find(' ', at + 19) - at - 19);
  };
  Result first = dev(31500);
  ASSERT_EQ(first.rc, 0) << first.out;
  Result second = dev(31700);
  ASSERT_EQ(second.rc, 0) << second.out;
  EXPECT_THAT(second.out, HasSubstr("1 of 1 jobs succeeded"));
  ASSERT_FALSE(address(first.out).empty()) << first.out;
  EXPECT_NE(address(first.out), address(second.out)) << second.out;
  std::string ports;
  for (const auto& e : fs::recursive_directory_iterator(root / "d/agents"))
    if (e.path().filename() == "stdout.log") {
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line)) ports += line + "\n";
    }
  EXPECT_THAT(ports, HasSubstr("master-port=315")) << ports;
  EXPECT_THAT(ports, HasSubstr("master-port=317")) << ports;
  fs::remove_all(root);
}

TEST(CliValidate, InvalidFleetReportsEveryProblemWithPosition) {
  std::string f = Fix("bad-fleet.yaml");
  Result r = RunCli("validate " + f);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr(f + ":9:11: node_groups[0].gpus:"));
  EXPECT_THAT(r.out, HasSubstr(f + ":14:5: node_groups[0].colour:"));
  EXPECT_THAT(r.out, HasSubstr(f + ":16:13: node_groups[1].region:"));
  EXPECT_THAT(r.out, HasSubstr(f + ":22:12: node_groups[1].count:"));
}

TEST(CliValidate, InvalidJobsAgainstFleet) {
  std::string j = Fix("bad-jobs.yaml");
  Result r = RunCli("validate " + Fix("small-fleet.yaml") + " " + j);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr(j + ":6:13: jobs[0].tenant:"));
  EXPECT_THAT(r.out, HasSubstr(j + ":7:15: jobs[0].replicas:"));
  EXPECT_THAT(r.out, HasSubstr(j + ":9:17: jobs[0].gpu_types[0]:"));
}

TEST(CliValidate, MissingFileAndGarbage) {
  Result r = RunCli("validate /nonexistent/fleet.yaml");
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.out, HasSubstr("/nonexistent/fleet.yaml"));
  r = RunCli("validate " + Src("tests/cli/cli_test.cc"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.out, HasSubstr("cli_test.cc:"));
}

TEST(CliValidate, JsonOutputIsParseable) {
  Result r = RunCli("validate --json " + Fix("bad-fleet.yaml"), false);
  EXPECT_EQ(r.rc, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GE(j["problems"].get<int>(), 4);
  EXPECT_FALSE(j["files"][0]["ok"].get<bool>());
}

TEST(CliPlace, JsonHasPlacementsScoresAndReasons) {
  Result r = RunCli("place --json --fleet " + Fix("small-fleet.yaml") + " --jobs " +
                     Fix("small-jobs.yaml"),
                 false);
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["jobs"].size(), 2u);
  const auto& cheap = j["jobs"][0];
  EXPECT_EQ(cheap["status"], "placed");
  EXPECT_EQ(cheap["regions"][0]["region"], "west");  // cheaper region for objective cost
  EXPECT_EQ(cheap["replicas"].size(), 2u);
  EXPECT_TRUE(cheap["replicas"][0]["breakdown"].contains("best_fit"));
  const auto& big = j["jobs"][1];
  EXPECT_EQ(big["status"], "waiting");
  bool east_residency = false, west_capacity = false;
  for (const auto& w : big["why_not"]) {
    if (w["region"] == "east")
      for (const auto& n : w["notes"]) east_residency |= n.get<std::string>().find("residency") == 0;
    if (w["region"] == "west") west_capacity = w["removed_by_filter"].contains("capacity");
  }
  EXPECT_TRUE(east_residency) << r.out;
  EXPECT_TRUE(west_capacity) << r.out;
}

TEST(CliPlace, HumanOutputOnExamples) {
  Result r = RunCli("place --fleet " + Src("examples/fleets/multi-region.yaml") + " --jobs " +
                 Src("examples/jobs/mixed.yaml"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("cross-region"));
  EXPECT_THAT(r.out, HasSubstr("WAITING"));
  EXPECT_THAT(r.out, HasSubstr("residency: job may only run in"));
  EXPECT_THAT(r.out, HasSubstr("reason: quota: tenant 'product' would hold 26.75 GPUs, over its guarantee of 16 + borrowing limit of 8"));
}

TEST(CliPlace, BadFleetFailsCleanly) {
  Result r = RunCli("place --fleet " + Fix("bad-fleet.yaml") + " --jobs " + Fix("small-jobs.yaml"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.out, HasSubstr("node_groups[0].gpus"));
  r = RunCli("place --fleet " + Fix("small-fleet.yaml") + " --jobs " + Fix("small-jobs.yaml") +
          " --scorer nosuch");
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.out, HasSubstr("unknown scorer 'nosuch'"));
}

TEST(CliBench, PlacementJsonHasRequiredFields) {
  Result r = RunCli("bench placement --nodes 200 --tasks 2000 --gang 4 --json", false);
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"placements_per_sec", "decision_p50_us", "decision_p99_us", "nodes", "tasks",
                        "gang"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["nodes"], 200);
  EXPECT_EQ(j["tasks"], 2000);
  EXPECT_EQ(j["gang"], 4);
  EXPECT_GT(j["placements_per_sec"].get<double>(), 0);
}

TEST(CliMisc, HelpAndBadFlags) {
  Result r = RunCli("--help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("place"));
  r = RunCli("bench placement --nodes -5");
  EXPECT_NE(r.rc, 0);
  r = RunCli("policies --json", false);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["filters"].size(), 6u);
}

}  // namespace

namespace {

TEST(CliGateway, BadFlagsGetClearErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "give replicas with --upstream HOST:PORT[@REGION[/ZONE]]"},
      {"--upstream 127.0.0.1:1 --policy fastest", "unknown load-balancing policy 'fastest'"},
      {"--upstream 127.0.0.1:1 --policy locality --policy-option x",
       "--policy-option 'x' is not KEY=VALUE"},
      {"--upstream nowhere", "--upstream 'nowhere' is not [https://]HOST:PORT[@REGION[/ZONE]]"},
      {"--upstream 127.0.0.1:1@/a", "--upstream '127.0.0.1:1@/a' is not [https://]HOST:PORT[@REGION"},
      {"--upstream 127.0.0.1:1 --controller 127.0.0.1:2", "exclude each other"},
      {"--upstream 127.0.0.1:1 --zone a", "--zone needs --region"},
      {"--upstream 127.0.0.1:1 --listen here", "--listen: 'here' is not HOST:PORT"},
  };
  for (const auto& [args, message] : cases) {
    Result r = RunCli(std::string("gateway ") + args);
    EXPECT_EQ(r.rc, 1) << args;
    EXPECT_THAT(r.out, HasSubstr(message)) << args;
  }
  // An unknown policy's error lists the known ones.
  EXPECT_THAT(RunCli("gateway --upstream 127.0.0.1:1 --policy fastest").out,
              HasSubstr("least_request"));
}

TEST(CliEndpoint, MissingFileAndNoControllerAreClear) {
  Result file = RunCli("endpoint apply -f /nonexistent/ep.yaml --insecure --controller 127.0.0.1:1 --token-file " +
                       Fix("small-fleet.yaml"));
  EXPECT_EQ(file.rc, 1);
  EXPECT_THAT(file.out, HasSubstr("cannot read /nonexistent/ep.yaml"));
  Result help = RunCli("endpoint --help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_THAT(help.out, HasSubstr("apply"));
  EXPECT_THAT(help.out, HasSubstr("delete"));
}

}  // namespace

namespace {

TEST(CliSim, ArrivalStudyReportsCheckpointsPerSeedAndRefusesIncompleteFlags) {
  const std::string out = ::testing::TempDir() + "/arrival-study.json";
  Result r = RunCli("sim --fleet " + Fix("small-fleet.yaml") +
                    " --trace synthetic:300 --no-departures --inflate 1.3 --shuffle 7 --seeds 2"
                    " --policy fgd --policy random -q --json " +
                    out);
  ASSERT_EQ(r.rc, 0) << r.out;
  std::FILE* f = std::fopen(out.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  std::array<char, 4096> buf;
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0;) text.append(buf.data(), n);
  std::fclose(f);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["study"]["seeds"], 2);
  for (const char* p : {"fgd", "random"}) {
    EXPECT_EQ(j["policies"][p]["unallocated_mean"].size(), 5u) << p;
    EXPECT_EQ(j["policies"][p]["per_seed"].size(), 2u) << p;
    EXPECT_EQ(j["policies"][p]["per_seed"][1]["seed"], 8) << p;
  }
  for (const char* bad : {" --shuffle 7 --inflate 1.3", " --no-departures --shuffle 7",
                          " --no-departures --inflate 1.3 --seeds 3"}) {
    r = RunCli("sim --fleet " + Fix("small-fleet.yaml") + " --trace synthetic:50 --policy fgd" +
               bad);
    EXPECT_NE(r.rc, 0) << bad;
    EXPECT_THAT(r.out, HasSubstr("arrival study")) << bad;
  }
}

}  // namespace
