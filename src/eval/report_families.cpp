#include "eval/report_families.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "eval/metrics.h"
#include "eval/tables.h"
#include "eval/tasks.h"
#include "util/error.h"

namespace glimpse::eval {

std::string family_of(const std::string& task) {
  for (const TaskInfo& t : all_tasks())
    if (t.name == task) return t.family;
  return task;
}

namespace {

// Scores differing by less than this count as a tie (one prompt in 200 is 0.005).
constexpr double kTie = 0.005;

// Mean task score per (family, policy, budget); the full cache is policy "none", budget 0.
struct FamilyScores {
  std::map<std::tuple<std::string, std::string, int64_t>, MeanStat> score;
  std::set<std::string> families, policies;  // policies: without "none" and the oracle
  std::set<int64_t> budgets;
  bool has_oracle = false;

  double at(const std::string& fam, const std::string& pol, int64_t b) const {
    auto it = score.find({fam, pol, b});
    return it == score.end() || !it->second.n ? std::nan("") : it->second.mean();
  }
  bool above_floor(const std::string& fam) const { return at(fam, "none", 0) >= kFloorScore; }
};

FamilyScores collect(const std::vector<nlohmann::json>& rows) {
  FamilyScores fs;
  for (const auto& r : rows) {
    const std::string fam = family_of(r.value("task", "")), pol = r.value("policy", "");
    const int64_t b = r.value("budget", (int64_t)0);
    fs.score[{fam, pol, b}].add(r.value("score", 0.0));
    fs.families.insert(fam);
    if (pol == "oracle") fs.has_oracle = true;
    if (pol != "none" && pol != "oracle") fs.policies.insert(pol);
    if (pol != "none") fs.budgets.insert(b);
  }
  return fs;
}

std::string cell(double x) { return std::isnan(x) ? "" : fmt::format("{:.3f}", x); }

std::string full_cache_table(const FamilyScores& fs) {
  std::vector<std::vector<std::string>> t;
  for (const auto& fam : fs.families) {
    auto it = fs.score.find({fam, "none", 0});
    const int64_t n = it == fs.score.end() ? 0 : it->second.n;
    t.push_back({fam, std::to_string(n), cell(fs.at(fam, "none", 0)),
                 fs.above_floor(fam) ? "yes" : "no (the model fails with the full cache)"});
  }
  return fmt::format("## Full cache per family\n\nAbove the floor: full-cache score >= {:.2f}. "
                     "Open-ended families are scored against the full cache's own answer, so "
                     "their full-cache score is 1 by construction.\n\n",
                     kFloorScore) +
         markdown_table({"family", "prompts", "full-cache score", "above the floor"}, t) + "\n";
}

// One table per budget: families x policies, the best non-oracle score of a row in bold.
std::string budget_table(const FamilyScores& fs, int64_t b) {
  std::vector<std::string> h = {"family", "full"};
  for (const auto& p : fs.policies) h.push_back(p);
  if (fs.has_oracle) h.push_back("oracle");
  std::vector<std::vector<std::string>> t;
  auto row_for = [&](const std::string& label, auto value) {
    std::vector<std::string> row = {label, cell(value("none", 0))};
    double best = -1;
    for (const auto& p : fs.policies)
      if (!std::isnan(value(p, b))) best = std::max(best, value(p, b));
    for (const auto& p : fs.policies) {
      const double x = value(p, b);
      row.push_back(!std::isnan(x) && best >= 0 && x >= best - 1e-12 ? "**" + cell(x) + "**" : cell(x));
    }
    if (fs.has_oracle) row.push_back(cell(value("oracle", b)));
    t.push_back(row);
  };
  std::vector<std::string> above;
  for (const auto& fam : fs.families) {
    row_for(fs.above_floor(fam) ? fam : fam + " (floor)",
            [&](const std::string& p, int64_t bb) { return fs.at(fam, p, bb); });
    if (fs.above_floor(fam)) above.push_back(fam);
  }
  if (!above.empty())
    row_for("mean above the floor", [&](const std::string& p, int64_t bb) {
      MeanStat m;
      for (const auto& fam : above)
        if (!std::isnan(fs.at(fam, p, bb))) m.add(fs.at(fam, p, bb));
      return m.n == (int64_t)above.size() ? m.mean() : std::nan("");
    });
  return fmt::format("### Score per family at budget {}\n\n", b) + markdown_table(h, t) + "\n";
}

// focus against each other policy: per budget, the mean difference over the families above
// the floor and families won / tied / lost.
std::string versus_table(const FamilyScores& fs, const std::string& focus) {
  std::vector<std::string> h = {focus + " against"};
  for (int64_t b : fs.budgets) h.push_back(std::to_string(b));
  std::vector<std::vector<std::string>> t;
  std::vector<std::string> others(fs.policies.begin(), fs.policies.end());
  if (fs.has_oracle) others.push_back("oracle");
  for (const auto& other : others) {
    if (other == focus) continue;
    std::vector<std::string> row = {other};
    for (int64_t b : fs.budgets) {
      MeanStat diff;
      int win = 0, tie = 0, loss = 0;
      for (const auto& fam : fs.families) {
        const double x = fs.at(fam, focus, b), y = fs.at(fam, other, b);
        if (!fs.above_floor(fam) || std::isnan(x) || std::isnan(y)) continue;
        diff.add(x - y);
        (x > y + kTie ? win : x < y - kTie ? loss : tie)++;
      }
      row.push_back(diff.n ? fmt::format("{:+.3f} ({}W {}T {}L)", diff.mean(), win, tie, loss) : "");
    }
    t.push_back(row);
  }
  return fmt::format("## {} against each policy\n\nPer budget: mean score difference over the "
                     "families above the floor ({} minus the other), then families won / tied "
                     "/ lost (a tie: within {:.3f}).\n\n",
                     focus, focus, kTie) +
         markdown_table(h, t) + "\n";
}

}  // namespace

std::string family_tables(const std::vector<nlohmann::json>& rows, const std::string& focus) {
  const FamilyScores fs = collect(rows);
  if (fs.families.empty()) return "";
  std::string md = full_cache_table(fs);
  md += "## Score per family and budget\n\nMean task score over each family's tasks, lengths "
        "and seeds; bold: the best policy other than the oracle (which reads the full cache's "
        "answer); \"(floor)\": a family below the floor.\n\n";
  for (int64_t b : fs.budgets) md += budget_table(fs, b);
  if (fs.policies.count(focus)) md += versus_table(fs, focus);
  return md;
}

}  // namespace glimpse::eval
