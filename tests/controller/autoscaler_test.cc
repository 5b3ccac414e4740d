// Autoscaler: replica count from requests in flight, with delays.
#include <optional>

#include "controller/endpoints.h"
#include "gtest/gtest.h"

namespace meridian::controller {
namespace {

spec::EndpointSpec Spec() {
  spec::EndpointSpec s;
  s.min_replicas = 1;
  s.max_replicas = 5;
  s.target_in_flight = 4;
  s.scale_up_delay_s = 10;
  s.scale_down_delay_s = 60;
  return s;
}

TEST(AutoscalerTest, ScalesUpOnlyAfterTheDelayAndWithinMax) {
  Autoscaler a;
  spec::EndpointSpec s = Spec();
  EXPECT_EQ(a.Decide(0, 13, 2, s), 2);   // wants 4, waits
  EXPECT_EQ(a.Decide(9.9, 13, 2, s), 2);
  EXPECT_EQ(a.Decide(10, 13, 2, s), 4);  // ceil(13 / 4)
  EXPECT_NE(a.last_reason().find("scaled up to 4"), std::string::npos) << a.last_reason();
  EXPECT_EQ(a.Decide(20, 100, 4, s), 4);
  EXPECT_EQ(a.Decide(30, 100, 4, s), 5);  // capped at max
}

TEST(AutoscalerTest, ABriefDipDoesNotScaleDown) {
  Autoscaler a;
  spec::EndpointSpec s = Spec();
  EXPECT_EQ(a.Decide(0, 1, 3, s), 3);
  EXPECT_EQ(a.Decide(30, 1, 3, s), 3);
  EXPECT_EQ(a.Decide(40, 12, 3, s), 3);  // load is back: the clock restarts
  EXPECT_EQ(a.Decide(50, 1, 3, s), 3);
  EXPECT_EQ(a.Decide(109, 1, 3, s), 3);
  EXPECT_EQ(a.Decide(110, 1, 3, s), 1);  // 60 s below since t=50
}

TEST(AutoscalerTest, FixedReplicasNeverChange) {
  Autoscaler a;
  spec::EndpointSpec s = Spec();
  s.min_replicas = s.max_replicas = 3;
  EXPECT_EQ(a.Decide(0, 1000, 3, s), 3);
  EXPECT_EQ(a.Decide(1000, 1000, 3, s), 3);
}

TEST(AutoscalerTest, NoLoadReportHoldsTheCountAndItsDelays) {
  Autoscaler a;
  spec::EndpointSpec s = Spec();
  // No gateway has reported: not zero load, so no scale-down to the minimum.
  EXPECT_EQ(a.Decide(0, std::nullopt, 4, s), 4);
  EXPECT_EQ(a.Decide(1000, std::nullopt, 4, s), 4);
  // A gap in the reports restarts a pending delay: the low load seen from
  // t=1000 stops counting when the reports stop at t=1030; the 60 s
  // scale-down delay runs again from t=1040.
  EXPECT_EQ(a.Decide(1000, 1, 4, s), 4);
  EXPECT_EQ(a.Decide(1030, std::nullopt, 4, s), 4);
  EXPECT_EQ(a.Decide(1040, 1, 4, s), 4);
  EXPECT_EQ(a.Decide(1099, 1, 4, s), 4);
  EXPECT_EQ(a.Decide(1100, 1, 4, s), 1);  // 60 s of reported low load since t=1040
}

}  // namespace
}  // namespace meridian::controller
