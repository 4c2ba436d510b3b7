// The progress bar's line, its two display modes, and the duration formats.
#include "util/progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace glimpse {
namespace {

std::string slurp(std::FILE* f) {
  std::rewind(f);
  std::string out;
  for (int c; (c = std::fgetc(f)) != EOF;) out += (char)c;
  std::fclose(f);
  return out;
}

TEST(Progress, BarAndDurations) {
  EXPECT_EQ(progress_bar(0.25), "[######..................]");
  EXPECT_EQ(progress_bar(0.99, 4), "[###.]");
  EXPECT_EQ(progress_bar(-1, 3), "[...]");
  EXPECT_EQ(progress_bar(2, 3), "[###]");
  EXPECT_EQ(format_clock(0), "0:00");
  EXPECT_EQ(format_clock(65.4), "1:05");
  EXPECT_EQ(format_clock(3725), "1:02:05");
  EXPECT_EQ(format_clock(-1), "--:--");
  EXPECT_EQ(format_compact_duration(42.4), "42s");
  EXPECT_EQ(format_compact_duration(185), "3m05s");
  EXPECT_EQ(format_compact_duration(3725), "1h02m");
  EXPECT_EQ(format_compact_duration(-1), "?");
}

TEST(Progress, RedrawLine) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  redraw_line(f, "step 3/10");
  EXPECT_EQ(slurp(f), "\rstep 3/10\x1b[K");
}

TEST(Progress, Render) {
  ProgressBar p(200, "eval", nullptr, 0);
  const std::string line = p.render(50, 10);
  EXPECT_EQ(line, "eval [######..................]  50/200   25.0%  elapsed 0:10  eta 0:30");
  EXPECT_NE(p.render(0, 1).find("eta --:--"), std::string::npos);
  p.set_status("vt 4096");
  EXPECT_NE(p.render(200, 9).find("100.0%  elapsed 0:09  eta 0:00  vt 4096"), std::string::npos);
}

TEST(Progress, LineModePrintsEveryFivePercent) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar p(1000, "eval", f, /*tty=*/0);
    for (int i = 0; i < 1000; ++i) p.add();
  }
  const std::string out = slurp(f);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 21);  // 0%, 5%, ..., 100%
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_NE(out.find("1000/1000"), std::string::npos);
}

TEST(Progress, TtyModeRedrawsInPlace) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar p(3, "eval", f, /*tty=*/1);
    p.add();
    p.add();
    p.add();
  }
  const std::string out = slurp(f);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);  // only the final newline
  EXPECT_GE(std::count(out.begin(), out.end(), '\r'), 2);
  EXPECT_NE(out.find("3/3"), std::string::npos);
}

}  // namespace
}  // namespace glimpse
