#include "eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "eval/metrics.h"
#include "eval/report_families.h"
#include "eval/results.h"
#include "eval/svg_plot.h"
#include "eval/tables.h"

namespace glimpse::eval {

namespace {

// Means of every numeric field over a group of rows. Evidence recall is averaged over the
// rows that have it (null: the sample has no evidence), decode speed over the rows that
// measured it (null or missing: decoded in a batch with the sample's other branches).
struct Agg {
  MeanStat score, exact, prefix, kl, top1, recall, score_ms, evict_ms, prefill_ms, tps, kv, kv_full;
  MeanStat evidence, evidence_any;
  void add(const nlohmann::json& r) {
    if (r.contains("evidence_recall") && r["evidence_recall"].is_number()) {
      evidence.add(r["evidence_recall"].get<double>());
      evidence_any.add(r.value("evidence_recall_any_head", 0.0));
    }
    score.add(r.value("score", 0.0));
    exact.add(r.value("greedy_exact", false) ? 1.0 : 0.0);
    prefix.add(r.value("prefix_fraction", 0.0));
    kl.add(r.value("kl", 0.0));
    top1.add(r.value("top1", 0.0));
    recall.add(r.value("recall", 0.0));
    score_ms.add(r.value("score_ms", 0.0));
    evict_ms.add(r.value("evict_ms", 0.0));
    prefill_ms.add(r.value("prefill_ms", 0.0));
    if (r.contains("decode_tps") && r["decode_tps"].is_number()) tps.add(r["decode_tps"].get<double>());
    kv.add(r.value("kv_bytes", 0.0));
    kv_full.add(r.value("kv_bytes_full", 0.0));
  }
  double overhead_pct() const {
    return prefill_ms.mean() > 0 ? 100.0 * (score_ms.mean() + evict_ms.mean()) / prefill_ms.mean() : 0;
  }
};

std::string f(double x, int prec = 3) { return fmt::format("{:.{}f}", x, prec); }
// A mean that may have no samples: "n/a" then.
std::string f_na(const MeanStat& m, int prec = 3) { return m.n ? f(m.mean(), prec) : "n/a"; }
nlohmann::json j_na(const MeanStat& m) { return m.n ? nlohmann::json(m.mean()) : nlohmann::json(nullptr); }
double y_na(const MeanStat& m) { return m.n ? m.mean() : std::nan(""); }  // a gap in a plot
// --data cases have no target length (length 0): their prompts are as long as their text.
std::string length_label(int64_t len) { return len ? fmt::format("{}", len) : "as given"; }

// Rows aggregated per (task, length, policy, budget) and per (policy, budget).
struct Groups {
  using Key = std::tuple<std::string, int64_t, std::string, int64_t>;  // task, length, policy, budget
  std::map<Key, Agg> by_key;
  std::map<std::pair<std::string, int64_t>, Agg> by_policy_budget;  // over tasks and lengths
  std::map<std::pair<std::string, int64_t>, Agg> full_by_task_len;
  std::set<std::string> tasks, policies;
  std::set<int64_t> lengths, budgets;
};

Groups group_rows(const std::vector<nlohmann::json>& rows) {
  Groups g;
  for (const auto& r : rows) {
    const std::string task = r.value("task", ""), pol = r.value("policy", "");
    const int64_t len = r.value("length", (int64_t)0), b = r.value("budget", (int64_t)0);
    g.by_key[{task, len, pol, b}].add(r);
    g.by_policy_budget[{pol, b}].add(r);
    if (pol == "none") g.full_by_task_len[{task, len}].add(r);
    g.tasks.insert(task);
    g.lengths.insert(len);
    if (pol != "none") {
      g.policies.insert(pol);
      g.budgets.insert(b);
    }
  }
  return g;
}

// metrics.json / metrics.csv
void write_metrics(RunDir& dir, const Groups& g, const nlohmann::json& config) {
  nlohmann::json metrics = nlohmann::json::array();
  std::vector<std::vector<std::string>> csv;
  const std::vector<std::string> header = {"task", "length", "policy", "budget", "n", "score",
                                           "greedy_exact", "prefix_fraction", "kl", "top1",
                                           "recall", "evidence_recall", "evidence_recall_any_head",
                                           "score_ms", "evict_ms", "prefill_ms",
                                           "decode_tps", "kv_bytes", "kv_bytes_full"};
  for (const auto& [k, a] : g.by_key) {
    const auto& [task, len, pol, b] = k;
    metrics.push_back({{"task", task}, {"length", len}, {"policy", pol}, {"budget", b},
                       {"n", a.score.n}, {"score", a.score.mean()}, {"greedy_exact", a.exact.mean()},
                       {"prefix_fraction", a.prefix.mean()}, {"kl", a.kl.mean()},
                       {"top1", a.top1.mean()}, {"recall", a.recall.mean()},
                       {"evidence_recall", j_na(a.evidence)},
                       {"evidence_recall_any_head", j_na(a.evidence_any)},
                       {"n_evidence_samples", a.evidence.n},
                       {"score_ms", a.score_ms.mean()}, {"evict_ms", a.evict_ms.mean()},
                       {"prefill_ms", a.prefill_ms.mean()}, {"decode_tps", j_na(a.tps)},
                       {"kv_bytes", a.kv.mean()}, {"kv_bytes_full", a.kv_full.mean()}});
    csv.push_back({task, std::to_string(len), pol, std::to_string(b), std::to_string(a.score.n),
                   f(a.score.mean(), 4), f(a.exact.mean(), 4), f(a.prefix.mean(), 4),
                   f(a.kl.mean(), 5), f(a.top1.mean(), 4), f(a.recall.mean(), 4),
                   f_na(a.evidence, 4), f_na(a.evidence_any, 4),
                   f(a.score_ms.mean(), 2), f(a.evict_ms.mean(), 2), f(a.prefill_ms.mean(), 1),
                   f_na(a.tps, 2), f(a.kv.mean(), 0), f(a.kv_full.mean(), 0)});
  }
  dir.write_metrics({{"config", config}, {"groups", metrics}});
  dir.write_metrics_csv(header, csv);
}

// The summary's tables: full-cache score per task and length, then policies by budget.
std::string summary_tables(const Groups& g) {
  std::string md;
  std::vector<std::string> h = {"task"};
  for (int64_t len : g.lengths) h.push_back(length_label(len));
  std::vector<std::vector<std::string>> full;
  for (const auto& task : g.tasks) {
    std::vector<std::string> row = {task};
    for (int64_t len : g.lengths) {
      auto it = g.full_by_task_len.find({task, len});
      row.push_back(it == g.full_by_task_len.end() ? "" : f(it->second.score.mean(), 2));
    }
    full.push_back(row);
  }
  md += "## Full-cache score per task and length\n\n" + markdown_table(h, full) + "\n";

  std::vector<std::vector<std::string>> t;
  auto add_row = [&](const std::string& pol, int64_t b, const Agg& a) {
    t.push_back({pol, b ? std::to_string(b) : "full", f(a.score.mean()), f(a.exact.mean()),
                 f(a.prefix.mean()), f(a.kl.mean(), 4), f(a.top1.mean()), f(a.recall.mean()),
                 f_na(a.evidence), f_na(a.evidence_any),
                 f(a.score_ms.mean(), 1), f(a.evict_ms.mean(), 1), f(a.overhead_pct(), 2) + "%",
                 f(a.kv.mean() / 1048576.0, 2)});
  };
  if (g.by_policy_budget.count({"none", 0})) add_row("none", 0, g.by_policy_budget.at({"none", 0}));
  for (const auto& pol : g.policies)
    for (int64_t b : g.budgets)
      if (g.by_policy_budget.count({pol, b})) add_row(pol, b, g.by_policy_budget.at({pol, b}));
  md += "## Policies by budget (mean over tasks and lengths)\n\n";
  md += "score: task score (string match; open-ended tasks: word F1 against the full-cache "
        "answer). exact / prefix: greedy answer identical to / common prefix with the "
        "full-cache answer. KL, top-1: teacher-forced along the full-cache answer. target "
        "recall: recall of the training target, the share of the oracle's top-C entries per "
        "head that were kept (what LookaheadKV is trained to predict). evidence: share of the "
        "evidence tokens (the facts the answer needs) kept, mean over (layer, KV head); any "
        "head: share kept by at least one KV head of a layer, mean over layers; n/a where no sample has "
        "evidence, else the mean over those that do.\n\n";
  md += markdown_table({"policy", "budget", "score", "exact", "prefix", "KL", "top-1",
                        "target recall", "evidence", "evidence any head", "scoring ms",
                        "eviction ms", "overhead vs prefill", "KV MiB"},
                       t) + "\n";
  return md;
}

// score / target recall / evidence recall / KL over budgets and the overhead bar chart, as SVG files.
void write_plots(RunDir& dir, const Groups& g) {
  const auto& pb = g.by_policy_budget;
  auto line = [&](const std::string& title, const std::string& ylabel, auto get,
                  std::optional<double> ymin, std::optional<double> ymax) {
    LinePlot p;
    p.title = title;
    p.x_label = "KV budget (entries per layer and KV head)";
    p.y_label = ylabel;
    p.log2_x = true;
    p.y_min = ymin;
    p.y_max = ymax;
    for (const auto& pol : g.policies) {
      PlotSeries s{pol, {}, {}};
      for (int64_t b : g.budgets)
        if (pb.count({pol, b})) {
          s.x.push_back((double)b);
          s.y.push_back(get(pb.at({pol, b})));
        }
      p.series.push_back(s);
    }
    if (pb.count({"none", 0}) && !g.budgets.empty()) {
      const double y = get(pb.at({"none", 0}));
      p.series.push_back({"full cache", {(double)*g.budgets.begin(), (double)*g.budgets.rbegin()}, {y, y}});
    }
    return svg_line_plot(p);
  };
  dir.write_text("score_vs_budget.svg", line("Task score vs budget", "mean score",
                                             [](const Agg& a) { return a.score.mean(); }, 0.0, std::nullopt));
  dir.write_text("recall_vs_budget.svg",
                 line("Recall of the training target (the oracle's top-C entries) vs budget",
                      "recall of the training target", [](const Agg& a) { return a.recall.mean(); },
                      0.0, 1.0));
  dir.write_text("evidence_recall_vs_budget.svg",
                 line("Evidence recall (needle tokens kept, mean over layers and KV heads) vs budget",
                      "evidence recall", [](const Agg& a) { return y_na(a.evidence); }, 0.0, 1.0));
  dir.write_text("kl_vs_budget.svg", line("Teacher-forced KL to the full cache vs budget", "KL (nats)",
                                          [](const Agg& a) { return a.kl.mean(); }, 0.0, std::nullopt));
  BarChart c;
  c.title = "Scoring + eviction time as % of prefill";
  c.y_label = "% of prefill";
  PlotSeries s{"overhead", {}, {}};
  for (const auto& pol : g.policies) {
    MeanStat pct;
    for (int64_t b : g.budgets)
      if (pb.count({pol, b})) pct.add(pb.at({pol, b}).overhead_pct());
    c.categories.push_back(pol);
    s.y.push_back(pct.mean());
    s.x.push_back((double)s.x.size());
  }
  c.series.push_back(s);
  dir.write_text("overhead.svg", svg_bar_chart(c));
}

}  // namespace

std::string write_report(RunDir& dir, const std::vector<nlohmann::json>& rows,
                         const nlohmann::json& config) {
  const Groups g = group_rows(rows);
  write_metrics(dir, g, config);
  std::string md = "# Evaluation summary\n\n";
  md += fmt::format("Command: `{}`\n\n", config.value("command", std::string()));
  md += fmt::format("Model: {} · samples: {} · mode: {}\n\n", config.value("model", std::string()),
                    config.value("n_samples", 0),
                    config.value("query_agnostic", false) ? "query-agnostic" : "query-aware");
  md += summary_tables(g);
  md += family_tables(rows);
  write_plots(dir, g);
  md += "Plots: score_vs_budget.svg, recall_vs_budget.svg (recall of the training target), "
        "evidence_recall_vs_budget.svg, kl_vs_budget.svg, overhead.svg\n";
  dir.write_text("summary.md", md);
  return md;
}

}  // namespace glimpse::eval
