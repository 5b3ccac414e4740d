// ReadFile / LoadFleet / DetectKind: files, gzip, missing files, kinds.
#include <zlib.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/" + name; }

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void WriteGzip(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), int(text.size()));
  gzclose(f);
}

TEST(SpecIoTest, ReadFilePlainAndGzip) {
  std::string text = "line one\nline two\n";
  WriteText(TempPath("plain.txt"), text);
  WriteGzip(TempPath("packed.txt.gz"), text);
  absl::StatusOr<std::string> plain = ReadFile(TempPath("plain.txt"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, text);
  absl::StatusOr<std::string> unpacked = ReadFile(TempPath("packed.txt.gz"));
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  EXPECT_EQ(*unpacked, text);
}

TEST(SpecIoTest, MissingFileNamesPath) {
  std::string path = TempPath("does-not-exist.yaml");
  absl::StatusOr<std::string> r = ReadFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "cannot read " + path + ": No such file or directory");
  EXPECT_FALSE(ReadFile(path + ".gz").ok());
  std::vector<Diagnostic> diags;
  absl::StatusOr<Fleet> f = LoadFleet(path, &diags);
  ASSERT_FALSE(f.ok());
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].ToString(), path + ": cannot read file: No such file or directory");
}

TEST(SpecIoTest, LoadGzippedFleetAndJsonFile) {
  absl::StatusOr<std::string> text = ReadFile(testing_util::ExampleFleetPath());
  ASSERT_TRUE(text.ok());
  WriteGzip(TempPath("fleet.yaml.gz"), *text);
  absl::StatusOr<Fleet> f = LoadFleet(TempPath("fleet.yaml.gz"), nullptr);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->nodes().size(), 21u);
  WriteText(TempPath("fleet.json"), "{\"regions\": [}");
  std::vector<Diagnostic> diags;
  ASSERT_FALSE(LoadFleet(TempPath("fleet.json"), &diags).ok());
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].file, TempPath("fleet.json"));
  EXPECT_EQ(diags[0].line, 1);
  EXPECT_EQ(diags[0].column, 14);
}

TEST(SpecIoTest, DetectKind) {
  EXPECT_EQ(DetectKind("kind: fleet\n", "a.yaml"), DocumentKind::kFleet);
  EXPECT_EQ(DetectKind("kind: workload\nregions: []\n", "a.yaml"), DocumentKind::kWorkload);
  EXPECT_EQ(DetectKind("regions: []\n", "a.yaml"), DocumentKind::kFleet);
  EXPECT_EQ(DetectKind("node_groups: []\n", "a.yaml"), DocumentKind::kFleet);
  EXPECT_EQ(DetectKind("jobs: []\n", "a.yaml"), DocumentKind::kWorkload);
  EXPECT_EQ(DetectKind("{\"tenants\": []}", "a.json"), DocumentKind::kWorkload);
  EXPECT_EQ(DetectKind("kind: endpoint\nname: e\n", "a.yaml"), DocumentKind::kEndpoint);
  EXPECT_EQ(DetectKind("# endpoint\nkind: Endpoint\n", "a.yaml"), DocumentKind::kEndpoint);
  EXPECT_EQ(DetectKind("kind: thing\n", "a.yaml"), DocumentKind::kUnknown);
  EXPECT_EQ(DetectKind("regions: []\njobs: []\n", "a.yaml"), DocumentKind::kUnknown);
  EXPECT_EQ(DetectKind("[1, 2]", "a.yaml"), DocumentKind::kUnknown);
  EXPECT_EQ(DetectKind("a: [", "a.yaml"), DocumentKind::kUnknown);
  EXPECT_EQ(DetectKind("", "a.yaml"), DocumentKind::kUnknown);
  absl::StatusOr<std::string> ex = ReadFile(testing_util::ExampleWorkloadPath());
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(DetectKind(*ex, "mixed.yaml"), DocumentKind::kWorkload);
}

TEST(SpecIoTest, DiagnosticToString) {
  EXPECT_EQ((Diagnostic{"f.yaml", 3, 7, "jobs[0].shape", "bad"}).ToString(),
            "f.yaml:3:7: jobs[0].shape: bad");
  EXPECT_EQ((Diagnostic{"f.yaml", 3, 7, "", "bad"}).ToString(), "f.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{"f.yaml", 0, 0, "", "empty"}).ToString(), "f.yaml: empty");
}

}  // namespace
}  // namespace meridian::spec
