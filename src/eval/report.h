// Aggregates per-branch records (predictions.jsonl rows) into the metrics tables, the
// markdown summary and the plots of an evaluation run.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace glimpse::eval {

class RunDir;

// Writes metrics.json, metrics.csv (per task, length, policy, budget), summary.md and
// score_vs_budget.svg, recall_vs_budget.svg (recall of the training target),
// evidence_recall_vs_budget.svg, kl_vs_budget.svg, overhead.svg into the run directory;
// returns the markdown summary.
std::string write_report(RunDir& dir, const std::vector<nlohmann::json>& rows,
                         const nlohmann::json& config);

}  // namespace glimpse::eval
