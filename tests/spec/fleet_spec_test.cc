// ParseFleet: the example parses; each class of error is reported with its
// position and path; JSON reads like YAML.
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

using testing_util::FleetDiags;

// Line numbers of this text are used by the tests below.
constexpr char kBase[] = R"(kind: fleet
regions:
  - name: r1
    zones: [r1-a, r1-b]
  - name: r2
node_groups:
  - name: g1
    region: r1
    gpu_type: a100
    gpus: 8
    cpu: 96
    memory: 680Gi
    count: 2
)";

std::string With(absl::string_view from, absl::string_view to) {
  std::string out = absl::StrReplaceAll(kBase, {{from, to}});
  EXPECT_NE(out, kBase) << "replacement '" << from << "' did not apply";
  return out;
}

TEST(FleetSpecTest, ExampleParses) {
  std::vector<Diagnostic> diags;
  absl::StatusOr<Fleet> f = LoadFleet(testing_util::ExampleFleetPath(), &diags);
  ASSERT_TRUE(f.ok()) << f.status() << "\n" << testing_util::Join(diags);
  EXPECT_TRUE(diags.empty());
  EXPECT_EQ(f->regions().size(), 4u);
  EXPECT_EQ(f->groups().size(), 5u);
  // 4+2 + 6 + 2 + 3 + 4 nodes.
  EXPECT_EQ(f->nodes().size(), 21u);
  EXPECT_EQ(f->gpu_types(), (std::vector<std::string>{"a100", "l4", "h100", "v100"}));
  const Region& usc = f->region(f->FindRegion("us-central1"));
  EXPECT_EQ(usc.cloud, "gcp");
  EXPECT_EQ(usc.location, "Iowa, US");
  EXPECT_DOUBLE_EQ(usc.utilization_ceiling, 0.9);
  EXPECT_EQ(f->region(f->FindRegion("us-east4")).utilization_ceiling, 1.0);

  const NodeGroup& a100 = f->groups()[0];
  EXPECT_EQ(a100.name, "usc-a100");
  EXPECT_EQ(f->zone(a100.zone).name, "us-central1-a");
  EXPECT_EQ(a100.gpus_per_node, 8);
  EXPECT_EQ(a100.cpu_milli, 96000);
  EXPECT_EQ(a100.memory_mib, 680 * 1024);
  EXPECT_DOUBLE_EQ(a100.price_hour, 29.39);
  EXPECT_DOUBLE_EQ(a100.spot_price_hour, 8.80);
  EXPECT_EQ(a100.count, 4);
  EXPECT_EQ(a100.spot_count, 2);
  // spot_price_hour defaults to price_hour.
  const NodeGroup& fra = f->groups()[4];
  EXPECT_DOUBLE_EQ(fra.spot_price_hour, 6.00);
  EXPECT_EQ(fra.taints, std::vector<std::string>{"dedicated=eu-research"});
  EXPECT_EQ(f->node(f->FindNode("fra-v100-0")).taints, fra.taints);
  // Per-node override.
  EXPECT_FALSE(f->node(f->FindNode("euw4-a100-2")).healthy);
  EXPECT_TRUE(f->node(f->FindNode("euw4-a100-1")).healthy);
  EXPECT_TRUE(f->node(f->FindNode("usc-a100-spot-1")).spot);

  RegionId usc_id = f->FindRegion("us-central1");
  RegionId fra_id = f->FindRegion("onprem-fra");
  const Link& l = f->link(usc_id, fra_id);
  EXPECT_TRUE(l.known);
  EXPECT_EQ(l.rtt_ms, 112);
  EXPECT_EQ(l.gbps, 2);
  EXPECT_DOUBLE_EQ(l.egress_usd_per_gb, 0.08);
  EXPECT_TRUE(f->link(fra_id, usc_id).known);  // symmetric by default
  ASSERT_EQ(f->datasets().size(), 3u);
  EXPECT_EQ(f->dataset(f->FindDataset("web-crawl")).size_gb, 2000);
  EXPECT_EQ(f->dataset(f->FindDataset("web-crawl")).home, f->FindRegion("us-east4"));
}

TEST(FleetSpecTest, DefaultsAndQuantityForms) {
  absl::StatusOr<Fleet> f = ParseFleet(R"(
regions:
  - {name: r1}
node_groups:
  - {name: cpu, region: r1, cpu: 500m, memory: 1024, count: 1}
  - {name: half, region: r1, cpu: 0.5, memory: 1.5Gi, count: 0, spot_count: 3}
links: []
)",
                                       "d.yaml", nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->zones().size(), 1u);
  EXPECT_EQ(f->zones()[0].name, "r1-default");
  EXPECT_FALSE(f->groups()[0].gpu_type.Valid());
  EXPECT_EQ(f->groups()[0].cpu_milli, 500);
  EXPECT_EQ(f->groups()[0].memory_mib, 1024);
  EXPECT_EQ(f->groups()[1].cpu_milli, 500);
  EXPECT_EQ(f->groups()[1].memory_mib, 1536);
  EXPECT_EQ(f->nodes().size(), 4u);
}

TEST(FleetSpecTest, UnknownFieldWithSuggestion) {
  auto diags = FleetDiags(With("    gpus: 8\n", "    gpu: 8\n"));
  EXPECT_DIAG(diags, 10, 5, "node_groups[0].gpu", "unknown field 'gpu'; did you mean 'gpus'?");
  EXPECT_EQ(diags.front().ToString(),
            "f.yaml:9:15: node_groups[0].gpu_type: a node group with gpu_type needs gpus > 0");
  EXPECT_EQ(diags[1].ToString(),
            "f.yaml:10:5: node_groups[0].gpu: unknown field 'gpu'; did you mean 'gpus'?");
  auto far = FleetDiags(With("    count: 2\n", "    count: 2\n    colour: red\n"));
  EXPECT_DIAG(far, 14, 5, "node_groups[0].colour", "known fields: name, region");
}

TEST(FleetSpecTest, WrongTypes) {
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: [1, 2]")), 13, 12, "node_groups[0].count",
              "expected an integer, got a sequence");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: \"2\"")), 13, 12, "node_groups[0].count",
              "expected an integer, got the string '2'");
  EXPECT_DIAG(FleetDiags(With("cpu: 96", "cpu: {a: 1}")), 11, 10, "node_groups[0].cpu",
              "expected a CPU quantity, got a mapping");
  EXPECT_DIAG(FleetDiags(With("  - name: r2", "  - name: [r2]")), 5, 11, "regions[1].name",
              "expected a string, got a sequence");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2.5")), 13, 12, "node_groups[0].count",
              "expected an integer, got '2.5'");
  EXPECT_DIAG(FleetDiags(With("memory: 680Gi", "memory: lots")), 12, 13, "node_groups[0].memory",
              "expected memory");
  EXPECT_DIAG(FleetDiags(With("node_groups:\n  - name", "node_groups:\n  - 7\n  - name")), 7, 5,
              "node_groups[0]", "expected a mapping, got '7'");
}

TEST(FleetSpecTest, NonPositiveSizes) {
  EXPECT_DIAG(FleetDiags(With("cpu: 96", "cpu: 0")), 11, 10, "node_groups[0].cpu",
              "must be positive");
  EXPECT_DIAG(FleetDiags(With("memory: 680Gi", "memory: -1Gi")), 12, 13, "node_groups[0].memory",
              "must be positive");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: -1")), 13, 12, "node_groups[0].count",
              "must not be negative");
  EXPECT_DIAG(FleetDiags(With("gpus: 8", "gpus: -8")), 10, 11, "node_groups[0].gpus",
              "must not be negative");
  auto diags = FleetDiags(std::string(kBase) +
                          "links:\n  - {from: r1, to: r2, rtt_ms: 1, gbps: 0}\n"
                          "datasets:\n  - {name: d, size_gb: -1, home: r1}\n");
  EXPECT_DIAG(diags, 15, 41, "links[0].gbps", "must be positive");
  EXPECT_DIAG(diags, 17, 24, "datasets[0].size_gb", "must not be negative");
  EXPECT_DIAG(FleetDiags(With("  - name: r2", "  - name: r2\n    utilization_ceiling: 0")), 6, 26,
              "regions[1].utilization_ceiling", "must be in (0, 1]");
}

TEST(FleetSpecTest, HugeNumbersAndNonFinite) {
  EXPECT_DIAG(FleetDiags(With("gpus: 8", "gpus: 99999999999999999999999")), 10, 11,
              "node_groups[0].gpus", "out of range");
  EXPECT_DIAG(FleetDiags(With("gpus: 8", "gpus: 2048")), 10, 11, "node_groups[0].gpus",
              "too large (at most 1024)");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 1000001")), 13, 12, "node_groups[0].count",
              "too large (at most 1000000)");
  EXPECT_DIAG(FleetDiags(With("cpu: 96", "cpu: 1e7")), 11, 10, "node_groups[0].cpu", "too large");
  EXPECT_DIAG(FleetDiags(With("memory: 680Gi", "memory: 9999999Ti")), 12, 13,
              "node_groups[0].memory", "too large");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2\n    price_hour: .nan")), 14, 17,
              "node_groups[0].price_hour", "finite");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2\n    price_hour: 1e999")), 14, 17,
              "node_groups[0].price_hour", "out of range");
}

TEST(FleetSpecTest, TotalNodeCap) {
  std::string text = std::string(kBase) +
                     "  - {name: g2, region: r2, cpu: 1, memory: 1Gi, count: 600000}\n"
                     "  - {name: g3, region: r2, cpu: 1, memory: 1Gi, count: 600000}\n";
  auto diags = FleetDiags(text);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].ToString(),
            "f.yaml:15:56: node_groups[2].count: the fleet would have 1200002 nodes; at most "
            "1000000 are supported");
}

TEST(FleetSpecTest, TaintExpansionCap) {
  std::string many = "[t0";
  for (int i = 1; i < 65; ++i) many += ", t" + std::to_string(i);
  many += "]";
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2\n    taints: " + many)), 14, 13,
              "node_groups[0].taints", "65 taints; at most 64 per node group");
  std::string text = std::string(kBase) +
                     "  - {name: g2, region: r2, cpu: 1, memory: 1Gi, count: 500000, "
                     "taints: [a, b, c, d, e, f, g, h, i]}\n";
  EXPECT_DIAG(FleetDiags(text), 14, 72, "node_groups[1].taints",
              "would carry 4500000 taints in total; at most 4000000");
}

TEST(FleetSpecTest, DuplicateKeysAndNames) {
  EXPECT_DIAG(FleetDiags(With("    region: r1\n", "    region: r1\n    region: r2\n")), 9, 5,
              "node_groups[0].region", "duplicate key 'region' (first at line 8)");
  EXPECT_DIAG(FleetDiags(With("  - name: r2", "  - name: r1")), 5, 11, "regions[1].name",
              "duplicate region name 'r1' (first at line 3)");
  EXPECT_DIAG(FleetDiags(With("zones: [r1-a, r1-b]", "zones: [r1-a, r1-a]")), 4, 19,
              "regions[0].zones[1]", "duplicate entry 'r1-a'");
  std::string two_groups =
      std::string(kBase) + "  - {name: g1, region: r2, cpu: 1, memory: 1Gi, count: 1}\n";
  EXPECT_DIAG(FleetDiags(two_groups), 14, 12, "node_groups[1].name",
              "duplicate node group name 'g1' (first at line 7)");
  std::string dup_link = std::string(kBase) +
                         "links:\n  - {from: r1, to: r2, rtt_ms: 1, gbps: 1}\n"
                         "  - {from: r2, to: r1, rtt_ms: 1, gbps: 1}\n";
  EXPECT_DIAG(FleetDiags(dup_link), 16, 20, "links[1].to", "duplicate link r2 -> r1");
}

TEST(FleetSpecTest, UnknownReferences) {
  auto diags = FleetDiags(With("region: r1", "region: us-west9"));
  EXPECT_DIAG(diags, 8, 13, "node_groups[0].region", "unknown region 'us-west9'; known: r1, r2");
  EXPECT_EQ(diags.front().ToString(),
            "f.yaml:8:13: node_groups[0].region: unknown region 'us-west9'; known: r1, r2");
  EXPECT_DIAG(FleetDiags(With("region: r1", "region: r3")), 8, 13, "node_groups[0].region",
              "did you mean 'r1'?");
  EXPECT_DIAG(FleetDiags(With("region: r1", "region: r1\n    zone: r1-c")), 9, 11,
              "node_groups[0].zone", "unknown zone 'r1-c'");
  EXPECT_DIAG(FleetDiags(With("region: r1", "region: r1\n    zone: r2-default")), 9, 11,
              "node_groups[0].zone", "zone 'r2-default' belongs to region 'r2', not 'r1'");
  auto ds = FleetDiags(std::string(kBase) + "datasets:\n  - {name: d, size_gb: 1, home: mars}\n");
  EXPECT_DIAG(ds, 15, 33, "datasets[0].home", "unknown region 'mars'");
  auto link =
      FleetDiags(std::string(kBase) + "links:\n  - {from: r1, to: r1, rtt_ms: 1, gbps: 1}\n");
  EXPECT_DIAG(link, 15, 20, "links[0].to", "two different regions");
}

TEST(FleetSpecTest, GpuTypeAndGpusGoTogether) {
  EXPECT_DIAG(FleetDiags(With("    gpu_type: a100\n", "")), 7, 5, "node_groups[0].gpu_type",
              "missing required field 'gpu_type'");
  EXPECT_DIAG(FleetDiags(With("gpus: 8", "gpus: 0")), 10, 11, "node_groups[0].gpus",
              "needs gpus > 0");
}

TEST(FleetSpecTest, MissingRequiredFields) {
  auto diags = FleetDiags(With("    count: 2\n", ""));
  EXPECT_DIAG(diags, 7, 5, "node_groups[0].count", "missing required field 'count'");
  EXPECT_DIAG(FleetDiags(With("    cpu: 96\n", "    cpu:\n")), 11, 5, "node_groups[0].cpu",
              "field 'cpu' has no value");
}

TEST(FleetSpecTest, NodeOverrides) {
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2\n    nodes: [{index: 2, healthy: false}]")), 14,
              21, "node_groups[0].nodes[0].index",
              "node index 2 out of range: the group has 2 nodes (0..1)");
  EXPECT_DIAG(FleetDiags(With("count: 2", "count: 2\n    nodes: [{index: 0, healthy: maybe}]")), 14,
              33, "node_groups[0].nodes[0].healthy", "expected true or false");
  EXPECT_DIAG(
      FleetDiags(With("count: 2", "count: 2\n    nodes: [{index: 0}, {index: 0, taints: [x]}]")),
      14, 33, "node_groups[0].nodes[1].index", "duplicate override for node 0");
  absl::StatusOr<Fleet> ok = ParseFleet(
      With("count: 2", "count: 2\n    spot_count: 1\n    nodes: [{index: 2, taints: [bad-disk]}]"),
      "f.yaml", nullptr);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->node(ok->FindNode("g1-spot-0")).taints, std::vector<std::string>{"bad-disk"});
}

TEST(FleetSpecTest, DocumentLevelErrors) {
  auto empty = FleetDiags("");
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0].ToString(), "f.yaml: document is empty");
  EXPECT_EQ(FleetDiags("# only a comment\n")[0].message, "document is empty");
  EXPECT_EQ(FleetDiags("- a\n- b\n")[0].ToString(),
            "f.yaml:1:1: expected a mapping, got a sequence");
  EXPECT_EQ(FleetDiags("just text")[0].message, "expected a mapping, got 'just text'");
  EXPECT_DIAG(FleetDiags("kind: fleet\n"), 1, 1, "regions", "a fleet needs at least one region");
  EXPECT_DIAG(FleetDiags("kind: fleet\n"), 1, 1, "node_groups", "at least one node group");
  EXPECT_DIAG(FleetDiags("regions: []\nnode_groups: []\n"), 1, 10, "regions",
              "at least one region");
  EXPECT_DIAG(FleetDiags(With("kind: fleet", "kind: workload")), 1, 7, "kind",
              "this is a workload document; expected kind 'fleet'");
  EXPECT_DIAG(FleetDiags(With("kind: fleet", "kind: cluster")), 1, 7, "kind", "unknown kind");
  EXPECT_DIAG(FleetDiags(std::string(kBase) + "---\nregions: []\n"), 14, 1, "",
              "expected one YAML document; a second one starts here");
  EXPECT_DIAG(FleetDiags("? [a]\n: 1\n"), 1, 3, "", "mapping keys must be strings, got a sequence");
}

TEST(FleetSpecTest, CollectsAllProblems) {
  std::string text = With("cpu: 96", "cpu: 0");
  text = absl::StrReplaceAll(text, {{"count: 2", "count: -2"}, {"region: r1", "region: nowhere"}});
  auto diags = FleetDiags(text);
  EXPECT_EQ(diags.size(), 3u) << testing_util::Join(diags);
  // Sorted by position.
  for (size_t i = 1; i < diags.size(); ++i) EXPECT_LE(diags[i - 1].line, diags[i].line);
}

TEST(FleetSpecTest, ManyProblemsAreCapped) {
  std::string text = "regions:\n  - name: r\n";
  for (int i = 0; i < 1500; ++i) text += "    k" + std::to_string(i) + ": 1\n";
  auto diags = FleetDiags(text);  // 1500 unknown fields + no node groups
  ASSERT_EQ(diags.size(), 1001u);
  EXPECT_EQ(diags.back().ToString(), "f.yaml: too many problems; 501 more not shown");
  EXPECT_EQ(diags.front().path, "regions[0].k0");
}

TEST(FleetSpecTest, MalformedYamlReportsPosition) {
  auto diags = FleetDiags("regions:\n  - name: [a, b\nnode_groups: []\n");
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_GT(diags[0].line, 0);
  EXPECT_NE(diags[0].message.find("invalid YAML"), std::string::npos) << diags[0].ToString();
  auto tabs = FleetDiags("regions:\n\t- name: r1\n");
  ASSERT_EQ(tabs.size(), 1u);
  EXPECT_EQ(tabs[0].line, 2) << tabs[0].ToString();
}

TEST(FleetSpecTest, DeepNestingRejected) {
  std::string deep(100, '[');
  auto diags = FleetDiags("regions: " + deep);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].ToString(), "f.yaml:1:74: document nested deeper than 64 levels");
  std::string block = "regions:\n";
  for (int i = 0; i < 70; ++i) block += std::string(2 * i + 2, ' ') + "- \n";
  EXPECT_NE(FleetDiags(block)[0].message.find("nested deeper"), std::string::npos);
}

TEST(FleetSpecTest, AnchorsAndAliasesAccepted) {
  absl::StatusOr<Fleet> f = ParseFleet(R"(
regions:
  - {name: r1, zones: &zones [z1]}
node_groups:
  - &g {name: g1, region: r1, gpu_type: t4, gpus: 1, cpu: 4, memory: 16Gi, count: 1, taints: &t [a]}
  - {name: g2, region: r1, gpu_type: t4, gpus: 1, cpu: 4, memory: 16Gi, count: 1, taints: *t}
)",
                                       "a.yaml", nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->groups()[1].taints, std::vector<std::string>{"a"});
}

TEST(FleetSpecTest, AliasBombRejected) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i)
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
            ", *a" + std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + ", *a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + ", *a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + ", *a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + ", *a" +
            std::to_string(i - 1) + "]\n";
  auto diags = FleetDiags(text);
  ASSERT_FALSE(diags.empty());
  EXPECT_NE(diags[0].message.find("too large"), std::string::npos) << diags[0].ToString();
}

constexpr char kSmallYaml[] = R"(kind: fleet
regions:
  - {name: r1, cloud: gcp, zones: [r1-a]}
  - {name: r2, utilization_ceiling: 0.5}
node_groups:
  - {name: g, region: r1, gpu_type: l4, gpus: 4, cpu: 48, memory: 192Gi, price_hour: 4, count: 3}
links:
  - {from: r1, to: r2, rtt_ms: 20, gbps: 5, egress_usd_per_gb: 0.01, symmetric: false}
datasets:
  - {name: d, size_gb: 10, home: r2}
)";

constexpr char kSmallJson[] = R"({
  "kind": "fleet",
  "regions": [
    {"name": "r1", "cloud": "gcp", "zones": ["r1-a"]},
    {"name": "r2", "utilization_ceiling": 0.5}
  ],
  "node_groups": [
    {"name": "g", "region": "r1", "gpu_type": "l4", "gpus": 4, "cpu": 48,
     "memory": "192Gi", "price_hour": 4, "count": 3}
  ],
  "links": [{"from": "r1", "to": "r2", "rtt_ms": 20, "gbps": 5,
             "egress_usd_per_gb": 0.01, "symmetric": false}],
  "datasets": [{"name": "d", "size_gb": 10, "home": "r2"}]
}
)";

TEST(FleetSpecTest, JsonEqualsYaml) {
  absl::StatusOr<Fleet> y = ParseFleet(kSmallYaml, "s.yaml", nullptr);
  absl::StatusOr<Fleet> j = ParseFleet(kSmallJson, "s.json", nullptr);
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_TRUE(j.ok()) << j.status();
  testing_util::ExpectFleetsEqual(*y, *j);
  EXPECT_FALSE(j->link(j->FindRegion("r2"), j->FindRegion("r1")).known);
  // Detected by content as well as by extension.
  EXPECT_TRUE(ParseFleet(kSmallJson, "s.txt", nullptr).ok());
}

TEST(FleetSpecTest, JsonErrorsHavePositions) {
  std::string bad = absl::StrReplaceAll(kSmallJson, {{"\"gpus\": 4,", "\"gpus\": 4,,"}});
  auto diags = FleetDiags(bad, "s.json");
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].line, 8);
  EXPECT_EQ(diags[0].column, 63);  // the second comma
  EXPECT_NE(diags[0].message.find("invalid JSON"), std::string::npos) << diags[0].ToString();
  auto unterminated = FleetDiags("{\"regions\": [", "x.json");
  EXPECT_EQ(unterminated[0].line, 1);
  EXPECT_EQ(unterminated[0].column, 14);
  // Strict: trailing commas and comments are not JSON.
  EXPECT_EQ(FleetDiags("{\"regions\": [],}", "x.json")[0].column, 16);
  EXPECT_EQ(FleetDiags("{\"a\": 1} // c", "x.json")[0].column, 10);
  // Valid JSON, invalid spec: positions from the YAML pass.
  std::string typed = absl::StrReplaceAll(kSmallJson, {{"\"gpus\": 4", "\"gpus\": \"4\""}});
  EXPECT_DIAG(FleetDiags(typed, "s.json"), 8, 61, "node_groups[0].gpus",
              "expected an integer, got the string '4'");
  // Duplicate keys are silently merged by most JSON readers; not here.
  std::string dup = absl::StrReplaceAll(kSmallJson, {{"\"cpu\": 48,", "\"cpu\": 48, \"cpu\": 4,"}});
  EXPECT_DIAG(FleetDiags(dup, "s.json"), 8, 75, "node_groups[0].cpu", "duplicate key 'cpu'");
  std::string deep = "{\"regions\": " + std::string(80, '[') + std::string(80, ']') + "}";
  EXPECT_NE(FleetDiags(deep, "d.json")[0].message.find("nested deeper"), std::string::npos);
}

}  // namespace
}  // namespace meridian::spec
