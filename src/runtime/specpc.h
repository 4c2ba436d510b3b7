// SpecPC: prompt compression guided by a draft model's attention (docs/kv-eviction.md).
//
//   draft reads the prompt (its own tokens; runtime/draft_model.h), observed by SpecPcScorer:
//     layers >= specpc_first_layer (global layers only), queries = the last w = 64 prompt
//     tokens weighted linspace(0, 1) oldest -> newest, plus every generated token the draft
//     feeds back (weight 1); score[j] = max over layers, queries and query heads of
//     weight x softmax attention on prompt token j
//   cross-tokenizer: scores move to the target's tokens by byte overlap (max)
//   specpc_select: centered max-pool (kernel k = 32), top-C peaks, each widened by the k
//     positions around it nearest first, the last w tokens first of all, cut to C, in order
//   the target prefills only the kept token ids, at positions 0..C-1 (renumbered)
//
// SpecKV-PC: with --kv-policy speckv and the same draft file, the draft's run also writes
// SpecKV's answer from the full prompt (its queries count in the scores, as the reference's
// lookahead tokens), handed to SpecKV on the compressed prompt (Context::prepare_draft_answer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/policy.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace glimpse {

class Context;

// First draft layer whose attention counts: 8 as the reference for its 16- to 28-layer
// drafts (early layers attend broadly), and half the layers for a draft with fewer than 16.
int specpc_first_layer(int n_layer);

// Out[i] = max of s over [i - (k-1)/2, i + k - 1 - (k-1)/2] (zero padding past the ends, as
// the reference; scores are >= 0). k <= 1: a copy.
std::vector<float> centered_max_pool(const std::vector<float>& s, int kernel);

// Selection on one score per prompt token (n = scores.size()): pooled with `kernel`, the top
// `budget` tokens by pooled score (ties to the earlier token) in rank order, each widened into
// the `kernel` offsets -(k-1)/2 .. k-1-(k-1)/2 nearest first (clamped to the prompt); the last
// `window` tokens go first; first occurrences kept, cut to budget, sorted. Returns the kept
// indices (all of them when budget >= n).
std::vector<int64_t> specpc_select(const std::vector<float>& scores, int64_t budget, int kernel,
                                   int64_t window);

// Watches a draft's forward: see above. Scores cover the first n_prompt entries.
class SpecPcScorer final : public ForwardObserver {
 public:
  SpecPcScorer(const ModelConfig& c, int64_t n_prompt, int64_t window);
  void on_queries(const LayerQueries& lq, ThreadPool& pool) override;
  std::vector<float> scores() const;  // [n_prompt], max over query heads
  double ms() const { return ms_; }

 private:
  const ModelConfig& c_;
  int64_t n_, w_;
  int first_layer_;
  float scale_;
  std::vector<float> acc_;  // [n_head][n] max so far
  double ms_ = 0;
};

struct PromptCompression {
  std::vector<int32_t> tokens;   // the kept target tokens, in order
  std::vector<int64_t> kept;     // their indices in the original prompt
  int64_t n_before = 0;
  bool cross = false;            // draft of another vocabulary
  double draft_ms = 0;           // the draft's prefill and decode (its scoring included)
  double score_ms = 0;           // of which the scoring observer
  double select_ms = 0;          // mapping and selection
  std::vector<int32_t> answer;   // the draft's answer in the target's vocabulary
};

// SpecPC's draft pass alone: one score per target prompt token and the draft's answer (in
// the target's vocabulary). The selection is separate, so one draft run serves every
// budget (eval's branches).
struct SpecPcScores {
  std::vector<float> scores;     // [prompt.size()], target tokens (cross: mapped by bytes)
  std::vector<int32_t> answer;
  bool cross = false;
  double draft_ms = 0, score_ms = 0, map_ms = 0;
};
SpecPcScores specpc_score(const std::vector<int32_t>& prompt, const Tokenizer& target,
                          ThreadPool& pool, int n_batch, const KvPolicySettings& s,
                          int answer_max_new);
// The selection of `budget` tokens from scores (specpc_select) and the kept tokens; the
// draft's times and answer carried over.
PromptCompression specpc_apply(const std::vector<int32_t>& prompt, const SpecPcScores& scores,
                               int64_t budget, int kernel, int64_t window);

// Runs SpecPC's draft (s.pc_draft) on `prompt` (target tokens, vocabulary `target`) on `pool`
// and selects s.pc_budget tokens. answer_max_new > 0: the draft writes that many tokens
// (SpecKV-PC); 0: s.pc_lookahead. A prompt within the budget is returned whole (no draft run).
PromptCompression specpc_compress(const std::vector<int32_t>& prompt, const Tokenizer& target,
                                  ThreadPool& pool, int n_batch, const KvPolicySettings& s,
                                  int answer_max_new);

}  // namespace glimpse
