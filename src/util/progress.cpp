#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace glimpse {

std::string progress_bar(double frac, int width) {
  const int fill = (int)std::floor(std::clamp(frac, 0.0, 1.0) * width);
  return "[" + std::string(fill, '#') + std::string(width - fill, '.') + "]";
}

void redraw_line(std::FILE* out, const std::string& text) {
  std::fprintf(out, "\r%s\x1b[K", text.c_str());
  std::fflush(out);
}

std::string format_clock(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const int64_t t = (int64_t)std::llround(s);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02}", t / 60, t % 60);
}

std::string format_compact_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = (int64_t)std::llround(s);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (int)(t % 3600 / 60));
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, (int)(t % 60));
  return fmt::format("{}s", t);
}

ProgressBar::ProgressBar(int64_t total, std::string label, std::FILE* out, int tty)
    : total_(std::max<int64_t>(total, 0)),
      label_(std::move(label)),
      out_(out),
      tty_(tty < 0 ? (out && isatty(fileno(out))) : tty != 0),
      t0_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

std::string ProgressBar::render(int64_t done, double elapsed) const {
  const double frac = total_ > 0 ? std::clamp((double)done / (double)total_, 0.0, 1.0) : 1.0;
  const double eta = done > 0 ? elapsed / (double)done * (double)(total_ - done) : -1;
  const int w = (int)fmt::format("{}", total_).size();
  std::string s = fmt::format("{} {} {:>{}}/{}  {:5.1f}%  elapsed {}  eta {}", label_,
                              progress_bar(frac), done, w, total_, frac * 100,
                              format_clock(elapsed), done >= total_ ? "0:00" : format_clock(eta));
  if (!status_.empty()) s += "  " + status_;
  return s;
}

void ProgressBar::set(int64_t done) {
  done_ = std::clamp<int64_t>(done, 0, std::max(total_, done));
  draw(false);
}

void ProgressBar::draw(bool force) {
  if (!out_ || finished_) return;
  const double now = elapsed_s();
  if (tty_) {
    if (!force && last_draw_ >= 0 && now - last_draw_ < 0.1 && done_ < total_) return;
    last_draw_ = now;
    redraw_line(out_, render(done_, now));
    return;
  }
  const int step = total_ > 0 ? (int)std::min<int64_t>(20, done_ * 20 / total_) : 20;
  if (!force && step <= last_step_) return;
  if (force && step == last_step_) return;  // finish(): the last line was already this one
  last_step_ = step;
  std::fprintf(out_, "%s\n", render(done_, now).c_str());
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (finished_ || !out_) return;
  draw(true);
  if (tty_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  finished_ = true;
}

}  // namespace glimpse
