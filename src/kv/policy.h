// KV eviction policies. A policy only produces scores [layer][kv_head][prompt entry] (and
// may watch the prompt's forward pass to do so); the budget allocator, protection of sinks
// and the recent window, top-k selection and compaction are shared (kv/evict.h).
// One file per policy: policy_<name>.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kv/budget.h"
#include "kv/kv_scores.h"
#include "model/model.h"

namespace glimpse {

class ThreadPool;

// What the user asked for (-1 / nullopt: the policy's default).
struct KvPolicySettings {
  std::string name = "none";
  int64_t budget = -1;  // C: entries kept per (layer, KV head), window and sinks included
  double ratio = -1;    // fraction of the prompt removed (kvpress meaning), if no budget
  int64_t window = -1;  // protected recent entries (and observation window where scored)
  int64_t sinks = -1;   // protected first entries
  int pool_kernel = -1;
  std::optional<PoolKind> pool;
  GroupReduce reduce = GroupReduce::Mean;
  bool query_agnostic = false;
  double ada_alpha = 0.2;
  double pyramid_beta = 20.0;
  uint64_t seed = 0;
  int oracle_max_new = 128;  // length limit of the oracle's own answer
  int laq_pseudo = 8;        // LAQ pseudo tokens
  std::string lookahead_module;  // LookaheadKV module file (empty: next to the model)
};

struct PolicyDefaults {
  int64_t window = 0;
  int64_t sinks = 0;
  int pool_kernel = 0;
  PoolKind pool = PoolKind::None;
  BudgetAllocation allocation = BudgetAllocation::Uniform;
  bool window_fills_budget = false;  // StreamingLLM: window = C - sinks
};

// Settings with every default filled in for one prompt.
struct ResolvedPolicy {
  KvPolicySettings s;
  int64_t n_prompt = 0;  // entries being compressed
  int64_t budget = 0;    // C, clamped to n_prompt
  int64_t window = 0, sinks = 0;
  int pool_kernel = 0;
  PoolKind pool = PoolKind::None;
  BudgetAllocation allocation = BudgetAllocation::Uniform;
  bool evicts() const { return budget < n_prompt; }
  int64_t scored() const { return budget - window - sinks; }  // entries chosen by score
};

// What a policy may use after the prompt was prefilled.
struct PolicyInput {
  const Model& model;
  KvCache& cache;  // every head holds the prompt region in its first n_prompt entries
  ThreadPool& pool;
  const ResolvedPolicy& cfg;
  const std::vector<int32_t>& prompt;      // tokens in the cache, in order
  const std::vector<int32_t>& suffix;      // question still to prefill (query-agnostic), or empty
  const std::vector<float>& last_logits;   // full-cache logits after the prompt
  std::function<bool(int32_t)> is_eog;
};

class KvPolicy {
 public:
  virtual ~KvPolicy() = default;
  virtual const char* name() const = 0;
  virtual PolicyDefaults defaults() const = 0;
  // Before prefill: an observer for the prompt's forward pass (null if none is needed).
  virtual ForwardObserver* observer(const ModelConfig&, const ResolvedPolicy&) { return nullptr; }
  // After prefill: scores of the prompt region.
  virtual KvScores score(PolicyInput& in) = 0;
  // Time spent scoring inside the observer (added to the score pass's own time).
  virtual double observer_ms() const { return 0; }
};

std::unique_ptr<KvPolicy> make_kv_policy(const std::string& name);
const std::vector<std::string>& kv_policy_names();  // "none" included

// Default LookaheadKV module of a model file: X.gguf -> X.lookahead.gguf.
std::string default_lookahead_module_path(const std::string& model_path);
// The module the lookahead policy uses: `given` if set, else the default beside the model,
// else the module shipped under modules/ in the source tree; fails if none exists.
std::string resolve_lookahead_module_path(const std::string& model_path, const std::string& given);

// Errors that need no prompt (run before loading a model).
void validate_policy_settings(const KvPolicySettings& s);

ResolvedPolicy resolve_policy(const KvPolicySettings& s, const PolicyDefaults& d, int64_t n_prompt);

// Budget plan for the resolved settings (Ada needs the scores).
BudgetPlan plan_budget(const ResolvedPolicy& r, const KvScores& scores,
                       const std::vector<uint8_t>& is_protected, int n_layer, int n_kv_head);

}  // namespace glimpse
