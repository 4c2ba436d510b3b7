// The drafting side of speculative decoding: every draft source of a request, kept in step
// with the request's committed tokens, proposing tokens through the TABED ensemble.
//
// Model sources (compressed views of the target, a draft model) are contexts. Invariant
// between rounds: a model source's cache holds a prefix of the committed sequence seq
// (prompt + output; its evicted prompt entries aside), never the last committed token; the
// target holds all of seq but its last token. A draft of k tokens after seq runs k forwards
// per model source: step 0 feeds what the source is missing of seq (the last token at
// least), step i > 0 feeds draft token i - 1; the views of the target's engine run each step
// together in ONE forward_contexts (weights read once for all of them), a draft model (another
// engine) runs its own. The last draft token is never fed: rollback() truncates every source
// to the verified prefix and the next draft feeds what is missing.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/policy_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"
#include "runtime/spec_report.h"
#include "runtime/spec_sources.h"
#include "runtime/spec_verify.h"
#include "runtime/spec_weights.h"
#include "sampling/sampler.h"

namespace glimpse {

struct DraftParams {
  std::vector<DraftSpec> sources;
  WeightRule weights = WeightRule::Kl;
  // Drafting stops after a token whose mixture probability is below this (llama.cpp's
  // --draft-p-min); 0 drafts the full length.
  float p_min = 0.75f;
  // The engine of DraftKind::Model sources (its vocabulary is checked against the target's).
  std::shared_ptr<const Engine> draft_engine;
  std::string draft_path;  // for messages
};

class Drafter {
 public:
  // The sources of p for a request of n_prompt tokens on target's engine. Views' compressors
  // are made here; a draft model's vocabulary is checked here.
  Drafter(const Context& target, const DraftParams& p, int64_t n_prompt);
  ~Drafter();
  // Attach to the target's prompt prefill: the views' scoring observers (null if none).
  ForwardObserver* prefill_observer() { return observers_.empty() ? nullptr : &observers_; }
  // After the target's prefill of prompt: each view forks the target and evicts its prompt
  // entries, a draft model prefills the prompt in its own context. Returns the time taken.
  double setup(const Context& target, const std::vector<int32_t>& prompt);
  // Speculative sampling: from now on draft() draws each token from the mixture of the
  // sources' distributions under sp (the request's chain without its penalties, which only
  // the target applies) instead of taking the mixture's argmax, with an RNG seeded by seed.
  void sample_with(const SamplerParams& sp, uint64_t seed);
  bool sampling() const { return q_sampler_ != nullptr; }
  // Sampling: the mixture each token of the last draft was drawn from, [draft position].
  const std::vector<SparseDist>& draft_dists() const { return round_q_; }

  // Up to k tokens proposed after seq (k >= 1); fewer when no source has an opinion, after a
  // token below p_min, or after an end-of-generation token when stop_at_eog. What each source
  // said at each drafted position is kept for verified().
  std::vector<int32_t> draft(const std::vector<int32_t>& seq, int k, bool stop_at_eog);
  // After the target verified the draft: target_rows[j] are its logits at draft position j
  // and target_tokens[j] its token there, for j < n (the accepted positions and the first
  // rejected one). Updates the per-source statistics and the ensemble weights.
  void verified(const std::vector<const float*>& target_rows,
                const std::vector<int32_t>& target_tokens, size_t n);
  // Every model source keeps the entries at positions < n_keep (the verified prefix).
  void rollback(int32_t n_keep);

  std::vector<SpecSourceStats> stats() const;
  double weights_ms() const { return weights_ms_; }
  size_t n_sources() const { return sources_.size(); }
  const Context* source_context(size_t i) const;  // model sources (tests); null otherwise

 private:
  struct Source;
  void feed_step(const std::vector<int32_t>& seq, const std::vector<int32_t>& drafts);
  std::vector<Opinion> opinions_at(size_t pos);
  SparseDist mixture_dist(const std::vector<Opinion>& ops);

  DraftParams p_;
  const Tokenizer* tok_;
  int32_t n_vocab_;
  std::vector<std::unique_ptr<Source>> sources_;
  ObserverList observers_;
  EnsembleWeights ensemble_;
  // This round's opinions: [position][source]; dense ones point into Source::logits[position].
  std::vector<std::vector<Opinion>> round_;
  std::vector<double> scratch_;
  std::vector<int32_t> history_;  // seq + drafts (prompt lookup)
  double weights_ms_ = 0;
  // Sampling mode (sample_with): the sources' chain, the draws, this round's mixtures.
  std::unique_ptr<Sampler> q_sampler_;
  std::mt19937_64 rng_;
  std::vector<SparseDist> round_q_;
  std::vector<double> mix_;        // [n_vocab] mixture mass, zero between calls
  std::vector<int32_t> touched_;   // its nonzero entries
};

}  // namespace glimpse
