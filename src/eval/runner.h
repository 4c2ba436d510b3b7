// Runs one evaluation sample under every (policy, budget): the prompt is prefilled ONCE
// with every policy's observer attached, the full-cache greedy answer is generated once
// (its attention over the prompt gives the oracle's scores, its logits the fidelity
// reference), then each branch copies the prompt cache and evicts, all branches answer
// greedily together (one batched decode, greedy_contexts), and each is teacher-forced along
// the reference answer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
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
  // Each branch answers alone, its decode speed measured (decode_tps); otherwise all answer
  // in one batched decode and decode_tps is null. The rows are otherwise identical, so this
  // is not part of the settings fingerprint.
  bool serial_decode = false;
};

// What a cached result means beyond its settings: bump it whenever the rows change meaning
// or fields (a new metric), a policy's defaults resolve differently, or the engine evicts
// differently (budget semantics, scoring, protection). Part of every result-cache key
// through settings_fingerprint, so older results are recomputed instead of reused.
//   1: keys without a settings fingerprint (before it existed)
//   2: the fingerprint; evidence recall in every row
inline constexpr int kEvalSemanticsVersion = 2;

// The settings shared by every branch, as a canonical "name=value ..." string: cfg.base
// without the per-branch name, budget, ratio and module path (the module file has its own
// fingerprint in the lookahead key), plus query-agnostic mode. Unset knobs (-1, nullopt)
// read "default": what a policy's default is belongs to kEvalSemanticsVersion.
std::string settings_description(const EvalSettings& cfg);
// "v<kEvalSemanticsVersion>-<16 hex digits of FNV-1a of settings_description>".
std::string settings_fingerprint(const EvalSettings& cfg);

// One (policy, budget) outcome; budget 0 with policy "none" is the full cache.
struct BranchResult {
  std::string policy;
  int64_t budget = 0;
  nlohmann::json row;  // the predictions.jsonl record (see runner.cpp for the fields)
};

// Branches that compress the prompt before the target reads it (SpecPC, runtime/specpc.h;
// they need cfg.base.pc_draft). Each runs its own draft and its own prefill of the kept
// tokens on an empty context (the shared prefill does not apply):
//   "specpc"    at budget B: the target prefills B prompt tokens, so every KV head holds the
//               B entries a KV budget of B allows;
//   "speckv_pc" at budget B: SpecPC keeps max(4B, cfg.base.pc_budget) tokens, then SpecKV
//               (the same file as its draft, its answer from the draft's one run) evicts the
//               compressed prompt to B entries per head: SpecKV-PC.
// SpecPC's always-kept last tokens (--pc-window, 64) are at most half the tokens it keeps.
// Query-agnostic: only the context is compressed (the draft never reads the question); the
// question follows uncompressed. Rows add pc_tokens (tokens prefilled) and pc_prefill_ms.
bool is_prompt_compression(std::string_view policy);

// done(policy, budget) says which branches are already cached; they are skipped (the
// sample is not even prefilled when all are).
// ctx: an empty context (it holds the prompt while the sample runs, and is reset after).
std::vector<BranchResult> run_sample(Context& ctx, const Sample& sample, const EvalSettings& cfg,
                                     const std::function<bool(const std::string&, int64_t)>& done);

// Bag-of-words F1 between two texts (open-ended tasks are scored against the full-cache
// answer with it).
double token_f1(std::string_view prediction, std::string_view reference);

}  // namespace glimpse::eval
