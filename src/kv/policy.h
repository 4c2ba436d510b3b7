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
#include "kv/kv_cache.h"
#include "kv/kv_scores.h"
#include "model/model.h"

namespace glimpse {

class ThreadPool;

// What the user asked for (-1 / nullopt: the policy's default).
struct KvPolicySettings {
  std::string name = "none";
  int64_t budget = -1;  // C: entries kept per (layer, KV head), window and sinks included
  double ratio = -1;    // fraction of the prompt removed (kvpress meaning), if no budget
  int64_t window = -1;  // protected recent entries and observation window where scored
                        // (default: the policy's, protecting at most half the budget)
  int64_t sinks = -1;   // protected first entries
  int pool_kernel = -1;
  std::optional<PoolKind> pool;
  GroupReduce reduce = GroupReduce::Mean;
  bool query_agnostic = false;
  double ada_alpha = 0.2;
  double pyramid_beta = 20.0;
  // How the budget is spread over layers and heads (nullopt: the policy's own; pyramidkv and
  // adakv are snapkv with pyramid and ada). --kv-alloc.
  std::optional<BudgetAllocation> allocation;
  uint64_t seed = 0;
  int oracle_max_new = 128;  // length limit of the oracle's own answer
  int laq_pseudo = 8;        // LAQ pseudo tokens
  std::string lookahead_module;  // LookaheadKV module file (empty: next to the model)
  // Draft-guided compression (docs/kv-eviction.md, SpecKV and SpecPC):
  std::string draft_model;     // speckv: the draft model's GGUF file (--kv-draft)
  int draft_max_new = -1;      // speckv: length of the draft's answer (-1: the request's -n, else 128)
  bool draft_query_mean = false;  // speckv: mean over the scoring queries instead of max
  std::string prompt_compress = "none";  // "specpc": prompt compression before prefill
  std::string pc_draft;        // specpc: the draft model's GGUF file (--pc-draft)
  int64_t pc_budget = -1;      // specpc: prompt tokens the target prefills (C)
  int pc_kernel = 32;          // specpc: max-pool kernel and neighbour span (32: Llama-size drafts)
  int64_t pc_window = 64;      // specpc: last prompt tokens always kept (and observed)
  int pc_lookahead = 1;        // specpc alone: tokens the draft generates (1: its prefill only)
  // expected_attention (policy_expected_attention.cpp):
  int ea_future = 512;        // future positions the query's RoPE rotation is averaged over
  bool ea_covariance = true;  // add k^T Sigma k / (2d) to the expected logit
  bool ea_vnorm = true;       // weight by ||v|| (after adding ea_epsilon)
  double ea_epsilon = 0.0;
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
  int64_t window = 0, sinks = 0;  // protected entries (counted in the budget)
  // Last prompt queries a scoring observer watches (SnapKV, H2O, LAQ): the asked or default
  // window, not clamped by the budget.
  int64_t observe_window = 0;
  int pool_kernel = 0;
  PoolKind pool = PoolKind::None;
  BudgetAllocation allocation = BudgetAllocation::Uniform;
  bool evicts() const { return budget < n_prompt; }
  int64_t scored() const { return budget - window - sinks; }  // entries chosen by score
};

// How a greedy continuation runs (one loop for every caller: eval, oracle, LAQ, training).
struct GreedyOptions {
  int max_new = 128;         // tokens at most
  bool stop_at_eog = true;   // stop before an end-of-generation token
  // Before this many tokens an end-of-generation token is passed over for the best other
  // one (a draft answer of a fixed length, whatever the draft model's habits).
  int min_new = 0;
  // true: every generated token is also run through the model (an observer sees its
  // query); false: the last one is not (its logits are never needed).
  bool feed_last = true;
  bool keep_rows = false;    // keep the logits each token was chosen from
};

struct GreedyRun {
  std::vector<int32_t> tokens;           // without the end-of-generation token
  std::vector<std::vector<float>> rows;  // with keep_rows: logits before each choice
  int steps = 0;                         // forward passes
  double decode_ms = 0;
};

// The request being compressed, as a policy sees it: implemented by the runtime's Context,
// so policies that generate (oracle, LAQ) branch and decode through the one request path.
class KvRequest {
 public:
  virtual ~KvRequest() = default;
  virtual KvCache& cache() = 0;
  virtual const std::vector<float>& logits() const = 0;  // of the last token run
  // An independent copy (cache, position, logits) to branch from.
  virtual std::unique_ptr<KvRequest> fork_request() const = 0;
  virtual void prefill(const std::vector<int32_t>& tokens, ForwardObserver* observer) = 0;
  // Greedy tokens from logits(); an observer sees the queries of the tokens fed back.
  virtual GreedyRun greedy(const GreedyOptions& o, ForwardObserver* observer) = 0;
  // Exact rollback: drops every entry at position >= pos (logits become stale).
  virtual void truncate(int32_t pos) = 0;
  // A draft model's greedy answer (SpecKV) to `prompt` (tokens of this request) of at most
  // max_new tokens, in this request's vocabulary: the draft file is loaded once per process;
  // a draft with another vocabulary reads the prompt as text and its answer is re-tokenized.
  struct DraftAnswer {
    std::vector<int32_t> tokens;
    double ms = 0;  // the draft's prefill and decode (0 when prepared before, see SpecKV-PC)
  };
  virtual DraftAnswer draft_answer(const std::string& draft_path,
                                   const std::vector<int32_t>& prompt, int max_new) = 0;
};

// What a policy may use after the prompt was prefilled.
struct PolicyInput {
  const Model& model;
  KvRequest& request;
  KvCache& cache;  // request.cache(): every head holds the prompt in its first n_prompt entries
  ThreadPool& pool;
  const ResolvedPolicy& cfg;
  const std::vector<int32_t>& prompt;      // tokens in the cache, in order
  const std::vector<int32_t>& suffix;      // question still to prefill (query-agnostic), or empty
  const std::vector<float>& last_logits;   // full-cache logits after the prompt
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
  // Of the score pass, the time a draft model took (SpecKV), and the forward of the rows
  // the policy ran on the request (SpecKV: the draft answer through the target).
  virtual double draft_ms() const { return 0; }
  virtual double rows_ms() const { return 0; }
};

// One row of the policy table: every policy is named here once, with what callers need to
// know about it (eval shares work between policies by these flags, never by name).
struct PolicyInfo {
  std::string name;
  std::function<std::unique_ptr<KvPolicy>()> make;  // null for "none"
  bool generates = false;  // scoring runs the model past the prompt (oracle, LAQ)
  bool budget_dependent_scores = false;  // scores differ per budget (LAQ): re-scored per budget
  // Scores = attention of the full-cache greedy answer over the prompt (oracle): a caller
  // that already generated that answer with an AttentionRecorder may use its scores.
  bool answer_attention_scores = false;
};

// The table: "none" first, then the policies of this layer; layers above add theirs with
// register_kv_policy (LookaheadKV registers from src/lookahead).
const std::vector<PolicyInfo>& kv_policy_table();
void register_kv_policy(PolicyInfo info);  // replaces an entry of the same name
// The entry of a name; Error listing the known names otherwise.
const PolicyInfo& kv_policy_info(const std::string& name);
std::unique_ptr<KvPolicy> make_kv_policy(const std::string& name);  // null for "none"
std::vector<std::string> kv_policy_names();  // "none" included, table order

// Errors that need no prompt (run before loading a model).
void validate_policy_settings(const KvPolicySettings& s);
// SpecKV's answer length: draft_max_new, or 128 when it is -1 (the request's -n unknown).
int resolved_draft_max_new(const KvPolicySettings& s);

ResolvedPolicy resolve_policy(const KvPolicySettings& s, const PolicyDefaults& d, int64_t n_prompt);

// Budget plan for the resolved settings (Ada needs the scores). layer_scored[l] = 0 marks a
// layer that is not evicted (sliding-window layers, kv_scores.h: scored_layer); empty: every
// layer is. PyramidKV's linear fall runs over the evicted layers only; the others get 0.
BudgetPlan plan_budget(const ResolvedPolicy& r, const KvScores& scores,
                       const std::vector<uint8_t>& is_protected, int n_layer, int n_kv_head,
                       const std::vector<uint8_t>& layer_scored = {});

}  // namespace glimpse
