#include "eval/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "util/atomic_file.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

// Plot area margins: legend on the right, axis labels left and below.
constexpr double kLeft = 70, kRight = 170, kTop = 46, kBottom = 58;

const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                          "#E69F00", "#56B4E9", "#000000", "#F0E442"};
const char* kMarkers[] = {"circle", "square", "triangle", "diamond", "cross", "plus", "down"};

std::string num(double v) { return fmt::format("{:.2f}", v); }

// Tick label with just enough decimals for the step.
std::string tick_label(double v, double step) {
  const int dec = step >= 1 ? 0 : std::min(6, (int)std::ceil(-std::log10(step) - 1e-9));
  if (std::fabs(v) < step * 1e-9) v = 0;
  return fmt::format("{:.{}f}", v, dec);
}

std::string marker_svg(const std::string& shape, double x, double y, const std::string& c) {
  const double r = 4.5;
  if (shape == "circle")
    return fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>", num(x), num(y), r, c);
  if (shape == "square")
    return fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
                       num(x - r), num(y - r), 2 * r, 2 * r, c);
  if (shape == "triangle" || shape == "down" || shape == "diamond") {
    std::string pts;
    if (shape == "triangle")
      pts = fmt::format("{},{} {},{} {},{}", num(x), num(y - r - 1), num(x - r - 1), num(y + r),
                        num(x + r + 1), num(y + r));
    else if (shape == "down")
      pts = fmt::format("{},{} {},{} {},{}", num(x), num(y + r + 1), num(x - r - 1), num(y - r),
                        num(x + r + 1), num(y - r));
    else
      pts = fmt::format("{},{} {},{} {},{} {},{}", num(x), num(y - r - 1), num(x + r + 1), num(y),
                        num(x), num(y + r + 1), num(x - r - 1), num(y));
    return fmt::format("<polygon points=\"{}\" fill=\"{}\"/>", pts, c);
  }
  // cross / plus: two strokes
  const bool diag = shape == "cross";
  const double a = diag ? r : 0, b = r;
  return fmt::format(
      "<path d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"{}\" stroke-width=\"2.5\" fill=\"none\"/>",
      num(x - b), num(y - a), num(x + b), num(y + a), num(x - a), num(y + b), num(x + a),
      num(y - b), c);
}

struct Frame {
  double w, h;
  double px0() const { return kLeft; }
  double px1() const { return w - kRight; }
  double py0() const { return h - kBottom; }  // bottom (y min)
  double py1() const { return kTop; }         // top (y max)
};

void header(std::string& s, const Frame& f, const std::string& title) {
  s += fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      f.w, f.h);
  s += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" "
                   "font-weight=\"bold\">{}</text>\n",
                   num((f.px0() + f.px1()) / 2), xml_escape(title));
}

void y_axis(std::string& s, const Frame& f, const std::vector<double>& ticks, double lo,
            double hi, const std::string& label) {
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  for (double t : ticks) {
    const double y = f.py0() - (t - lo) / (hi - lo) * (f.py0() - f.py1());
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#dddddd\"/>\n",
                     num(f.px0()), num(y), num(f.px1()), num(y));
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", num(f.px0() - 6),
                     num(y + 4), tick_label(t, step));
  }
  const double cy = (f.py0() + f.py1()) / 2;
  s += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
                   "{0})\">{1}</text>\n", num(cy), xml_escape(label));
}

void axes_box(std::string& s, const Frame& f) {
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                   "stroke=\"#333333\"/>\n", num(f.px0()), num(f.py1()), num(f.px1() - f.px0()),
                   num(f.py0() - f.py1()));
}

void legend(std::string& s, const Frame& f, const std::vector<PlotSeries>& series, bool bars) {
  double y = f.py1() + 10;
  const double x = f.px1() + 14;
  for (size_t i = 0; i < series.size(); ++i, y += 20) {
    const std::string c = series_colour(i);
    if (bars) {
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{}\"/>\n",
                       num(x), num(y - 5), c);
    } else {
      s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" "
                       "stroke-width=\"2\"/>\n", num(x - 2), num(y), num(x + 18), num(y), c);
      s += marker_svg(series_marker(i), x + 8, y, c) + "\n";
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", num(x + 24), num(y + 4),
                     xml_escape(series[i].name));
  }
}

// Auto range over finite values, widened to ticks; a flat range gets some room.
void auto_range(std::vector<double> vals, std::optional<double> fix_lo,
                std::optional<double> fix_hi, double& lo, double& hi) {
  vals.erase(std::remove_if(vals.begin(), vals.end(), [](double v) { return !std::isfinite(v); }),
             vals.end());
  lo = vals.empty() ? 0 : *std::min_element(vals.begin(), vals.end());
  hi = vals.empty() ? 1 : *std::max_element(vals.begin(), vals.end());
  if (hi - lo < 1e-12) {
    const double pad = std::max(std::fabs(lo) * 0.1, 1e-3);
    lo -= pad, hi += pad;
  }
  if (!fix_lo || !fix_hi) {
    const std::vector<double> t = nice_ticks(lo, hi);
    const double step = t.size() > 1 ? t[1] - t[0] : 1;
    lo = std::floor(lo / step + 1e-9) * step;
    hi = std::ceil(hi / step - 1e-9) * step;
  }
  if (fix_lo) lo = *fix_lo;
  if (fix_hi) hi = *fix_hi;
  if (hi <= lo) hi = lo + 1;
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * 0.999) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

std::string series_colour(size_t i) { return kColours[i % std::size(kColours)]; }
std::string series_marker(size_t i) { return kMarkers[i % std::size(kMarkers)]; }

std::string svg_line_plot(const LinePlot& p) {
  const Frame f{(double)p.width, (double)p.height};
  std::vector<double> xs, ys;
  for (const auto& s : p.series) {
    if (s.x.size() != s.y.size()) fail("plot series '{}': {} x values but {} y values", s.name,
                                       s.x.size(), s.y.size());
    for (double x : s.x) {
      if (p.log2_x && !(x > 0)) fail("plot series '{}': x = {} on a log2 axis", s.name, x);
      xs.push_back(p.log2_x ? std::log2(x) : x);
    }
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  double ylo, yhi, xlo, xhi;
  auto_range(ys, p.y_min, p.y_max, ylo, yhi);
  // x: exact data range (log2: whole powers of two around it), a little padding.
  xlo = xs.empty() ? 0 : *std::min_element(xs.begin(), xs.end());
  xhi = xs.empty() ? 1 : *std::max_element(xs.begin(), xs.end());
  std::vector<double> xticks;
  if (p.log2_x) {
    xlo = std::floor(xlo), xhi = std::ceil(xhi);
    if (xhi <= xlo) xhi = xlo + 1;
    for (double e = xlo; e <= xhi; e += 1) xticks.push_back(e);
  } else {
    if (xhi - xlo < 1e-12) xlo -= 1, xhi += 1;
    xticks = nice_ticks(xlo, xhi);
  }
  const double xpad = (xhi - xlo) * 0.04;
  const double x0 = xlo - xpad, x1 = xhi + xpad;
  auto X = [&](double x) {
    const double v = p.log2_x ? std::log2(x) : x;
    return f.px0() + (v - x0) / (x1 - x0) * (f.px1() - f.px0());
  };
  auto Y = [&](double y) { return f.py0() - (y - ylo) / (yhi - ylo) * (f.py0() - f.py1()); };

  std::string s;
  header(s, f, p.title);
  y_axis(s, f, nice_ticks(ylo, yhi), ylo, yhi, p.y_label);
  const double xstep = xticks.size() > 1 ? xticks[1] - xticks[0] : 1;
  for (double t : xticks) {
    const double px = f.px0() + (t - x0) / (x1 - x0) * (f.px1() - f.px0());
    s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#eeeeee\"/>\n",
                     num(px), num(f.py0()), num(f.py1()));
    const std::string label = p.log2_x ? fmt::format("{:g}", std::exp2(t)) : tick_label(t, xstep);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(px),
                     num(f.py0() + 18), label);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                   num((f.px0() + f.px1()) / 2), num(f.h - 14), xml_escape(p.x_label));
  axes_box(s, f);
  // Series: clipped to the plot area so a fixed y range cannot spill over the legend.
  s += fmt::format("<clipPath id=\"plot-area\"><rect x=\"{}\" y=\"{}\" width=\"{}\" "
                   "height=\"{}\"/></clipPath>\n", num(f.px0() - 6), num(f.py1() - 6),
                   num(f.px1() - f.px0() + 12), num(f.py0() - f.py1() + 12));
  s += "<g clip-path=\"url(#plot-area)\">\n";
  for (size_t i = 0; i < p.series.size(); ++i) {
    const PlotSeries& ser = p.series[i];
    const std::string c = series_colour(i);
    std::string d;
    bool pen = false;
    for (size_t k = 0; k < ser.x.size(); ++k) {
      if (!std::isfinite(ser.y[k])) {
        pen = false;
        continue;
      }
      d += fmt::format("{}{} {} ", pen ? "L" : "M", num(X(ser.x[k])), num(Y(ser.y[k])));
      pen = true;
    }
    s += fmt::format("<g><title>{}</title>\n", xml_escape(ser.name));
    if (!d.empty())
      s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", d, c);
    for (size_t k = 0; k < ser.x.size(); ++k)
      if (std::isfinite(ser.y[k])) s += marker_svg(series_marker(i), X(ser.x[k]), Y(ser.y[k]), c) + "\n";
    s += "</g>\n";
  }
  s += "</g>\n";
  legend(s, f, p.series, false);
  s += "</svg>\n";
  return s;
}

std::string svg_bar_chart(const BarChart& b) {
  const Frame f{(double)b.width, (double)b.height};
  std::vector<double> ys = {0};
  for (const auto& s : b.series) {
    if (s.y.size() != b.categories.size())
      fail("bar series '{}': {} values for {} categories", s.name, s.y.size(), b.categories.size());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  double lo, hi;
  auto_range(ys, std::nullopt, b.y_max, lo, hi);
  auto Y = [&](double y) { return f.py0() - (y - lo) / (hi - lo) * (f.py0() - f.py1()); };
  std::string s;
  header(s, f, b.title);
  y_axis(s, f, nice_ticks(lo, hi), lo, hi, b.y_label);
  const size_t nc = std::max<size_t>(1, b.categories.size()), ns = std::max<size_t>(1, b.series.size());
  const double group = (f.px1() - f.px0()) / (double)nc;
  const double bar = group * 0.8 / (double)ns;
  for (size_t c = 0; c < b.categories.size(); ++c) {
    const double gx = f.px0() + group * (double)c;
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     num(gx + group / 2), num(f.py0() + 18), xml_escape(b.categories[c]));
    for (size_t i = 0; i < b.series.size(); ++i) {
      const double v = b.series[i].y[c];
      if (!std::isfinite(v)) continue;
      const double y0 = Y(std::max(0.0, std::min(v, hi))), y1 = Y(std::max(lo, std::min(0.0, v)));
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">"
                       "<title>{}: {}</title></rect>\n",
                       num(gx + group * 0.1 + bar * (double)i), num(y0), num(bar * 0.95),
                       num(std::max(0.0, y1 - y0)), series_colour(i),
                       xml_escape(b.series[i].name), fmt::format("{:g}", v));
    }
  }
  axes_box(s, f);
  legend(s, f, b.series, true);
  s += "</svg>\n";
  return s;
}

void write_text_file(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace glimpse::eval
