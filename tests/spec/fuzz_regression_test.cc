// Runs the fuzz target's entry point (fuzz/spec_fuzzer.cc, linked in) over
// the seed corpus and a list of nasty inputs: none may crash, hang or break
// the target's invariants (which abort).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace meridian::spec {
namespace {

namespace fs = std::filesystem;

int RunFuzzTarget(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(FuzzRegressionTest, SeedCorpus) {
  fs::path dir = fs::path(testing_util::SourceDir()) / "fuzz" / "corpus";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;  // other targets' seeds live in subfolders
    absl::StatusOr<std::string> text = ReadFile(entry.path().string());
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(RunFuzzTarget(*text), 0) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5);
}

TEST(FuzzRegressionTest, SeedsParseAsIntended) {
  fs::path dir = fs::path(testing_util::SourceDir()) / "fuzz" / "corpus";
  for (const char* name : {"fleet-small.yaml", "fleet-small.json"}) {
    absl::StatusOr<Fleet> f = LoadFleet((dir / name).string(), nullptr);
    EXPECT_TRUE(f.ok()) << name << ": " << f.status();
  }
  absl::StatusOr<Fleet> example = LoadFleet(testing_util::ExampleFleetPath(), nullptr);
  ASSERT_TRUE(example.ok());
  for (const char* name : {"workload-small.yaml", "workload-small.json"}) {
    absl::StatusOr<Workload> w = LoadWorkload((dir / name).string(), &*example, nullptr);
    EXPECT_TRUE(w.ok()) << name << ": " << w.status();
  }
}

std::vector<std::string> NastyInputs() {
  std::vector<std::string> v = {
      "",
      ",",  // yaml-cpp 0.7's LoadAll loops forever on this
      "[a],",
      ", zones:`[z1]}\n",
      "{",
      "[[[[",
      "]]]]",
      "}",
      "\t",
      "regions:\n\t- name: a\n",
      "a: &x [*x]\n",
      "a: *undefined\n",
      "&a [*a, *a]",
      "- &a\n- *a\n",
      "? [a, b]\n: c\n",
      "!!binary AAAA",
      "!<tag:yaml.org,2002:map> {}",
      "%YAML 1.2\n---\nregions: []\n",
      "---\n---\n---\n",
      "regions: [{name: r, zones: [z]}]\nnode_groups: [{name: g, region: r, cpu: 1, memory: 1, "
      "count: 100000}]\n",
      "regions: [{name: r}]\nnode_groups: [{name: g, region: r, gpu_type: t, gpus: 1024, cpu: 1e6, "
      "memory: 1099511627776, count: 10, spot_count: 100000}]\n",
      "jobs: [{name: j, shape: {cpu: 1e308, memory: 1e308Ti, gpus: 1e308}, replicas: 1e308, "
      "duration: 1e308d, priority: -99999999999999999999}]\n",
      "jobs: [{name: j, shape: {cpu: -0, memory: -0.0, gpus: -0.0}}]\n",
      "jobs: [{name: j, shape: {cpu: .nan, memory: .inf, gpus: 0.9999}}]\n",
      "{\"regions\": 1e999999}",
      "{\"a\": \"\\ud800\"}",
      "{\"a\": 1, \"a\": 2}",
      "\xef\xbb\xbfregions: []",
      std::string("regions: [\0]", 12),
      std::string(1, '\0'),
      "\xff\xfe\xfd\xfc",
      "key: 'unterminated",
      "key: \"unterminated",
      "a: |\n  block\n b: 1\n",
      "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - "
      "- - - - - - - - - - - - - - - - - - - - - - - - - - - - x",
  };
  std::string binary;
  for (int i = 0; i < 512; ++i) binary.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  v.push_back(binary);
  v.push_back(std::string(100000, '['));
  v.push_back(std::string(100000, '{'));
  v.push_back("regions: " + std::string(5000, '[') + std::string(5000, ']'));
  std::string block;
  for (int i = 0; i < 3000; ++i) block += std::string(i, ' ') + "a:\n";
  v.push_back(block);
  std::string seq;
  for (int i = 0; i < 3000; ++i) seq += std::string(i, ' ') + "-\n";
  v.push_back(seq);
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c)
    laughs += std::string(1, c) + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) + ", *" +
              char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) +
              ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" +
              char(c - 1) + "]\n";
  v.push_back(laughs);
  std::string many_keys = "regions:\n  - name: r\n";
  for (int i = 0; i < 3000; ++i) many_keys += "    k" + std::to_string(i) + ": 1\n";
  v.push_back(many_keys);
  v.push_back("regions: [{name: " + std::string(1 << 16, 'x') + "}]");
  return v;
}

TEST(FuzzRegressionTest, NastyInputsDoNotCrash) {
  for (const std::string& input : NastyInputs()) {
    EXPECT_EQ(RunFuzzTarget(input), 0) << input.substr(0, 80);
    // Every one of them is rejected as a fleet, with a diagnostic.
    std::vector<Diagnostic> diags;
    if (!ParseFleet(input, "nasty.yaml", &diags).ok()) {
      EXPECT_FALSE(diags.empty()) << input.substr(0, 80);
    }
  }
}

}  // namespace
}  // namespace meridian::spec
