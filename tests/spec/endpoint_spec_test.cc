// ParseEndpointSpec: fields, defaults, and errors that name the field.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/spec.h"

namespace meridian::spec {
namespace {

using ::testing::HasSubstr;

TEST(EndpointSpecTest, ParsesEveryField) {
  absl::StatusOr<EndpointSpec> s = ParseEndpointSpec(R"(kind: endpoint
name: digits
tenant: serving
model: models/digits.model
replicas: {min: 2, max: 6}
shape: {cpu: 250m, memory: 128Mi}
regions: [us-east, {region: eu-west, weight: 2}]
autoscale: {target_in_flight: 8, scale_up_delay: 5s, scale_down_delay: 2m}
token: s3cret
min_ready: 2
)",
                                                     "ep.yaml", nullptr);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "digits");
  EXPECT_EQ(s->tenant, "serving");
  EXPECT_EQ(s->model, "models/digits.model");
  EXPECT_EQ(s->min_replicas, 2);
  EXPECT_EQ(s->max_replicas, 6);
  EXPECT_EQ(s->cpu_milli, 250);
  EXPECT_EQ(s->memory_mib, 128);
  ASSERT_EQ(s->regions.size(), 2u);
  EXPECT_EQ(s->regions[0].name, "us-east");
  EXPECT_EQ(s->regions[0].weight, 1);
  EXPECT_EQ(s->regions[1].name, "eu-west");
  EXPECT_EQ(s->regions[1].weight, 2);
  EXPECT_EQ(s->target_in_flight, 8);
  EXPECT_EQ(s->scale_up_delay_s, 5);
  EXPECT_EQ(s->scale_down_delay_s, 120);
  EXPECT_EQ(s->token, "s3cret");
  EXPECT_EQ(s->min_ready_s, 2);
}

TEST(EndpointSpecTest, DefaultsForTheOptionalFields) {
  absl::StatusOr<EndpointSpec> s =
      ParseEndpointSpec("kind: endpoint\nname: e\nmodel: m\n", "ep.yaml", nullptr);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->min_replicas, 1);
  EXPECT_EQ(s->max_replicas, 1);
  EXPECT_EQ(s->cpu_milli, 500);
  EXPECT_TRUE(s->regions.empty());
  EXPECT_TRUE(s->token.empty());
}

TEST(EndpointSpecTest, ErrorsNameTheField) {
  auto err = [](const std::string& text) {
    absl::StatusOr<EndpointSpec> s = ParseEndpointSpec(text, "ep.yaml", nullptr);
    return s.ok() ? std::string("ok") : std::string(s.status().message());
  };
  EXPECT_THAT(err("kind: endpoint\nmodel: m\n"), HasSubstr("name"));
  EXPECT_THAT(err("kind: endpoint\nname: e\n"), HasSubstr("model"));
  EXPECT_THAT(err("kind: endpoint\nname: Big_Name\nmodel: m\n"),
              HasSubstr("lowercase letters, digits and '-'"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nreplicas: {min: 4, max: 2}\n"),
              HasSubstr("ep.yaml:4:"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nreplicas: {min: 4, max: 2}\n"),
              HasSubstr("max is below min"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nregions: [a, a]\n"),
              HasSubstr("region 'a' is listed twice"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nautoscale: {target_in_flight: 2}\n"),
              HasSubstr("autoscale needs replicas: {min: N, max: M}"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nreplica: 3\n"), HasSubstr("replica"));
  EXPECT_THAT(err("kind: job\nname: e\nmodel: m\n"), HasSubstr("expected kind 'endpoint'"));
  EXPECT_THAT(err("kind: endpoint\nname: e\nmodel: m\nshape: {cpu: lots}\n"), HasSubstr("shape.cpu"));
}

}  // namespace
}  // namespace meridian::spec
