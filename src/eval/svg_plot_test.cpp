// SVG charts are well-formed (balanced tags) and carry their content; markdown and CSV
// tables quote what they must.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "eval/svg_plot.h"
#include "eval/tables.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

// Checks that every <tag> is closed in order (self-closing tags count as closed); skips
// <?...?> and <!...>. Returns "" or a description of the first problem.
std::string check_balanced(const std::string& s) {
  std::vector<std::string> stack;
  for (size_t i = s.find('<'); i != std::string::npos; i = s.find('<', i + 1)) {
    const size_t e = s.find('>', i);
    if (e == std::string::npos) return "unterminated tag";
    const std::string tag = s.substr(i + 1, e - i - 1);
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;
    if (tag.find('<') != std::string::npos) return "'<' inside a tag";
    const bool closing = tag[0] == '/', self = tag.back() == '/';
    std::string name = tag.substr(closing ? 1 : 0);
    name = name.substr(0, name.find_first_of(" /\n"));
    if (closing) {
      if (stack.empty() || stack.back() != name) return "unexpected </" + name + ">";
      stack.pop_back();
    } else if (!self) {
      stack.push_back(name);
    }
  }
  return stack.empty() ? "" : "unclosed <" + stack.back() + ">";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

LinePlot budget_plot() {
  LinePlot p;
  p.title = "NIAH accuracy vs budget";
  p.x_label = "KV budget (entries per head)";
  p.y_label = "accuracy";
  p.log2_x = true;
  const std::vector<double> x = {32, 64, 128, 256, 512};
  p.series.push_back({"full", x, {1, 1, 1, 1, 1}});
  p.series.push_back({"snapkv", x, {0.2, 0.4, 0.7, 0.9, 1}});
  p.series.push_back({"h2o & <lookahead>", x, {0.1, NAN, 0.5, 0.8, 0.95}});
  return p;
}

TEST(EvalSvg, LinePlotIsWellFormedWithSeriesAndLogTicks) {
  const std::string s = svg_line_plot(budget_plot());
  EXPECT_EQ(check_balanced(s), "");
  EXPECT_EQ(s.rfind("<?xml", 0), 0u);
  EXPECT_NE(s.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  for (const char* t : {"full", "snapkv", "h2o &amp; &lt;lookahead&gt;", "NIAH accuracy vs budget",
                        "KV budget (entries per head)", "accuracy"})
    EXPECT_NE(s.find(t), std::string::npos) << t;
  EXPECT_EQ(s.find("h2o & <"), std::string::npos);  // escaped
  for (const char* tick : {">32<", ">64<", ">128<", ">256<", ">512<"})
    EXPECT_NE(s.find(tick), std::string::npos) << tick;
  // Distinct colours and markers: one marker per finite point plus one per legend entry.
  EXPECT_NE(series_colour(0), series_colour(1));
  EXPECT_NE(series_marker(0), series_marker(1));
  EXPECT_EQ(count(s, "<circle"), 5u + 1u);   // series 0
  EXPECT_EQ(count(s, "<rect x=") - 3, 5u + 1u);  // series 1 squares (+ background, box, clip)
  // NaN leaves a gap: series 2's path restarts with a second "M".
  const size_t g = s.find("<title>h2o");
  const size_t path = s.find("<path d=\"", g);
  EXPECT_EQ(count(s.substr(path, s.find('"', path + 9) - path), "M"), 2u);
}

TEST(EvalSvg, FixedAndAutoYRange) {
  LinePlot p = budget_plot();
  p.y_min = 0;
  p.y_max = 1;
  const std::string fixed = svg_line_plot(p);
  EXPECT_EQ(check_balanced(fixed), "");
  EXPECT_NE(fixed.find(">0.0<"), std::string::npos);
  EXPECT_NE(fixed.find(">1.0<"), std::string::npos);
  LinePlot lin;
  lin.title = "flat";
  lin.series.push_back({"one", {1, 2, 3}, {5, 5, 5}});  // flat data still gets a range
  const std::string s = svg_line_plot(lin);
  EXPECT_EQ(check_balanced(s), "");
  EXPECT_EQ(s.find("nan"), std::string::npos);
  EXPECT_EQ(s.find("inf"), std::string::npos);
  LinePlot bad;
  bad.log2_x = true;
  bad.series.push_back({"zero", {0, 1}, {1, 2}});
  EXPECT_THROW(svg_line_plot(bad), Error);
  bad.series[0] = {"mismatch", {1, 2}, {1}};
  EXPECT_THROW(svg_line_plot(bad), Error);
}

TEST(EvalSvg, NiceTicks) {
  const auto t = nice_ticks(0, 1);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_NEAR(t[1], 0.2, 1e-12);
  const auto u = nice_ticks(3, 97);
  EXPECT_EQ(u.front(), 20);
  EXPECT_EQ(u.back(), 80);
  EXPECT_EQ(nice_ticks(-10, 10).size(), 5u);  // -10 -5 0 5 10
}

TEST(EvalSvg, BarChartIsWellFormed) {
  BarChart b;
  b.title = "Overhead per policy";
  b.y_label = "ms per token";
  b.categories = {"full", "snapkv", "pyramid\"kv\""};
  b.series.push_back({"prefill", {}, {0.0, 1.5, 2.0}});
  b.series.push_back({"decode", {}, {0.0, 0.2, -0.1}});
  const std::string s = svg_bar_chart(b);
  EXPECT_EQ(check_balanced(s), "");
  for (const char* t : {"prefill", "decode", "snapkv", "pyramid&quot;kv&quot;", "ms per token"})
    EXPECT_NE(s.find(t), std::string::npos) << t;
  EXPECT_EQ(count(s, "<title>"), 6u);  // one per bar
  b.series[0].y.pop_back();
  EXPECT_THROW(svg_bar_chart(b), Error);
}

TEST(EvalTables, MarkdownTable) {
  const std::string t = markdown_table({"policy", "acc"}, {{"full", "1.00"}, {"a|b", "0.5"}, {"short"}},
                                       {Align::kLeft, Align::kRight});
  EXPECT_EQ(t,
            "| policy |  acc |\n"
            "| ------ | ---: |\n"
            "| full   | 1.00 |\n"
            "| a\\|b   |  0.5 |\n"
            "| short  |      |\n");
}

TEST(EvalTables, CsvQuotingRoundTrips) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field(" pad"), "\" pad\"");
  EXPECT_EQ(csv_line({"a", "", "c,d"}), "a,,\"c,d\"\n");
  const std::vector<std::vector<std::string>> rows = {
      {"task", "answer"}, {"niah", "1234, 5678"}, {"q\"uote", "multi\nline"}, {"", "x"}};
  std::string text;
  for (const auto& r : rows) text += csv_line(r);
  EXPECT_EQ(parse_csv(text), rows);
}

}  // namespace
}  // namespace glimpse::eval
