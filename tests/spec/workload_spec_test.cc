// ParseWorkload: the example parses against the example fleet; shapes,
// tenants, priorities and references are validated with positions.
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

using testing_util::WorkloadDiags;

class WorkloadSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Fleet> f = LoadFleet(testing_util::ExampleFleetPath(), nullptr);
    ASSERT_TRUE(f.ok()) << f.status();
    fleet_ = *std::move(f);
  }
  std::vector<Diagnostic> Diags(std::string_view text) { return WorkloadDiags(text, &fleet_); }

  Fleet fleet_;
};

// Line numbers of this text are used by the tests below.
constexpr char kBase[] = R"(kind: workload
priority_classes:
  - {name: low, value: 0}
tenants:
  - name: t1
    weight: 2
jobs:
  - name: j1
    tenant: t1
    shape: {cpu: 8, memory: 64Gi, gpus: 2}
    gpu_types: [a100]
    duration: 1h
)";

std::string With(absl::string_view from, absl::string_view to) {
  std::string out = absl::StrReplaceAll(kBase, {{from, to}});
  EXPECT_NE(out, kBase) << "replacement '" << from << "' did not apply";
  return out;
}

TEST_F(WorkloadSpecTest, ExampleParses) {
  std::vector<Diagnostic> diags;
  absl::StatusOr<Workload> w = LoadWorkload(testing_util::ExampleWorkloadPath(), &fleet_, &diags);
  ASSERT_TRUE(w.ok()) << w.status() << "\n" << testing_util::Join(diags);
  ASSERT_EQ(w->jobs.size(), 8u);
  ASSERT_EQ(w->tenants.size(), 3u);  // no job lacks a tenant: no "default"
  ASSERT_EQ(w->priority_classes.size(), 3u);
  EXPECT_EQ(w->tenants[0].name, "research");
  EXPECT_EQ(w->tenants[0].weight, 2);
  EXPECT_EQ(w->tenants[0].guarantee.gpu_milli, 32000);
  EXPECT_EQ(w->tenants[0].borrow_limit.gpu_milli, 32000);
  EXPECT_EQ(w->tenants[0].borrow_limit.cpu_milli, Tenant().borrow_limit.cpu_milli);
  EXPECT_EQ(w->tenants[1].borrow_limit.gpu_milli, 8000);
  EXPECT_EQ(w->tenants[1].borrow_limit.cpu_milli, Tenant().borrow_limit.cpu_milli);
  EXPECT_EQ(w->tenants[2].borrow_limit, Tenant().borrow_limit);
  for (size_t i = 0; i < w->jobs.size(); ++i) EXPECT_EQ(w->jobs[i].id, JobId(int32_t(i)));

  const Job& resnet = w->jobs[0];
  EXPECT_EQ(resnet.name, "resnet-imagenet");
  EXPECT_EQ(resnet.tenant, TenantId(0));
  EXPECT_EQ(resnet.replicas, 4);
  EXPECT_EQ(resnet.shape.cpu_milli, 8000);
  EXPECT_EQ(resnet.shape.memory_mib, 64 * 1024);
  EXPECT_EQ(resnet.shape.gpus, 2);
  EXPECT_EQ(resnet.shape.gpu_milli, 1000);
  ASSERT_EQ(resnet.gpu_types.size(), 2u);
  EXPECT_EQ(resnet.gpu_types[1].type, fleet_.FindGpuType("h100"));
  EXPECT_EQ(resnet.gpu_types[1].speed, 2.0);
  EXPECT_EQ(resnet.duration_s, 4 * 3600);
  EXPECT_EQ(resnet.dataset, fleet_.FindDataset("imagenet"));
  EXPECT_EQ(resnet.objective, Objective::kCost);
  EXPECT_EQ(resnet.priority, 50);

  const Job& clinical = w->jobs[2];
  EXPECT_EQ(clinical.gpu_types[0].type, fleet_.FindGpuType("v100"));
  EXPECT_EQ(clinical.gpu_types[0].speed, 1.0);
  EXPECT_EQ(clinical.allowed_regions, (std::vector<RegionId>{fleet_.FindRegion("onprem-fra"),
                                                             fleet_.FindRegion("europe-west4")}));
  EXPECT_EQ(clinical.tolerations, std::vector<std::string>{"dedicated=eu-research"});

  const Job& notebook = w->jobs[3];
  EXPECT_TRUE(notebook.shape.fractional());
  EXPECT_EQ(notebook.shape.gpu_milli, 250);
  EXPECT_EQ(notebook.duration_s, 1800);
  EXPECT_EQ(notebook.priority, 0);
  EXPECT_TRUE(w->jobs[4].spot_allowed);
  EXPECT_TRUE(w->jobs[4].gpu_types.empty());
  EXPECT_TRUE(w->jobs[5].cross_region_allowed);
  EXPECT_EQ(w->jobs[1].priority, 100);
}

TEST_F(WorkloadSpecTest, DefaultTenantAndForms) {
  absl::StatusOr<Workload> w = ParseWorkload(R"(
tenants: [{name: t1, guarantee: {gpus: 0.5, cpu: 500m, memory: 1Gi}, borrow_limit: {cpu: 8}}]
jobs:
  - {name: a, shape: {cpu: 1, memory: 1Gi, gpu_milli: 250}, priority: 7, submit_time: 1h30m}
  - {name: b, tenant: default, shape: {cpu: 1, memory: 1Gi}, objective: weighted, cost_weight: 0.2}
  - {name: c, tenant: t1, shape: {cpu: 1, memory: 1Gi, gpus: 1, gpu_milli: 500}, spot: true}
)",
                                             "w.yaml", &fleet_, nullptr);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->tenants.size(), 2u);
  EXPECT_EQ(w->tenants[1].name, "default");
  EXPECT_EQ(w->tenants[1].id, TenantId(1));
  EXPECT_EQ(w->tenants[1].weight, 1.0);
  EXPECT_EQ(w->tenants[0].guarantee, (Resources{500, 1024, 500}));
  EXPECT_EQ(w->tenants[0].borrow_limit.cpu_milli, 8000);
  EXPECT_EQ(w->tenants[0].borrow_limit.gpu_milli, Tenant().borrow_limit.gpu_milli);
  EXPECT_EQ(w->jobs[0].tenant, TenantId(1));
  EXPECT_EQ(w->jobs[1].tenant, TenantId(1));
  EXPECT_EQ(w->jobs[2].tenant, TenantId(0));
  EXPECT_EQ(w->jobs[0].shape.gpus, 1);
  EXPECT_EQ(w->jobs[0].shape.gpu_milli, 250);
  EXPECT_EQ(w->jobs[0].priority, 7);
  EXPECT_EQ(w->jobs[0].submit_time_s, 5400);
  EXPECT_EQ(w->jobs[0].duration_s, 3600);  // default
  EXPECT_EQ(w->jobs[1].shape.gpus, 0);
  EXPECT_EQ(w->jobs[1].objective, Objective::kWeighted);
  EXPECT_EQ(w->jobs[1].cost_weight, 0.2);
  EXPECT_EQ(w->jobs[2].shape.gpu_milli, 500);
}

TEST_F(WorkloadSpecTest, WithoutFleetReferencesStayUnresolved) {
  absl::StatusOr<Workload> w = ParseWorkload(
      "jobs: [{name: a, shape: {cpu: 1, memory: 1Gi, gpus: 1}, gpu_types: [tpu], "
      "dataset: x, allowed_regions: [mars]}]",
      "w.yaml", nullptr, nullptr);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->jobs[0].gpu_types.size(), 1u);
  EXPECT_FALSE(w->jobs[0].gpu_types[0].type.Valid());
  EXPECT_FALSE(w->jobs[0].dataset.Valid());
  ASSERT_EQ(w->jobs[0].allowed_regions.size(), 1u);
}

TEST_F(WorkloadSpecTest, GpuShapes) {
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpus: 1.5}")), 10, 41, "jobs[0].shape.gpus",
              "whole number or a fraction below 1, got 1.5");
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpus: 2, gpu_milli: 250}")), 10, 55,
              "jobs[0].shape.gpu_milli", "gpu_milli needs gpus: 1");
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpu_milli: 1000}")), 10, 46, "jobs[0].shape.gpu_milli",
              "too large (at most 999)");
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpus: 0.0001}")), 10, 41, "jobs[0].shape.gpus",
              "between 0.001 and 0.999");
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpus: 0}")), 11, 16, "jobs[0].gpu_types",
              "without GPUs (gpus: 0) cannot list gpu_types");
  EXPECT_DIAG(Diags(With("gpus: 2}", "gpus: 4096}")), 10, 41, "jobs[0].shape.gpus",
              "too large (at most 1024)");
  EXPECT_DIAG(Diags(With("cpu: 8, ", "")), 10, 12, "jobs[0].shape.cpu",
              "missing required field 'cpu'");
  EXPECT_DIAG(Diags(With("cpu: 8,", "cpu: 0,")), 10, 18, "jobs[0].shape.cpu", "must be positive");
  EXPECT_DIAG(Diags(With("    shape: {cpu: 8, memory: 64Gi, gpus: 2}\n", "")), 8, 5,
              "jobs[0].shape", "missing required field 'shape'");
}

TEST_F(WorkloadSpecTest, JobFieldChecks) {
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    replicas: 0")), 13, 15,
              "jobs[0].replicas", "must be positive");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    replicas: 100001")), 13, 15,
              "jobs[0].replicas", "too large (at most 100000)");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: soon")), 12, 15, "jobs[0].duration",
              "expected a duration");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 0")), 12, 15, "jobs[0].duration",
              "must be positive");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    objective: fast")), 13, 16,
              "jobs[0].objective", "expected cost, time or weighted");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    cost_weight: 1.5")), 13, 18,
              "jobs[0].cost_weight", "must be in [0, 1]");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    spot: 2")), 13, 11, "jobs[0].spot",
              "expected true or false");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    submit_time: -5")), 13, 18,
              "jobs[0].submit_time", "must not be negative");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    gpu_type: [a100]")), 13, 5,
              "jobs[0].gpu_type", "did you mean 'gpu_types'?");
  std::string two = std::string(kBase) + "  - {name: j1, shape: {cpu: 1, memory: 1Gi}}\n";
  EXPECT_DIAG(Diags(two), 13, 12, "jobs[1].name", "duplicate job name 'j1' (first at line 8)");
  EXPECT_DIAG(Diags(With("[a100]", "[a100, {type: h100, speed: 0}]")), 11, 43,
              "jobs[0].gpu_types[1].speed", "must be positive");
  EXPECT_DIAG(Diags(With("[a100]", "[a100, a100]")), 11, 23, "jobs[0].gpu_types[1]",
              "listed twice");
  EXPECT_DIAG(Diags(With("[a100]", "[[a100]]")), 11, 17, "jobs[0].gpu_types[0]",
              "expected a GPU type name or {type, speed}, got a sequence");
}

TEST_F(WorkloadSpecTest, UnknownReferences) {
  auto diags = Diags(With("[a100]", "[a100, {type: tpu-v5}]"));
  EXPECT_DIAG(diags, 11, 30, "jobs[0].gpu_types[1].type",
              "unknown GPU type 'tpu-v5'; known: a100, l4, h100, v100");
  EXPECT_DIAG(Diags(With("tenant: t1", "tenant: t2")), 9, 13, "jobs[0].tenant",
              "unknown tenant 't2'; did you mean 't1'?");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    priority: urgent")), 13, 15,
              "jobs[0].priority", "unknown priority class 'urgent'; known: low");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    dataset: imagenett")), 13, 14,
              "jobs[0].dataset", "unknown dataset 'imagenett'; did you mean 'imagenet'?");
  EXPECT_DIAG(
      Diags(With("duration: 1h", "duration: 1h\n    allowed_regions: [us-east4, us-west9]")), 13,
      33, "jobs[0].allowed_regions[1]",
      "unknown region 'us-west9'; known: us-central1, us-east4, europe-west4, onprem-fra");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    priority: 99999999999")), 13, 15,
              "jobs[0].priority", "out of range");
}

TEST_F(WorkloadSpecTest, AllowedZonesImplyTheirRegionsAndMustLieInAllowedOnes) {
  absl::StatusOr<Workload> w = ParseWorkload(
      With("duration: 1h", "duration: 1h\n    allowed_zones: [us-central1-b, us-east4-a]"),
      "w.yaml", &fleet_, nullptr);
  ASSERT_TRUE(w.ok()) << w.status();
  const Job& j = w->jobs[0];
  EXPECT_EQ(j.allowed_zones,
            (std::vector<ZoneId>{fleet_.FindZone("us-central1-b"), fleet_.FindZone("us-east4-a")}));
  EXPECT_EQ(j.allowed_regions, (std::vector<RegionId>{fleet_.FindRegion("us-central1"),
                                                      fleet_.FindRegion("us-east4")}));
  EXPECT_TRUE(j.AllowsZone(fleet_.FindZone("us-central1-b")));
  EXPECT_FALSE(j.AllowsZone(fleet_.FindZone("us-central1-a")));
  EXPECT_FALSE(j.AllowsRegion(fleet_.FindRegion("europe-west4")));

  // With allowed_regions, the zones must lie in them.
  EXPECT_DIAG(Diags(With("duration: 1h",
                         "duration: 1h\n    allowed_regions: [us-east4]\n"
                         "    allowed_zones: [us-east4-a, us-central1-a]")),
              14, 33, "jobs[0].allowed_zones[1]",
              "zone 'us-central1-a' is in region 'us-central1', which allowed_regions does not "
              "list");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    allowed_zones: [us-central1-z]")), 13,
              21, "jobs[0].allowed_zones[0]", "unknown zone 'us-central1-z'");
  EXPECT_DIAG(Diags(With("duration: 1h", "duration: 1h\n    allowed_zone: [us-east4-a]")), 13, 5,
              "jobs[0].allowed_zone", "did you mean 'allowed_zones'?");
}

TEST_F(WorkloadSpecTest, TenantChecks) {
  EXPECT_DIAG(Diags(With("weight: 2", "weight: 0")), 6, 13, "tenants[0].weight",
              "must be positive");
  EXPECT_DIAG(Diags(With("weight: 2", "weight: 2\n    guarantee: {gpus: -1}")), 7, 23,
              "tenants[0].guarantee.gpus", "must not be negative");
  EXPECT_DIAG(Diags(With("weight: 2", "weight: 2\n    borrow_limit: {gpu: 1}")), 7, 20,
              "tenants[0].borrow_limit.gpu", "did you mean 'gpus'?");
  EXPECT_DIAG(Diags(With("  - {name: low, value: 0}",
                         "  - {name: low, value: 0}\n  - {name: low, value: 1}")),
              4, 12, "priority_classes[1].name", "duplicate priority class 'low'");
  EXPECT_DIAG(Diags(With("value: 0", "value: 3000000000")), 3, 24, "priority_classes[0].value",
              "too large");
}

TEST_F(WorkloadSpecTest, DocumentLevelErrors) {
  EXPECT_DIAG(Diags("kind: workload\n"), 1, 1, "jobs", "a workload needs at least one job");
  EXPECT_DIAG(Diags("jobs: []\n"), 1, 7, "jobs", "a workload needs at least one job");
  EXPECT_DIAG(Diags("jobs: 5\n"), 1, 7, "jobs", "expected a sequence, got '5'");
  EXPECT_EQ(Diags("")[0].ToString(), "w.yaml: document is empty");
  EXPECT_DIAG(Diags("kind: fleet\njobs: []\n"), 1, 7, "kind", "this is a fleet document");
}

// ---- kind: job (control-plane job documents)

TEST_F(WorkloadSpecTest, JobSpecParsesRunFields) {
  absl::StatusOr<JobSpec> j = ParseJobSpec(R"(kind: job
name: train
tenant: research
replicas: 4
shape: {cpu: 8, memory: 64Gi, gpus: 2}
gpu_types: [a100]
allowed_regions: [us-central1]
priority: high
command: [python3, train.py, --epochs, "3"]
env: {LR: "0.1", MODE: fast}
retries: 2
backoff: 30s
grace: 1m
readiness_path: /readyz
)", "job.yaml", &fleet_, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->job.name, "train");
  EXPECT_EQ(j->tenant, "research");
  EXPECT_EQ(j->job.replicas, 4);
  EXPECT_EQ(j->job.priority, 100);
  EXPECT_EQ(j->job.allowed_regions.size(), 1u);
  EXPECT_EQ(j->command, (std::vector<std::string>{"python3", "train.py", "--epochs", "3"}));
  ASSERT_EQ(j->env.size(), 2u);
  EXPECT_EQ(j->env[0], (std::pair<std::string, std::string>{"LR", "0.1"}));
  EXPECT_EQ(j->max_retries, 2);
  EXPECT_EQ(j->backoff_s, 30);
  EXPECT_EQ(j->grace_s, 60);
  EXPECT_EQ(j->readiness_path, "/readyz");
  EXPECT_EQ(DetectKind("kind: job\n", "x"), DocumentKind::kJob);
}

TEST_F(WorkloadSpecTest, JobSpecStringCommandRunsThroughTheShell) {
  absl::StatusOr<JobSpec> j = ParseJobSpec(
      "kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\ncommand: echo $RANK\n", "j", nullptr,
      nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->command, (std::vector<std::string>{"/bin/sh", "-c", "echo $RANK"}));
  EXPECT_EQ(j->tenant, "default");
  EXPECT_EQ(j->max_retries, 0);
  EXPECT_EQ(j->readiness_path, "");  // no probe: running is ready
}

TEST_F(WorkloadSpecTest, JobSpecErrorsNameTheField) {
  auto diags = [&](std::string_view text) {
    std::vector<Diagnostic> d;
    (void)ParseJobSpec(text, "j.yaml", &fleet_, &d);
    return d;
  };
  const char* head = "kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\n";
  EXPECT_DIAG(diags(head), 0, 0, "command", "");
  EXPECT_DIAG(diags(std::string(head) + "command: []\n"), 4, 10, "command", "at least a program");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nretries: 101\n"), 5, 10, "retries", "");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nenv: {9LIVES: x}\n"), 5, 7, "env.9LIVES",
              "environment variable names");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nenv: [a]\n"), 5, 6, "env",
              "expected a mapping");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\ngpu_types: [a100]\n"), 5, 12, "gpu_types",
              "without GPUs");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nreplicaz: 2\n"), 5, 1, "replicaz", "");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nreadiness_path: readyz\n"), 5, 17,
              "readiness_path", "expected an HTTP path");
  EXPECT_DIAG(diags(std::string(head) + "command: [x]\nreadiness_path: /a b\n"), 5, 17,
              "readiness_path", "no spaces");
  EXPECT_DIAG(diags("kind: workload\nname: x\n"), 1, 7, "kind", "");
}

// ---- kind: training

TEST_F(WorkloadSpecTest, TrainingSpecBecomesAWorkerCommand) {
  absl::StatusOr<JobSpec> j = ParseJobSpec(R"(kind: training
name: t
replicas: 6
shape: {cpu: 1, memory: 1Gi}
cross_region: true
training:
  mode: diloco
  local_steps: 20
  compression: int8
  overlap: true
  hidden: [128, 64]
  checkpoint_dir: ck
  checkpoint_every: 100
  save: models/m.bin
)", "t.yaml", nullptr, nullptr);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->job.replicas, 6);
  EXPECT_EQ(j->max_retries, 3);  // a lost rank restarts from the checkpoint
  EXPECT_EQ(j->command,
            (std::vector<std::string>{"meridian", "train", "--worker", "--mode", "diloco",
                                      "--compression", "int8", "--local-steps", "20",
                                      "--checkpoint-every", "100", "--overlap", "--hidden", "128",
                                      "--hidden", "64", "--save", "models/m.bin",
                                      "--checkpoint-dir", "ck"}));
  EXPECT_EQ(DetectKind("kind: training\n", "x"), DocumentKind::kJob);
  absl::StatusOr<JobSpec> plain = ParseJobSpec(
      "kind: training\nname: p\nshape: {cpu: 1, memory: 1Gi}\n", "p", nullptr, nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->command, (std::vector<std::string>{"meridian", "train", "--worker"}));
}

TEST_F(WorkloadSpecTest, TrainingSpecErrorsNameTheField) {
  auto diags = [&](std::string_view text) {
    std::vector<Diagnostic> d;
    (void)ParseJobSpec(text, "t.yaml", nullptr, &d);
    return d;
  };
  const std::string head = "kind: training\nname: x\nshape: {cpu: 1, memory: 1Gi}\n";
  EXPECT_DIAG(diags(head + "training:\n  mode: ring\n"), 5, 9, "training.mode",
              "'ring' is not one of allreduce, central, hierarchical, diloco");
  EXPECT_DIAG(diags(head + "command: [x]\n"), 4, 10, "command", "takes no command");
  EXPECT_DIAG(diags(head + "training:\n  checkpoint_dir: c\n"), 5, 19, "training.checkpoint_dir",
              "needs checkpoint_every");
  EXPECT_DIAG(diags(head + "training:\n  epochz: 3\n"), 5, 3, "training.epochz", "");
  EXPECT_DIAG(diags(head + "training:\n  hidden: [0]\n"), 5, 12, "training.hidden[0]", "");
  EXPECT_DIAG(diags("kind: job\nname: x\nshape: {cpu: 1, memory: 1Gi}\ncommand: [x]\n"
                    "training: {mode: diloco}\n"),
              5, 11, "training", "needs 'kind: training'");
}

}  // namespace
}  // namespace meridian::spec
