// Runs one evaluation sample under every (policy, budget): the prompt is prefilled ONCE
// with every policy's observer attached, the full-cache greedy answer is generated once
// (its attention over the prompt gives the oracle's scores, its logits the fidelity
// reference), then each branch copies the prompt cache, evicts, and answers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "kv/policy.h"

namespace glimpse {
class Context;
}

namespace glimpse::eval {

struct EvalSettings {
  std::vector<std::string> policies;  // "none" is always evaluated (the reference)
  std::vector<int64_t> budgets;
  KvPolicySettings base;              // knobs shared by every branch (window, pooling, ...)
  bool query_agnostic = false;
};

// One (policy, budget) outcome; budget 0 with policy "none" is the full cache.
struct BranchResult {
  std::string policy;
  int64_t budget = 0;
  nlohmann::json row;  // the predictions.jsonl record (see runner.cpp for the fields)
};

// done(policy, budget) says which branches are already cached; they are skipped (the
// sample is not even prefilled when all are).
// ctx: an empty context (it holds the prompt while the sample runs, and is reset after).
std::vector<BranchResult> run_sample(Context& ctx, const Sample& sample, const EvalSettings& cfg,
                                     const std::function<bool(const std::string&, int64_t)>& done);

// Bag-of-words F1 between two texts (open-ended tasks are scored against the full-cache
// answer with it).
double token_f1(std::string_view prediction, std::string_view reference);

}  // namespace glimpse::eval
