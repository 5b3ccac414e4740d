// Inline SVG charts and value formatting for the HTML report (report.cc).
//
// Each Render* function returns one self-contained <svg> element with axes,
// ticks, axis labels and a legend; it references nothing outside itself (the
// only URL is the SVG namespace). All text is HTML-escaped here, so callers
// pass raw strings. Internal to meridian_sim_io. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::sim::svg {

// How axis ticks and values are written.
enum class Unit {
  kNumber,    // 12, 3.5k, 2.1M
  kDuration,  // seconds shown as 45s, 12m, 3.5h, 2d
  kPercent,   // fraction 0.42 shown as 42%
  kUsd,       // $12.30, $4.5k
};

std::string HtmlEscape(std::string_view text);
std::string FormatValue(double value, Unit unit);
// Distinct colour for series `index` (a 10-colour palette, then golden-angle hues).
std::string SeriesColor(size_t index);

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
};

struct Axis {
  std::string label;
  Unit unit = Unit::kNumber;
  bool log = false;          // log10 scale; non-positive values are dropped
  bool fixed_range = false;  // use [min, max] below instead of the data range
  double min = 0;
  double max = 1;
  bool from_zero = true;  // linear axes: start at 0 unless data is negative
};

struct LineChart {
  std::string title;
  Axis x;
  Axis y;
  std::vector<Series> series;
  bool step = false;      // draw as a step function (time series)
  bool diagonal = false;  // dashed y = x reference line
};

// An <svg> line chart; "no data" inside the frame when no series has points.
std::string RenderLineChart(const LineChart& chart);

struct Bar {
  std::string label;
  std::string color;
  double value = 0;
};

// An <svg> vertical bar chart with the value written above each bar.
std::string RenderBarChart(const std::string& title, const std::string& y_label, Unit unit,
                           const std::vector<Bar>& bars);

// "Nice" tick positions (1, 2, 5 x 10^k steps) covering [lo, hi].
std::vector<double> LinearTicks(double lo, double hi, int target_count);

}  // namespace meridian::sim::svg
