// Dependency-free SVG charts for evaluation reports: line plots (accuracy vs KV budget, one
// series per policy) and grouped bar charts (overhead per policy). The output is a complete
// standalone SVG 1.1 document; text is XML-escaped. Colours follow the Okabe-Ito palette
// (distinguishable with colour-blindness); every series also gets its own marker shape.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::eval {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // same length; NaN y leaves a gap
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool log2_x = false;             // x axis in log2 with ticks at powers of two (32..512)
  std::optional<double> y_min, y_max;  // fixed range; auto (rounded to ticks) when unset
  int width = 720, height = 440;
};

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> categories;  // one group of bars each (e.g. policies)
  std::vector<PlotSeries> series;       // one bar per category each; only y is used
  std::optional<double> y_max;          // y starts at 0 (or the lowest negative value)
  int width = 720, height = 440;
};

std::string svg_line_plot(const LinePlot& plot);
std::string svg_bar_chart(const BarChart& chart);

// Writes text to a file; throws Error on failure.
void write_text_file(const std::string& path, const std::string& text);

// Helpers, exposed for tests.
std::string xml_escape(std::string_view s);
// Round tick positions covering [lo, hi] with about `target` steps of 1, 2 or 5 x 10^k.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// The colour and marker of series i ("#0072B2", "circle"/"square"/...); they cycle.
std::string series_colour(size_t i);
std::string series_marker(size_t i);

}  // namespace glimpse::eval
