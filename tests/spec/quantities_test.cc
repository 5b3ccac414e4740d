#include "spec/quantities.h"

#include "gtest/gtest.h"

namespace meridian::spec::internal {
namespace {

TEST(QuantitiesTest, Numbers) {
  EXPECT_EQ(*ParseNumber("4"), 4.0);
  EXPECT_EQ(*ParseNumber(" -0.5 "), -0.5);
  EXPECT_EQ(*ParseNumber("1e3"), 1000.0);
  for (const char* bad :
       {"", "abc", ".nan", "NaN", ".inf", "-.Inf", "inf", "0x10", "1_000", "1e999", "-", "e5"}) {
    EXPECT_FALSE(ParseNumber(bad).ok()) << bad;
  }
  EXPECT_NE(ParseNumber(".nan").status().message().find("finite"), std::string::npos);
  EXPECT_NE(ParseNumber("1e999").status().message().find("out of range"), std::string::npos);
}

TEST(QuantitiesTest, Integers) {
  EXPECT_EQ(*ParseInteger("8"), 8);
  EXPECT_EQ(*ParseInteger("-3"), -3);
  EXPECT_EQ(*ParseInteger("1e3"), 1000);
  EXPECT_EQ(*ParseInteger("8.0"), 8);
  EXPECT_EQ(*ParseInteger("9223372036854775807"), INT64_MAX);
  EXPECT_NE(ParseInteger("9223372036854775808").status().message().find("out of range"),
            std::string::npos);
  EXPECT_NE(ParseInteger("1e300").status().message().find("out of range"), std::string::npos);
  EXPECT_NE(ParseInteger("1.5").status().message().find("expected an integer"), std::string::npos);
  EXPECT_FALSE(ParseInteger("four").ok());
}

TEST(QuantitiesTest, Cpu) {
  EXPECT_EQ(*ParseCpuMilli("4"), 4000);
  EXPECT_EQ(*ParseCpuMilli("0.5"), 500);
  EXPECT_EQ(*ParseCpuMilli("500m"), 500);
  EXPECT_EQ(*ParseCpuMilli("1000000"), 1000000000);
  EXPECT_FALSE(ParseCpuMilli("1000001").ok());
  EXPECT_FALSE(ParseCpuMilli("1.5m").ok());
  EXPECT_FALSE(ParseCpuMilli("4 cores").ok());
  EXPECT_FALSE(ParseCpuMilli("99999999999999999999999m").ok());
}

TEST(QuantitiesTest, Memory) {
  EXPECT_EQ(*ParseMemoryMib("4096"), 4096);
  EXPECT_EQ(*ParseMemoryMib("512Mi"), 512);
  EXPECT_EQ(*ParseMemoryMib("64Gi"), 65536);
  EXPECT_EQ(*ParseMemoryMib("64G"), 65536);
  EXPECT_EQ(*ParseMemoryMib("1.5Gi"), 1536);
  EXPECT_EQ(*ParseMemoryMib("2Ti"), 2 * 1024 * 1024);
  EXPECT_EQ(*ParseMemoryMib("1T"), 1024 * 1024);
  EXPECT_EQ(*ParseMemoryMib("1024Ti"), int64_t{1} << 30);
  EXPECT_FALSE(ParseMemoryMib("2000000Ti").ok());  // > 2^40 MiB
  EXPECT_FALSE(ParseMemoryMib("64Kb").ok());
  EXPECT_FALSE(ParseMemoryMib("12.5").ok());  // bare MiB must be whole
  EXPECT_FALSE(ParseMemoryMib("Gi").ok());
}

TEST(QuantitiesTest, Durations) {
  EXPECT_EQ(*ParseDurationSeconds("90"), 90);
  EXPECT_EQ(*ParseDurationSeconds("1.5"), 1.5);
  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationSeconds("30m"), 1800);
  EXPECT_EQ(*ParseDurationSeconds("4h"), 14400);
  EXPECT_EQ(*ParseDurationSeconds("1d"), 86400);
  EXPECT_EQ(*ParseDurationSeconds("1h30m"), 5400);
  EXPECT_EQ(*ParseDurationSeconds("1.5h"), 5400);
  for (const char* bad : {"", "h", "4x", "1h30", "-5m", "1e400", "99999999999d"})
    EXPECT_FALSE(ParseDurationSeconds(bad).ok()) << bad;
}

TEST(QuantitiesTest, EditDistance) {
  EXPECT_EQ(EditDistance("gpus", "gpus"), 0);
  EXPECT_EQ(EditDistance("gpu", "gpus"), 1);
  EXPECT_EQ(EditDistance("reigon", "region"), 2);
  EXPECT_EQ(EditDistance("", "abc"), 3);
}

}  // namespace
}  // namespace meridian::spec::internal
