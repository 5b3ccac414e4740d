// Importers on small fixture files written here, and on the real data sets
// under ../shared/data when they are present.
#include "spec/importers.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "spec/spec.h"
#include "spec_test_util.h"

namespace meridian::spec {
namespace {

namespace fs = std::filesystem;

class ImportersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/importers_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_ + "/sky");
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string WriteGzip(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
    return path;
  }
  void WriteSkyplane() {
    Write("sky/latency.csv",
          "src_region,src_tier,src_instance_class,dst_region,dst_tier,dst_instance_class,"
          "min_rtt,avg_rtt,max_rtt,mdev_rtt\n"
          "gcp:us-central1-a,PREMIUM,n2,gcp:europe-west4-a,PREMIUM,n2,99,100,101,\n"
          "gcp:us-central1-a,STANDARD,n2,gcp:europe-west4-a,PREMIUM,n2,109,110,111,0.5\n"
          "gcp:us-central1-a,PREMIUM,n2,gcp:us-central1-b,PREMIUM,n2,1,1,1,0\n"
          "aws:us-east-1,PREMIUM,m5,gcp:us-central1-a,PREMIUM,n2,28,28.5,29,0.1\n");
    WriteGzip("sky/throughput.csv.gz",
              "src_region,dst_region,throughput_sent,throughput_received\n"
              "gcp:us-central1-a,gcp:europe-west4-a,5e9,4e9\n"
              "gcp:europe-west4-a,gcp:us-central1-a,3e9,2e9\n");
    Write("sky/cost.csv",
          "src,dest,src_tier,dest_tier,cost\n"
          "gcp:us-central1-a,gcp:europe-west4-a,PREMIUM,PREMIUM,0.05\n"
          "gcp:europe-west4-a,gcp:us-central1-a,PREMIUM,PREMIUM,0.08\n"
          "gcp:us-central1-a,gcp:us-central1-a,PREMIUM,PREMIUM,0.0\n");
  }
  std::string WritePrices() {
    return Write("prices.csv",
                 "instance_type,gpu_type,gpu_count,vcpus,ram_gb,region,price_hour_usd,"
                 "price_hour_spot_usd\r\n"
                 "a2-highgpu-1g,a100,1,12,85,us-central1,3.67,1.1\r\n"
                 "a2-highgpu-8g,a100,8,96,680,us-central1,29.39,8.8\r\n"
                 "g2-standard-4,l4,1,4,16,us-central1,0.7,0.2\r\n"
                 "a2-highgpu-8g,a100,8,96,680,europe-west4,30.12,9.1\r\n"
                 "g2-standard-4,l4,1,4,16,asia-east1,0.8,\r\n");
  }

  std::string dir_;
};

constexpr char kOpenb[] =
    "sn,cpu_milli,memory_mib,gpu,model\n"
    "n0,64000,262144,2,P100\n"
    "n1,64000,262144,2,P100\n"
    "n2,96000,786432,8,V100M32\n"
    "n3,32000,262144,0,\n"
    "n4,64000,262144,2,P100\n";

TEST_F(ImportersTest, OpenbGroupsIdenticalNodes) {
  std::string path = Write("openb.csv", kOpenb);
  absl::StatusOr<Fleet> f = ImportOpenbFleet(path, OpenbImportOptions{});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->regions().size(), 1u);
  EXPECT_EQ(f->regions()[0].name, "openb");
  ASSERT_EQ(f->groups().size(), 3u);
  EXPECT_EQ(f->groups()[0].name, "P100x2-64c-256Gi");
  EXPECT_EQ(f->groups()[0].count, 3);
  EXPECT_EQ(f->groups()[0].gpus_per_node, 2);
  EXPECT_EQ(f->groups()[0].price_hour, 4.0);
  EXPECT_EQ(f->gpu_type_name(f->groups()[1].gpu_type), "V100M32");
  EXPECT_EQ(f->groups()[2].name, "cpu-32c-256Gi");
  EXPECT_FALSE(f->groups()[2].gpu_type.Valid());
  EXPECT_EQ(f->nodes().size(), 5u);
  EXPECT_EQ(f->total_capacity().gpu_milli, 14000);

  OpenbImportOptions gpu_only;
  gpu_only.include_cpu_only = false;
  gpu_only.region = "ali";
  gpu_only.price_per_gpu_hour = 1.5;
  absl::StatusOr<Fleet> g = ImportOpenbFleet(path, gpu_only);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->groups().size(), 2u);
  EXPECT_EQ(g->regions()[0].name, "ali");
  EXPECT_EQ(g->groups()[1].price_hour, 12.0);
  // The imported fleet is a valid spec.
  EXPECT_TRUE(ParseFleet(FleetToYaml(*f), "openb.yaml", nullptr).ok());
}

TEST_F(ImportersTest, OpenbFormatErrorsNameFileAndLine) {
  std::string bad_number = Write(
      "bad1.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,lots,1,0,\n");
  absl::StatusOr<Fleet> f = ImportOpenbFleet(bad_number, {});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), bad_number + ":3: cpu_milli: expected an integer, got 'lots'");
  std::string no_model = Write("bad2.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,2,\n");
  EXPECT_EQ(ImportOpenbFleet(no_model, {}).status().message(),
            no_model + ":2: GPU node without a model");
  std::string no_col = Write("bad3.csv", "sn,cpu,memory_mib,gpu,model\nn0,1,1,2,\n");
  EXPECT_NE(ImportOpenbFleet(no_col, {})
                .status()
                .message()
                .find(no_col + ":1: missing column 'cpu_milli'"),
            std::string::npos);
  std::string short_row = Write("bad4.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1\n");
  EXPECT_EQ(ImportOpenbFleet(short_row, {}).status().message(),
            short_row + ":2: expected 5 fields, got 3");
  std::string huge =
      Write("bad5.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,99999999999999999999,X\n");
  EXPECT_NE(ImportOpenbFleet(huge, {}).status().message().find(":2: gpu: integer"),
            std::string::npos);
  EXPECT_NE(ImportOpenbFleet(dir_ + "/missing.csv", {}).status().message().find("cannot read"),
            std::string::npos);
}

TEST_F(ImportersTest, GcpFromPricesAndSkyplane) {
  WriteSkyplane();
  absl::StatusOr<Fleet> f = ImportGcpFleet(WritePrices(), dir_ + "/sky", GcpImportOptions{});
  ASSERT_TRUE(f.ok()) << f.status();
  // asia-east1 has prices but no Skyplane measurement.
  ASSERT_EQ(f->regions().size(), 2u);
  EXPECT_EQ(f->regions()[0].name, "europe-west4");
  EXPECT_EQ(f->regions()[1].name, "us-central1");
  EXPECT_EQ(f->regions()[1].cloud, "gcp");
  EXPECT_EQ(f->zones()[1].name, "us-central1-a");
  ASSERT_EQ(f->groups().size(), 3u);
  const NodeGroup& a100 = f->groups()[1];
  EXPECT_EQ(a100.name, "us-central1-a2-highgpu-8g");  // the most GPUs per node
  EXPECT_EQ(a100.gpus_per_node, 8);
  EXPECT_EQ(a100.cpu_milli, 96000);
  EXPECT_EQ(a100.memory_mib, 680 * 1024);
  EXPECT_EQ(a100.price_hour, 29.39);
  EXPECT_EQ(a100.spot_price_hour, 8.8);
  EXPECT_EQ(a100.count, 4);
  EXPECT_EQ(a100.spot_count, 0);
  RegionId eu = f->FindRegion("europe-west4"), us = f->FindRegion("us-central1");
  const Link& us_eu = f->link(us, eu);
  ASSERT_TRUE(us_eu.known);
  EXPECT_DOUBLE_EQ(us_eu.rtt_ms, 105);  // mean of both tiers
  EXPECT_DOUBLE_EQ(us_eu.gbps, 4);      // bits/s -> Gbit/s
  EXPECT_DOUBLE_EQ(us_eu.egress_usd_per_gb, 0.05);
  const Link& eu_us = f->link(eu, us);
  ASSERT_TRUE(eu_us.known);
  EXPECT_DOUBLE_EQ(eu_us.rtt_ms, 105);  // reverse direction not measured: same RTT
  EXPECT_DOUBLE_EQ(eu_us.gbps, 2);
  EXPECT_DOUBLE_EQ(eu_us.egress_usd_per_gb, 0.08);
  // Round-trips through the spec format (what `meridian import` writes).
  absl::StatusOr<Fleet> again = ParseFleet(FleetToYaml(*f), "gcp.yaml", nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  testing_util::ExpectFleetsEqual(*f, *again);
}

TEST_F(ImportersTest, GcpOptions) {
  WriteSkyplane();
  std::string prices = WritePrices();
  GcpImportOptions o;
  o.regions = {"us-central1", "asia-east1"};
  o.gpu_types = {"l4"};
  o.nodes_per_group = 2;
  o.spot_nodes_per_group = 1;
  absl::StatusOr<Fleet> f = ImportGcpFleet(prices, dir_ + "/sky", o);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->groups().size(), 2u);
  EXPECT_EQ(f->groups()[0].name, "asia-east1-g2-standard-4");
  EXPECT_EQ(f->groups()[0].spot_price_hour, 0.8);  // empty spot price: on-demand price
  EXPECT_EQ(f->nodes().size(), 6u);
  EXPECT_FALSE(f->link(f->FindRegion("asia-east1"), f->FindRegion("us-central1")).known);

  GcpImportOptions one;
  one.gpus_per_node = 1;
  one.gpu_types = {"a100"};
  absl::StatusOr<Fleet> g = ImportGcpFleet(prices, dir_ + "/sky", one);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->groups().size(), 1u);
  EXPECT_EQ(g->groups()[0].name, "us-central1-a2-highgpu-1g");

  GcpImportOptions bad_type;
  bad_type.gpu_types = {"tpu"};
  EXPECT_NE(ImportGcpFleet(prices, dir_ + "/sky", bad_type)
                .status()
                .message()
                .find("gpu type 'tpu' not in"),
            std::string::npos);
  GcpImportOptions bad_region;
  bad_region.regions = {"mars-north1"};
  EXPECT_NE(ImportGcpFleet(prices, dir_ + "/sky", bad_region)
                .status()
                .message()
                .find("region 'mars-north1' has no GPU prices"),
            std::string::npos);
  EXPECT_NE(ImportGcpFleet(prices, dir_ + "/nowhere", {})
                .status()
                .message()
                .find("cannot read " + dir_ + "/nowhere/latency.csv"),
            std::string::npos);
  std::string bad_prices = Write("bad.csv",
                                 "instance_type,gpu_type,gpu_count,vcpus,ram_gb,region,"
                                 "price_hour_usd,price_hour_spot_usd\n"
                                 "x,a100,8,96,680,us-central1,nan,1\n");
  EXPECT_EQ(ImportGcpFleet(bad_prices, dir_ + "/sky", {}).status().message(),
            bad_prices + ":2: price_hour_usd: expected a finite number, got 'nan'");
}

// --- Real data sets (skipped when absent) ----------------------------------

std::string DataFile(const std::string& rel) { return testing_util::SharedDataDir() + "/" + rel; }

TEST(ImportersRealDataTest, OpenbNodeList) {
  std::string path = DataFile("alibaba-gpu-v2023-openb/openb_node_list_gpu_node.csv");
  if (!fs::exists(path)) GTEST_SKIP() << "data set not present: " << path;
  absl::StatusOr<Fleet> f = ImportOpenbFleet(path, {});
  ASSERT_TRUE(f.ok()) << f.status();
  // Facts from the data set's PROVENANCE.md.
  EXPECT_EQ(f->nodes().size(), 1213u);
  EXPECT_EQ(f->total_capacity().gpu_milli, 6212 * 1000);
  int64_t t4 = 0;
  for (const Node& n : f->nodes())
    if (f->gpu_type_name(n.gpu_type) == "T4") ++t4;
  EXPECT_EQ(t4, 404);
  std::string all = DataFile("alibaba-gpu-v2023-openb/openb_node_list_all_node.csv");
  if (fs::exists(all)) {
    absl::StatusOr<Fleet> a = ImportOpenbFleet(all, {});
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->nodes().size(), 1523u);
  }
}

TEST(ImportersRealDataTest, GcpWithSkyplane) {
  std::string prices = DataFile("gcp-pricing-cyclenerd/gcp_gpu_instance_prices.csv");
  std::string sky = DataFile("skyplane-interregion");
  if (!fs::exists(prices) || !fs::exists(sky + "/latency.csv"))
    GTEST_SKIP() << "data sets not present under " << testing_util::SharedDataDir();
  GcpImportOptions o;
  o.regions = {"us-central1", "us-east4", "europe-west4"};
  o.gpu_types = {"a100", "l4"};
  absl::StatusOr<Fleet> f = ImportGcpFleet(prices, sky, o);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->regions().size(), 3u);
  EXPECT_GE(f->groups().size(), 5u);
  RegionId us = f->FindRegion("us-central1"), eu = f->FindRegion("europe-west4");
  const Link& l = f->link(us, eu);
  ASSERT_TRUE(l.known);
  EXPECT_GT(l.rtt_ms, 80);
  EXPECT_LT(l.rtt_ms, 150);
  EXPECT_GT(l.gbps, 0.05);
  EXPECT_LT(l.gbps, 30);
  EXPECT_GT(l.egress_usd_per_gb, 0);
  for (const NodeGroup& g : f->groups()) {
    if (f->gpu_type_name(g.gpu_type) == "a100") {
      EXPECT_EQ(g.gpus_per_node, 16) << g.name;
    }
    EXPECT_GT(g.price_hour, 0);
  }
  absl::StatusOr<Fleet> again = ParseFleet(FleetToYaml(*f), "gcp.yaml", nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  testing_util::ExpectFleetsEqual(*f, *again);

  // Default: every region with prices and measurements.
  absl::StatusOr<Fleet> all = ImportGcpFleet(prices, sky, {});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_GE(all->regions().size(), 10u);
  EXPECT_LE(all->regions().size(), 27u);
}

}  // namespace
}  // namespace meridian::spec
