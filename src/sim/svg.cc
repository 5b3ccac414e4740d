// Inline SVG charts for the HTML report; see svg.h.
#include "sim/svg.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace meridian::sim::svg {

namespace {

constexpr double kWidth = 760;
constexpr double kHeight = 380;
constexpr double kLeft = 76;
constexpr double kRight = 190;  // legend column
constexpr double kTop = 34;
constexpr double kBottom = 56;
constexpr char kFont[] = "font-family=\"sans-serif\"";

// 12 -> "12", 3.50 -> "3.5", 0.125 -> "0.13".
std::string Compact(double v) {
  const double a = std::abs(v);
  std::string s;
  if (a >= 100 || a == std::floor(a)) {
    s = absl::StrFormat("%.0f", v);
  } else if (a >= 10) {
    s = absl::StrFormat("%.1f", v);
  } else {
    s = absl::StrFormat("%.2f", v);
  }
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string Num(double v) { return absl::StrFormat("%.1f", v); }

// A mapping from data values to pixels along one axis.
struct Scale {
  double lo = 0, hi = 1;  // data range (log10 of it when log)
  double p0 = 0, p1 = 1;  // pixel range
  bool log = false;
  double operator()(double v) const {
    const double d = log ? std::log10(v) : v;
    return p0 + (d - lo) / (hi - lo) * (p1 - p0);
  }
};

// Seconds per display unit for a duration axis reaching `hi`.
double DurationUnit(double hi) {
  if (hi < 180) return 1;
  if (hi < 3 * 3600.0) return 60;
  if (hi < 3 * 86400.0) return 3600;
  return 86400;
}

// Ticks and the final range of a (linear or log) axis over [lo, hi].
std::vector<double> AxisTicks(const Axis& axis, double* lo, double* hi) {
  std::vector<double> ticks;
  if (axis.log && axis.unit == Unit::kDuration) {
    // Clock-friendly steps instead of 100s, 1000s, ...
    static constexpr double kLadder[] = {0.001, 0.01,  0.1,   1,      10,      60,       600,
                                         3600,  21600, 86400, 604800, 2592000, 31536000, 315360000};
    constexpr size_t kSteps = sizeof(kLadder) / sizeof(kLadder[0]);
    size_t a = 0, b = kSteps - 1;
    while (a + 1 < kSteps && kLadder[a + 1] <= *lo) ++a;
    while (b > a + 1 && kLadder[b - 1] >= *hi) --b;
    if (kLadder[b] < *hi) b = kSteps - 1;
    ticks.assign(kLadder + a, kLadder + b + 1);
    *lo = std::min(*lo, kLadder[a]);
    *hi = std::max(*hi, kLadder[b]);
    return ticks;
  }
  if (axis.log) {
    const int a = static_cast<int>(std::floor(std::log10(*lo)));
    int b = static_cast<int>(std::ceil(std::log10(*hi)));
    if (b <= a) b = a + 1;
    for (int e = a; e <= b; ++e) ticks.push_back(std::pow(10.0, e));
    *lo = std::pow(10.0, a);
    *hi = std::pow(10.0, b);
    return ticks;
  }
  const double unit = axis.unit == Unit::kDuration ? DurationUnit(std::max(std::abs(*lo), *hi)) : 1;
  ticks = LinearTicks(*lo / unit, *hi / unit, 6);
  for (double& t : ticks) t *= unit;
  if (!axis.fixed_range) {
    *lo = ticks.front();
    *hi = ticks.back();
  } else {
    ticks.erase(std::remove_if(ticks.begin(), ticks.end(),
                               [&](double t) { return t < *lo - 1e-9 || t > *hi + 1e-9; }),
                ticks.end());
  }
  return ticks;
}

std::string SvgOpen(const std::string& title) {
  return absl::StrCat("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", Num(kWidth), " ",
                      Num(kHeight), "\" width=\"", Num(kWidth), "\" height=\"", Num(kHeight),
                      "\" role=\"img\" aria-label=\"", HtmlEscape(title), "\">\n<title>",
                      HtmlEscape(title), "</title>\n", "<rect x=\"0\" y=\"0\" width=\"",
                      Num(kWidth), "\" height=\"", Num(kHeight),
                      "\" fill=\"#ffffff\"/>\n<text x=\"", Num(kLeft), "\" y=\"20\" ", kFont,
                      " font-size=\"14\" font-weight=\"bold\">", HtmlEscape(title), "</text>\n");
}

// Frame, grid lines, tick labels and axis labels.
std::string Axes(const Axis& x_axis, const Scale& x, const std::vector<double>& x_ticks,
                 const Axis& y_axis, const Scale& y, const std::vector<double>& y_ticks) {
  std::string out;
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom, y1 = kTop;
  for (double t : y_ticks) {
    const double py = y(t);
    absl::StrAppend(&out, "<line x1=\"", Num(x0), "\" y1=\"", Num(py), "\" x2=\"", Num(x1),
                    "\" y2=\"", Num(py), "\" stroke=\"#e5e5e5\"/>\n<text x=\"", Num(x0 - 6),
                    "\" y=\"", Num(py + 4), "\" text-anchor=\"end\" ", kFont, " font-size=\"11\">",
                    HtmlEscape(FormatValue(t, y_axis.unit)), "</text>\n");
  }
  for (double t : x_ticks) {
    const double px = x(t);
    absl::StrAppend(&out, "<line x1=\"", Num(px), "\" y1=\"", Num(y0), "\" x2=\"", Num(px),
                    "\" y2=\"", Num(y0 + 5), "\" stroke=\"#333333\"/>\n<text x=\"", Num(px),
                    "\" y=\"", Num(y0 + 18), "\" text-anchor=\"middle\" ", kFont,
                    " font-size=\"11\">", HtmlEscape(FormatValue(t, x_axis.unit)), "</text>\n");
  }
  absl::StrAppend(&out, "<rect x=\"", Num(x0), "\" y=\"", Num(y1), "\" width=\"", Num(x1 - x0),
                  "\" height=\"", Num(y0 - y1), "\" fill=\"none\" stroke=\"#333333\"/>\n");
  absl::StrAppend(&out, "<text x=\"", Num((x0 + x1) / 2), "\" y=\"", Num(kHeight - 14),
                  "\" text-anchor=\"middle\" ", kFont, " font-size=\"12\">",
                  HtmlEscape(x_axis.label), x_axis.log ? " (log scale)" : "", "</text>\n");
  absl::StrAppend(&out, "<text transform=\"translate(16,", Num((y0 + y1) / 2),
                  ") rotate(-90)\" text-anchor=\"middle\" ", kFont, " font-size=\"12\">",
                  HtmlEscape(y_axis.label), "</text>\n");
  return out;
}

std::string Legend(const std::vector<Series>& series) {
  std::string out;
  const double lx = kWidth - kRight + 14;
  double ly = kTop + 6;
  for (const Series& s : series) {
    std::string name = s.name.size() > 26 ? s.name.substr(0, 25) + "\xE2\x80\xA6" : s.name;
    absl::StrAppend(&out, "<rect x=\"", Num(lx), "\" y=\"", Num(ly),
                    "\" width=\"14\" height=\"4\" fill=\"", s.color, "\"/>\n<text x=\"",
                    Num(lx + 20), "\" y=\"", Num(ly + 6), "\" ", kFont, " font-size=\"11\">",
                    HtmlEscape(name), "</text>\n");
    ly += 18;
  }
  return out;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double v, Unit unit) {
  if (!std::isfinite(v)) return "n/a";
  const double a = std::abs(v);
  switch (unit) {
    case Unit::kNumber:
      if (a >= 1e9) return Compact(v / 1e9) + "G";
      if (a >= 1e6) return Compact(v / 1e6) + "M";
      if (a >= 1e4) return Compact(v / 1e3) + "k";
      return Compact(v);
    case Unit::kDuration:
      if (a < 60) return Compact(v) + "s";
      if (a < 3600) return Compact(v / 60) + "m";
      if (a < 86400) return Compact(v / 3600) + "h";
      return Compact(v / 86400) + "d";
    case Unit::kPercent:
      return Compact(v * 100) + "%";
    case Unit::kUsd:
      if (a >= 1e6) return "$" + Compact(v / 1e6) + "M";
      if (a >= 1e4) return "$" + Compact(v / 1e3) + "k";
      if (a >= 100) return absl::StrFormat("$%.0f", v);
      return absl::StrFormat("$%.2f", v);
  }
  return Compact(v);
}

std::string SeriesColor(size_t index) {
  static constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                             "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  constexpr size_t kCount = sizeof(kPalette) / sizeof(kPalette[0]);
  if (index < kCount) return kPalette[index];
  const double hue = std::fmod(static_cast<double>(index) * 137.508, 360.0);
  return absl::StrFormat("hsl(%.0f,60%%,42%%)", hue);
}

std::vector<double> LinearTicks(double lo, double hi, int target_count) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, target_count - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double start = std::floor(lo / step + 1e-9);
  const double end = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double i = start; i <= end; ++i) {
    double t = i * step;
    if (std::abs(t) < step * 1e-9) t = 0;
    ticks.push_back(t);
  }
  return ticks;
}

std::string RenderLineChart(const LineChart& chart) {
  std::string out = SvgOpen(chart.title);
  // Data range over the points that the scales can show.
  auto usable = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!chart.x.log || x > 0) &&
           (!chart.y.log || y > 0);
  };
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  bool any = false;
  for (const Series& s : chart.series) {
    for (const auto& [x, y] : s.points) {
      if (!usable(x, y)) continue;
      any = true;
      xlo = std::min(xlo, x), xhi = std::max(xhi, x);
      ylo = std::min(ylo, y), yhi = std::max(yhi, y);
    }
  }
  if (!any) {
    xlo = chart.x.log ? 1 : 0, xhi = chart.x.log ? 10 : 1;
    ylo = chart.y.log ? 1 : 0, yhi = chart.y.log ? 10 : 1;
  }
  auto settle = [](const Axis& axis, double* lo, double* hi) {
    if (axis.fixed_range) {
      *lo = axis.min, *hi = axis.max;
      return;
    }
    if (!axis.log && axis.from_zero && *lo > 0) *lo = 0;
    if (*hi <= *lo) *hi = axis.log ? *lo * 10 : *lo + 1;
  };
  settle(chart.x, &xlo, &xhi);
  settle(chart.y, &ylo, &yhi);
  const std::vector<double> x_ticks = AxisTicks(chart.x, &xlo, &xhi);
  const std::vector<double> y_ticks = AxisTicks(chart.y, &ylo, &yhi);
  auto range = [](const Axis& axis, double lo, double hi) {
    return axis.log ? std::make_pair(std::log10(lo), std::log10(hi)) : std::make_pair(lo, hi);
  };
  Scale x{range(chart.x, xlo, xhi).first, range(chart.x, xlo, xhi).second, kLeft, kWidth - kRight,
          chart.x.log};
  Scale y{range(chart.y, ylo, yhi).first, range(chart.y, ylo, yhi).second, kHeight - kBottom, kTop,
          chart.y.log};
  absl::StrAppend(&out, Axes(chart.x, x, x_ticks, chart.y, y, y_ticks));
  if (!any) {
    absl::StrAppend(&out, "<text x=\"", Num((kLeft + kWidth - kRight) / 2), "\" y=\"",
                    Num((kTop + kHeight - kBottom) / 2), "\" text-anchor=\"middle\" ", kFont,
                    " font-size=\"13\" fill=\"#888888\">no data</text>\n");
  }
  if (chart.diagonal) {
    const double lo = std::max(xlo, ylo), hi = std::min(xhi, yhi);
    if (hi > lo) {
      absl::StrAppend(&out, "<line x1=\"", Num(x(lo)), "\" y1=\"", Num(y(lo)), "\" x2=\"",
                      Num(x(hi)), "\" y2=\"", Num(y(hi)),
                      "\" stroke=\"#999999\" stroke-dasharray=\"4 4\"/>\n");
    }
  }
  auto clamp_px = [](double v, double a, double b) {
    return std::clamp(v, std::min(a, b), std::max(a, b));
  };
  for (const Series& s : chart.series) {
    std::string points;
    double prev_py = 0;
    bool first = true;
    for (const auto& [dx, dy] : s.points) {
      if (!usable(dx, dy)) continue;
      const double px = clamp_px(x(dx), x.p0, x.p1);
      const double py = clamp_px(y(dy), y.p0, y.p1);
      if (chart.step && !first) absl::StrAppend(&points, Num(px), ",", Num(prev_py), " ");
      absl::StrAppend(&points, Num(px), ",", Num(py), " ");
      prev_py = py;
      first = false;
    }
    if (points.empty()) continue;
    points.pop_back();
    absl::StrAppend(&out, "<polyline fill=\"none\" stroke=\"", s.color,
                    "\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"", points,
                    "\"><title>", HtmlEscape(s.name), "</title></polyline>\n");
  }
  absl::StrAppend(&out, Legend(chart.series), "</svg>\n");
  return out;
}

std::string RenderBarChart(const std::string& title, const std::string& y_label, Unit unit,
                           const std::vector<Bar>& bars) {
  std::string out = SvgOpen(title);
  double hi = 0;
  for (const Bar& b : bars) {
    if (std::isfinite(b.value)) hi = std::max(hi, b.value);
  }
  Axis y_axis;
  y_axis.label = y_label;
  y_axis.unit = unit;
  double lo = 0;
  if (hi <= 0) hi = 1;
  const std::vector<double> ticks = AxisTicks(y_axis, &lo, &hi);
  Scale y{lo, hi, kHeight - kBottom, kTop, false};
  const double x0 = kLeft, x1 = kWidth - kRight, y0 = kHeight - kBottom;
  for (double t : ticks) {
    absl::StrAppend(&out, "<line x1=\"", Num(x0), "\" y1=\"", Num(y(t)), "\" x2=\"", Num(x1),
                    "\" y2=\"", Num(y(t)), "\" stroke=\"#e5e5e5\"/>\n<text x=\"", Num(x0 - 6),
                    "\" y=\"", Num(y(t) + 4), "\" text-anchor=\"end\" ", kFont,
                    " font-size=\"11\">", HtmlEscape(FormatValue(t, unit)), "</text>\n");
  }
  const double slot = (x1 - x0) / static_cast<double>(std::max<size_t>(1, bars.size()));
  const double width = std::min(80.0, slot * 0.6);
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const double cx = x0 + slot * (static_cast<double>(i) + 0.5);
    const double v = std::isfinite(b.value) ? std::max(0.0, b.value) : 0;
    const double top = y(v);
    std::string label = b.label.size() > 18 ? b.label.substr(0, 17) + "\xE2\x80\xA6" : b.label;
    absl::StrAppend(&out, "<rect x=\"", Num(cx - width / 2), "\" y=\"", Num(top), "\" width=\"",
                    Num(width), "\" height=\"", Num(y0 - top), "\" fill=\"", b.color, "\"><title>",
                    HtmlEscape(b.label), "</title></rect>\n");
    absl::StrAppend(&out, "<text x=\"", Num(cx), "\" y=\"", Num(top - 4),
                    "\" text-anchor=\"middle\" ", kFont, " font-size=\"11\">",
                    HtmlEscape(FormatValue(b.value, unit)), "</text>\n");
    absl::StrAppend(&out, "<text x=\"", Num(cx), "\" y=\"", Num(y0 + 16),
                    "\" text-anchor=\"middle\" ", kFont, " font-size=\"11\">", HtmlEscape(label),
                    "</text>\n");
  }
  absl::StrAppend(&out, "<rect x=\"", Num(x0), "\" y=\"", Num(kTop), "\" width=\"", Num(x1 - x0),
                  "\" height=\"", Num(y0 - kTop), "\" fill=\"none\" stroke=\"#333333\"/>\n");
  absl::StrAppend(&out, "<text transform=\"translate(16,", Num((y0 + kTop) / 2),
                  ") rotate(-90)\" text-anchor=\"middle\" ", kFont, " font-size=\"12\">",
                  HtmlEscape(y_label), "</text>\n");
  std::vector<Series> legend;
  for (const Bar& b : bars) legend.push_back({b.label, b.color, {}});
  absl::StrAppend(&out, Legend(legend), "</svg>\n");
  return out;
}

}  // namespace meridian::sim::svg
