// Report: the JSON document's shape and the HTML page's charts, escaping and
// self-containment; the value formatting the charts use.
#include "sim/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "nlohmann/json.hpp"
#include "sim/svg.h"

namespace meridian::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

PolicyResult MakeResult(const std::string& name, double scale) {
  PolicyResult r;
  r.policy = name;
  r.jobs_total = 100;
  r.jobs_completed = 98;
  r.jobs_unschedulable = 2;
  r.avg_jct_s = 3600 * scale;
  r.median_jct_s = 1800 * scale;
  r.p99_jct_s = 86400 * scale;
  r.avg_queue_s = 120 * scale;
  r.makespan_s = 7 * 86400 * scale;
  r.gpu_util = 0.62;
  r.cost_usd = 12345.67 * scale;
  r.egress_gb = 12.5;
  r.preemptions = 3;
  r.fairness = 0.93;
  r.wall_s = 1.25;
  for (int i = 0; i < 50; ++i) r.jct_cdf.push_back(10.0 * std::pow(1.3, i) * scale);
  for (int i = 0; i < 20; ++i) {
    r.utilization.emplace_back(i * 600.0, 0.5 + 0.02 * i);
    r.queue_length.emplace_back(i * 600.0, (i * 7) % 13);
  }
  return r;
}

RunInfo MakeInfo() {
  RunInfo info;
  info.fleet = "examples/fleets/multi-region.yaml";
  info.trace = "philly:/data/philly.csv.gz";
  info.nodes = 128;
  info.gpus = 1024;
  info.seed = 42;
  info.scenario = "Philly replay";
  return info;
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

TEST(ResultsToJsonTest, HasRunAndPerPolicyKeys) {
  std::vector<PolicyResult> results = {MakeResult("fifo", 1.0), MakeResult("gavel", 0.5)};
  results[1].allocation_curve = {{0.1, 0.1}, {0.5, 0.45}};
  const nlohmann::json doc = nlohmann::json::parse(ResultsToJson(results, MakeInfo()));
  ASSERT_TRUE(doc.contains("run"));
  for (const char* key : {"fleet", "trace", "nodes", "gpus", "seed", "scenario"}) {
    EXPECT_TRUE(doc["run"].contains(key)) << key;
  }
  EXPECT_EQ(doc["run"]["gpus"], 1024);
  EXPECT_EQ(doc["run"]["seed"], 42);
  ASSERT_TRUE(doc["policies"].is_object());
  ASSERT_EQ(doc["policies"].size(), 2u);
  for (const char* name : {"fifo", "gavel"}) {
    const nlohmann::json& p = doc["policies"][name];
    for (const char* key :
         {"jobs_total", "jobs_completed", "jobs_unschedulable", "avg_jct_s", "median_jct_s",
          "p99_jct_s", "avg_queue_s", "makespan_s", "gpu_util", "cost_usd", "egress_gb",
          "preemptions", "fairness", "unallocated_gpu_share", "wall_s", "jct_cdf", "utilization",
          "queue_length", "allocation_curve"}) {
      EXPECT_TRUE(p.contains(key)) << name << "." << key;
    }
    EXPECT_EQ(p["jct_cdf"].size(), 50u);
    EXPECT_EQ(p["utilization"].size(), 20u);
    EXPECT_EQ(p["utilization"][1].size(), 2u);
  }
  EXPECT_DOUBLE_EQ(doc["policies"]["fifo"]["avg_jct_s"].get<double>(), 3600);
  EXPECT_EQ(doc["policies"]["fifo"]["jobs_completed"], 98);
  EXPECT_EQ(doc["policies"]["gavel"]["allocation_curve"].size(), 2u);
  EXPECT_DOUBLE_EQ(doc["policies"]["gavel"]["allocation_curve"][1][1].get<double>(), 0.45);
}

TEST(ResultsToJsonTest, NonFiniteNumbersBecomeNullAndNamesStayDistinct) {
  PolicyResult a = MakeResult("same", 1.0);
  a.avg_jct_s = std::numeric_limits<double>::quiet_NaN();
  a.p99_jct_s = std::numeric_limits<double>::infinity();
  a.utilization.emplace_back(std::nan(""), 1.0);
  PolicyResult b = MakeResult("same", 2.0);
  const std::string text = ResultsToJson({a, b}, MakeInfo());
  EXPECT_THAT(text, Not(HasSubstr("NaN")));
  EXPECT_THAT(text, Not(HasSubstr("Infinity")));
  const nlohmann::json doc = nlohmann::json::parse(text);
  ASSERT_EQ(doc["policies"].size(), 2u);
  EXPECT_TRUE(doc["policies"]["same"]["avg_jct_s"].is_null());
  EXPECT_TRUE(doc["policies"]["same"]["p99_jct_s"].is_null());
  EXPECT_TRUE(doc["policies"]["same"]["utilization"][20][0].is_null());
  EXPECT_TRUE(doc["policies"].contains("same (2)"));
}

TEST(ResultsToJsonTest, InvalidUtf8DoesNotThrow) {
  const std::string text = ResultsToJson({MakeResult("bad\xff", 1.0)}, MakeInfo());
  EXPECT_TRUE(nlohmann::json::accept(text));
}

TEST(HtmlReportTest, OneSvgPerChartAndPolicyNames) {
  std::vector<PolicyResult> results = {MakeResult("fifo", 1.0), MakeResult("gavel", 0.5)};
  const std::string html = RenderHtmlReport(results, MakeInfo());
  EXPECT_THAT(html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(html, HasSubstr("<title>Meridian simulation report: Philly replay</title>"));
  // JCT CDF, utilization, queue length, cost.
  EXPECT_EQ(Count(html, "<svg"), 4u);
  EXPECT_EQ(Count(html, "</svg>"), 4u);
  EXPECT_THAT(html, HasSubstr("fifo"));
  EXPECT_THAT(html, HasSubstr("gavel"));
  EXPECT_THAT(html, HasSubstr("98 / 100"));
  EXPECT_THAT(html, HasSubstr("$12.3k"));
  EXPECT_THAT(html, HasSubstr("62%"));
  // Durations in human units.
  EXPECT_THAT(html, HasSubstr("<td>1h</td>"));
  EXPECT_THAT(html, HasSubstr("<td>7d</td>"));
  // JCTs span more than two decades: log x axis with clock-friendly ticks.
  EXPECT_THAT(html, HasSubstr("(log scale)"));
  EXPECT_THAT(html, HasSubstr(">10m</text>"));
  EXPECT_THAT(html, HasSubstr(">1d</text>"));
  // Unallocated share is all zero: no column.
  EXPECT_THAT(html, Not(HasSubstr("Unallocated")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  // Distinct colours for the two policies.
  EXPECT_THAT(html, HasSubstr(svg::SeriesColor(0)));
  EXPECT_THAT(html, HasSubstr(svg::SeriesColor(1)));
  EXPECT_NE(svg::SeriesColor(0), svg::SeriesColor(1));

  results[0].allocation_curve = {{0.1, 0.1}, {0.9, 0.8}};
  results[1].unallocated_gpu_share = 0.12;
  const std::string with_alloc = RenderHtmlReport(results, MakeInfo());
  EXPECT_EQ(Count(with_alloc, "<svg"), 5u);
  EXPECT_THAT(with_alloc, HasSubstr("GPU allocation as load grows"));
  EXPECT_THAT(with_alloc, HasSubstr("Unallocated GPUs"));
  EXPECT_THAT(with_alloc, HasSubstr("12%"));
}

TEST(HtmlReportTest, EscapesNamesAndScenario) {
  RunInfo info = MakeInfo();
  info.scenario = "A&B <test>";
  const std::string html = RenderHtmlReport({MakeResult("<script>alert(1)</script>", 1.0)}, info);
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("A&amp;B &lt;test&gt;"));
  EXPECT_THAT(html, Not(HasSubstr("<test>")));
}

TEST(HtmlReportTest, NoExternalReferences) {
  std::vector<PolicyResult> results = {MakeResult("fifo", 1.0), MakeResult("drf", 2.0)};
  results[0].allocation_curve = {{0.1, 0.1}, {0.9, 0.8}};
  std::string html = RenderHtmlReport(results, MakeInfo());
  // Left in the temp dir for a look in a browser.
  std::ofstream(::testing::TempDir() + "/meridian_report_test.html") << html;
  // The only URL allowed is the SVG namespace.
  const std::string xmlns = "http://www.w3.org/2000/svg";
  for (size_t pos = html.find(xmlns); pos != std::string::npos; pos = html.find(xmlns)) {
    html.erase(pos, xmlns.size());
  }
  EXPECT_THAT(html, Not(HasSubstr("http://")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  EXPECT_THAT(html, Not(HasSubstr("src=")));
  EXPECT_THAT(html, Not(HasSubstr("href")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));
}

TEST(HtmlReportTest, EmptyAndDegenerateInputsRender) {
  const std::string none = RenderHtmlReport({}, RunInfo());
  EXPECT_THAT(none, HasSubstr("No policy results"));
  EXPECT_THAT(none, HasSubstr("</html>"));

  PolicyResult empty;
  empty.policy = "idle";
  empty.avg_jct_s = std::numeric_limits<double>::quiet_NaN();
  const std::string html = RenderHtmlReport({empty}, RunInfo());
  EXPECT_EQ(Count(html, "<svg"), 4u);
  EXPECT_THAT(html, HasSubstr("no data"));
  EXPECT_THAT(html, HasSubstr("n/a"));
  EXPECT_THAT(html, Not(HasSubstr(">nan")));
  EXPECT_THAT(html, Not(HasSubstr("\"nan")));
  EXPECT_THAT(html, Not(HasSubstr("-nan")));
}

TEST(SvgFormatTest, HumanUnits) {
  using svg::FormatValue;
  using svg::Unit;
  EXPECT_EQ(FormatValue(45, Unit::kDuration), "45s");
  EXPECT_EQ(FormatValue(90, Unit::kDuration), "1.5m");
  EXPECT_EQ(FormatValue(5400, Unit::kDuration), "1.5h");
  EXPECT_EQ(FormatValue(3 * 86400, Unit::kDuration), "3d");
  EXPECT_EQ(FormatValue(0.425, Unit::kPercent), "42.5%");
  EXPECT_EQ(FormatValue(1, Unit::kPercent), "100%");
  EXPECT_EQ(FormatValue(12.3, Unit::kUsd), "$12.30");
  EXPECT_EQ(FormatValue(6172.84, Unit::kUsd), "$6173");
  EXPECT_EQ(FormatValue(45600, Unit::kUsd), "$45.6k");
  EXPECT_EQ(FormatValue(2.5e6, Unit::kUsd), "$2.5M");
  EXPECT_EQ(FormatValue(12000, Unit::kNumber), "12k");
  EXPECT_EQ(FormatValue(7, Unit::kNumber), "7");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity(), Unit::kNumber), "n/a");
  EXPECT_EQ(svg::HtmlEscape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(SvgFormatTest, NiceTicks) {
  const std::vector<double> unit = svg::LinearTicks(0, 1, 6);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * i, 1e-12);
  const std::vector<double> ticks = svg::LinearTicks(0, 97, 6);
  EXPECT_EQ(ticks.front(), 0);
  EXPECT_GE(ticks.back(), 97);
  EXPECT_EQ(ticks[1], 20);
}

}  // namespace
}  // namespace meridian::sim
