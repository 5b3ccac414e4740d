// Results as JSON and as a self-contained HTML page; see report.h.
// The charts themselves are drawn by svg.cc.
#include "sim/report.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "sim/svg.h"

namespace meridian::sim {

namespace {

using Json = nlohmann::ordered_json;
using svg::FormatValue;
using svg::HtmlEscape;
using svg::Unit;

// JSON has no NaN or infinity: those become null.
Json Number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json Pairs(const std::vector<std::pair<double, double>>& points) {
  Json out = Json::array();
  for (const auto& [x, y] : points) out.push_back(Json::array({Number(x), Number(y)}));
  return out;
}

Json PolicyJson(const PolicyResult& r) {
  Json p = Json::object();
  p["policy"] = r.policy;
  p["jobs_total"] = r.jobs_total;
  p["jobs_completed"] = r.jobs_completed;
  p["jobs_unschedulable"] = r.jobs_unschedulable;
  p["avg_jct_s"] = Number(r.avg_jct_s);
  p["median_jct_s"] = Number(r.median_jct_s);
  p["p99_jct_s"] = Number(r.p99_jct_s);
  p["avg_queue_s"] = Number(r.avg_queue_s);
  p["makespan_s"] = Number(r.makespan_s);
  p["gpu_util"] = Number(r.gpu_util);
  p["cost_usd"] = Number(r.cost_usd);
  p["egress_gb"] = Number(r.egress_gb);
  p["preemptions"] = r.preemptions;
  p["fairness"] = Number(r.fairness);
  p["unallocated_gpu_share"] = Number(r.unallocated_gpu_share);
  p["wall_s"] = Number(r.wall_s);
  Json cdf = Json::array();
  for (double v : r.jct_cdf) cdf.push_back(Number(v));
  p["jct_cdf"] = std::move(cdf);
  p["utilization"] = Pairs(r.utilization);
  p["queue_length"] = Pairs(r.queue_length);
  p["allocation_curve"] = Pairs(r.allocation_curve);
  if (!r.checkpoints.empty()) {
    Json cps = Json::array();
    for (const PolicyResult::Checkpoint& c : r.checkpoints)
      cps.push_back({{"arrived", Number(c.arrived)},
                     {"unallocated_gpu_share", Number(c.unallocated)},
                     {"fragmentation_rate", Number(c.fragmentation_rate)}});
    p["checkpoints"] = std::move(cps);
  }
  return p;
}

// Policy names as shown: duplicates get " (2)", " (3)" so JSON keys and
// legend entries stay distinct.
std::vector<std::string> DisplayNames(const std::vector<PolicyResult>& results) {
  std::vector<std::string> names;
  for (const PolicyResult& r : results) {
    std::string name = r.policy.empty() ? "(unnamed)" : r.policy;
    std::string candidate = name;
    for (int k = 2; std::find(names.begin(), names.end(), candidate) != names.end(); ++k) {
      candidate = absl::StrCat(name, " (", k, ")");
    }
    names.push_back(candidate);
  }
  return names;
}

std::string FormatGb(double gb) {
  if (!std::isfinite(gb)) return "n/a";
  if (gb >= 1000) return absl::StrFormat("%.2f TB", gb / 1000);
  return absl::StrFormat("%.1f GB", gb);
}

constexpr char kStyle[] = R"css(
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e5e5; text-align: right; }
th { background: #f5f5f5; }
td:first-child, th:first-child { text-align: left; }
table.info td, table.info th { text-align: left; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em;
          vertical-align: middle; }
figure { margin: 1.2em 0; }
figcaption { font-size: 0.85em; color: #555; max-width: 760px; }
svg { max-width: 100%; height: auto; border: 1px solid #eee; }
footer { margin-top: 2em; font-size: 0.8em; color: #777; }
)css";

std::string InfoTable(const std::vector<PolicyResult>& results, const RunInfo& info) {
  std::string out = "<table class=\"info\">\n";
  auto row = [&](const std::string& key, const std::string& value) {
    absl::StrAppend(&out, "<tr><th>", key, "</th><td>", HtmlEscape(value), "</td></tr>\n");
  };
  if (!info.scenario.empty()) row("Scenario", info.scenario);
  row("Fleet", info.fleet.empty() ? "-" : info.fleet);
  row("Nodes / GPUs", absl::StrCat(info.nodes, " / ", info.gpus));
  row("Trace", info.trace.empty() ? "-" : info.trace);
  row("Seed", absl::StrCat(info.seed));
  if (!info.modelling.empty()) row("Modelling", info.modelling);
  row("Policies", absl::StrCat(results.size()));
  out += "</table>\n";
  return out;
}

std::string MetricsTable(const std::vector<PolicyResult>& results,
                         const std::vector<std::string>& names) {
  bool show_unallocated = false;
  for (const PolicyResult& r : results) {
    if (r.unallocated_gpu_share != 0) show_unallocated = true;
  }
  std::string out =
      "<table class=\"metrics\">\n<tr><th>Policy</th><th>Jobs done / total</th>"
      "<th>Avg JCT</th><th>Median JCT</th><th>p99 JCT</th><th>Avg queueing</th>"
      "<th>Makespan</th><th>GPU util</th><th>Cost</th><th>Egress</th><th>Preemptions</th>"
      "<th title=\"Jain's index over tenants' mean slowdown; 1 = perfectly fair\">Fairness</th>";
  if (show_unallocated) out += "<th>Unallocated GPUs</th>";
  out += "<th>Sim wall time</th></tr>\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const PolicyResult& r = results[i];
    std::string jobs = absl::StrCat(r.jobs_completed, " / ", r.jobs_total);
    if (r.jobs_unschedulable > 0)
      absl::StrAppend(&jobs, " (", r.jobs_unschedulable, " unschedulable)");
    absl::StrAppend(&out, "<tr><td><span class=\"swatch\" style=\"background:", svg::SeriesColor(i),
                    "\"></span>", HtmlEscape(names[i]), "</td><td>", HtmlEscape(jobs), "</td>");
    for (double v : {r.avg_jct_s, r.median_jct_s, r.p99_jct_s, r.avg_queue_s, r.makespan_s}) {
      absl::StrAppend(&out, "<td>", HtmlEscape(FormatValue(v, Unit::kDuration)), "</td>");
    }
    absl::StrAppend(&out, "<td>", HtmlEscape(FormatValue(r.gpu_util, Unit::kPercent)), "</td>",
                    "<td>", HtmlEscape(FormatValue(r.cost_usd, Unit::kUsd)), "</td>", "<td>",
                    HtmlEscape(FormatGb(r.egress_gb)), "</td><td>", r.preemptions, "</td><td>",
                    std::isfinite(r.fairness) ? absl::StrFormat("%.3f", r.fairness) : "n/a",
                    "</td>");
    if (show_unallocated) {
      absl::StrAppend(&out, "<td>",
                      HtmlEscape(FormatValue(r.unallocated_gpu_share, Unit::kPercent)), "</td>");
    }
    absl::StrAppend(&out, "<td>", HtmlEscape(FormatValue(r.wall_s, Unit::kDuration)),
                    "</td></tr>\n");
  }
  out += "</table>\n";
  return out;
}

std::string Figure(const std::string& chart, const std::string& caption) {
  return absl::StrCat("<figure>\n", chart, "<figcaption>", HtmlEscape(caption),
                      "</figcaption>\n</figure>\n");
}

std::string JctCdfChart(const std::vector<PolicyResult>& results,
                        const std::vector<std::string>& names) {
  svg::LineChart chart;
  chart.title = "Job completion time (CDF)";
  chart.x = {.label = "job completion time", .unit = Unit::kDuration};
  chart.y = {.label = "share of jobs completed",
             .unit = Unit::kPercent,
             .fixed_range = true,
             .min = 0,
             .max = 1};
  double lo = INFINITY, hi = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const std::vector<double>& cdf = results[i].jct_cdf;
    svg::Series s{names[i], svg::SeriesColor(i), {}};
    for (size_t k = 0; k < cdf.size(); ++k) {
      s.points.emplace_back(cdf[k], static_cast<double>(k + 1) / static_cast<double>(cdf.size()));
      if (std::isfinite(cdf[k]) && cdf[k] > 0) lo = std::min(lo, cdf[k]), hi = std::max(hi, cdf[k]);
    }
    chart.series.push_back(std::move(s));
  }
  // More than two decades of JCTs read better on a log axis.
  chart.x.log = hi > 0 && std::isfinite(lo) && hi / lo > 100;
  return Figure(svg::RenderLineChart(chart),
                "Share of each policy's completed jobs that finished within a given time of "
                "their submission; curves further left and higher are better.");
}

std::string TimeSeriesChart(const std::vector<PolicyResult>& results,
                            const std::vector<std::string>& names, bool utilization) {
  svg::LineChart chart;
  chart.step = true;
  chart.x = {.label = "simulated time", .unit = Unit::kDuration};
  double max_value = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& points = utilization ? results[i].utilization : results[i].queue_length;
    for (const auto& p : points) {
      if (std::isfinite(p.second)) max_value = std::max(max_value, p.second);
    }
    chart.series.push_back({names[i], svg::SeriesColor(i), points});
  }
  if (utilization) {
    chart.title = "GPU utilization over time";
    chart.y = {.label = "GPUs allocated", .unit = Unit::kPercent};
    if (max_value <= 1) chart.y.fixed_range = true, chart.y.min = 0, chart.y.max = 1;
    return Figure(svg::RenderLineChart(chart),
                  "Share of the fleet's GPUs allocated to running jobs.");
  }
  chart.title = "Queue length over time";
  chart.y = {.label = "jobs waiting", .unit = Unit::kNumber};
  return Figure(svg::RenderLineChart(chart), "Jobs submitted but not yet started.");
}

std::string CostChart(const std::vector<PolicyResult>& results,
                      const std::vector<std::string>& names) {
  std::vector<svg::Bar> bars;
  for (size_t i = 0; i < results.size(); ++i) {
    bars.push_back({names[i], svg::SeriesColor(i), results[i].cost_usd});
  }
  return Figure(svg::RenderBarChart("Cost per policy", "cost (USD)", Unit::kUsd, bars),
                "Total cost of the GPU time each policy used.");
}

std::string AllocationChart(const std::vector<PolicyResult>& results,
                            const std::vector<std::string>& names) {
  svg::LineChart chart;
  chart.title = "GPU allocation as load grows";
  chart.diagonal = true;
  chart.x = {.label = "GPU demand arrived / fleet GPUs", .unit = Unit::kPercent};
  chart.y = {.label = "GPUs allocated / fleet GPUs", .unit = Unit::kPercent};
  for (size_t i = 0; i < results.size(); ++i) {
    chart.series.push_back({names[i], svg::SeriesColor(i), results[i].allocation_curve});
  }
  return Figure(svg::RenderLineChart(chart),
                "Allocated share of the fleet against the demand that has arrived; the dashed "
                "line is perfect packing. Curves that leave it early strand GPUs "
                "(fragmentation).");
}

}  // namespace

std::string ResultsToJson(const std::vector<PolicyResult>& results, const RunInfo& info) {
  Json run = Json::object();
  run["scenario"] = info.scenario;
  run["fleet"] = info.fleet;
  run["trace"] = info.trace;
  run["nodes"] = info.nodes;
  run["gpus"] = info.gpus;
  run["seed"] = info.seed;
  if (!info.modelling.empty()) run["modelling"] = info.modelling;
  Json policies = Json::object();
  const std::vector<std::string> names = DisplayNames(results);
  for (size_t i = 0; i < results.size(); ++i) policies[names[i]] = PolicyJson(results[i]);
  Json doc = Json::object();
  doc["run"] = std::move(run);
  doc["policies"] = std::move(policies);
  // Replace invalid UTF-8 rather than throw: names come from user input.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string RenderHtmlReport(const std::vector<PolicyResult>& results, const RunInfo& info) {
  const std::vector<std::string> names = DisplayNames(results);
  const std::string title = info.scenario.empty()
                                ? std::string("Meridian simulation report")
                                : absl::StrCat("Meridian simulation report: ", info.scenario);
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
      HtmlEscape(title), "</title>\n<style>", kStyle, "</style>\n</head>\n<body>\n<h1>",
      HtmlEscape(title), "</h1>\n<h2>Run</h2>\n", InfoTable(results, info), "<h2>Metrics</h2>\n");
  if (results.empty()) {
    out += "<p>No policy results.</p>\n";
  } else {
    absl::StrAppend(&out, MetricsTable(results, names), "<h2>Charts</h2>\n",
                    JctCdfChart(results, names), TimeSeriesChart(results, names, true),
                    TimeSeriesChart(results, names, false), CostChart(results, names));
    bool any_allocation = false;
    for (const PolicyResult& r : results) any_allocation |= !r.allocation_curve.empty();
    if (any_allocation) out += AllocationChart(results, names);
  }
  out +=
      "<footer>Generated by Meridian. Self-contained: no scripts and no external resources."
      "</footer>\n</body>\n</html>\n";
  return out;
}

void SetJctStats(std::vector<double> jcts, PolicyResult* r) {
  if (jcts.empty()) return;
  std::sort(jcts.begin(), jcts.end());
  double sum = 0;
  for (double x : jcts) sum += x;
  r->avg_jct_s = sum / double(jcts.size());
  r->median_jct_s = jcts[jcts.size() / 2];
  const double rank = 0.99 * double(jcts.size() - 1);
  const size_t lo = size_t(rank);
  const size_t hi = std::min(lo + 1, jcts.size() - 1);
  r->p99_jct_s = jcts[lo] + (rank - double(lo)) * (jcts[hi] - jcts[lo]);
  r->jct_cdf.clear();
  size_t step = std::max<size_t>(1, jcts.size() / 2000);
  for (size_t i = 0; i < jcts.size(); i += step) r->jct_cdf.push_back(jcts[i]);
  if (r->jct_cdf.back() != jcts.back()) r->jct_cdf.push_back(jcts.back());
}

std::vector<std::pair<double, double>> DownsampleSeries(
    const std::vector<std::pair<double, double>>& in, size_t max_points) {
  if (in.size() <= max_points) return in;
  std::vector<std::pair<double, double>> out;
  const double t0 = in.front().first, t1 = in.back().first;
  size_t j = 0;
  for (size_t i = 0; i < max_points; ++i) {
    double t = t0 + (t1 - t0) * double(i) / double(max_points - 1);
    while (j + 1 < in.size() && in[j + 1].first <= t) ++j;
    out.push_back({t, in[j].second});
  }
  return out;
}

double JainIndexOfMeans(const std::vector<double>& sum, const std::vector<int64_t>& n) {
  double s1 = 0, s2 = 0;
  int k = 0;
  for (size_t g = 0; g < sum.size() && g < n.size(); ++g)
    if (n[g] > 0) {
      const double x = sum[g] / double(n[g]);
      s1 += x;
      s2 += x * x;
      ++k;
    }
  return k > 0 && s2 > 0 ? s1 * s1 / (double(k) * s2) : 1.0;
}

}  // namespace meridian::sim
