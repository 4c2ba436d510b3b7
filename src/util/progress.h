// Progress display for long runs, on stderr.
//
// ProgressBar (eval, prompt generation):
//   eval [#########...........]  412/1280  32.2%  elapsed 5:12  eta 10:57  niah_single_text 4096
// On a terminal the line is redrawn in place (at most 10 times a second); when stderr is a
// file or pipe (logs, CI) a full line is printed each time another 5% is done, so logs
// stay short.
//
// Callers with their own status line (lookahead training) build it from progress_bar() and
// format_compact_duration() and show it with redraw_line().
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace glimpse {

// "[######..................]": floor(frac * width) cells of '#', frac clamped to [0, 1].
std::string progress_bar(double frac, int width = 24);

// Replaces the terminal line under the cursor with text ("\r", text, then "\x1b[K" to clear
// what a longer previous line left) and flushes.
void redraw_line(std::FILE* out, const std::string& text);

// "m:ss", or "h:mm:ss" from an hour; "--:--" for negative or non-finite values.
std::string format_clock(double seconds);
// "42s", "3m05s", "1h02m"; "?" for negative or non-finite values.
std::string format_compact_duration(double seconds);

class ProgressBar {
 public:
  // tty: -1 = ask isatty() on `out`, 0 = line mode, 1 = redraw mode.
  ProgressBar(int64_t total, std::string label, std::FILE* out = stderr, int tty = -1);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(int64_t n = 1) { set(done_ + n); }
  void set(int64_t done);
  // Text shown after the numbers (the current task, say); shown at the next redraw.
  void set_status(std::string status) { status_ = std::move(status); }
  // Final draw and newline (also done by the destructor).
  void finish();

  // The line for a state, without control characters; exposed for tests.
  std::string render(int64_t done, double elapsed_s) const;

 private:
  void draw(bool force);
  double elapsed_s() const;

  int64_t total_, done_ = 0;
  std::string label_, status_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  int last_step_ = -1;     // line mode: last 5% step printed
  double last_draw_ = -1;  // tty mode: time of the last redraw
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace glimpse
