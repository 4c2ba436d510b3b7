// The one KV eviction path: prefill with the policy's observer -> score -> budget ->
// protect -> top-k per head -> compact. `run`, `bench` and `eval` all go through it.
//
// Query-aware (default): the whole prompt, question included, is prefilled, scored and
// compressed; the first answer token comes from the full-cache prefill logits.
// Query-agnostic: only tokens[0, n_compress) (the context) are prefilled and compressed;
// the rest (the question) is prefilled afterwards over the compressed cache, as kvpress does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/evict.h"
#include "kv/policy.h"
#include "runtime/context.h"

namespace glimpse {

struct KvCompressReport {
  std::string policy = "none";
  bool evicted = false;
  bool query_agnostic = false;
  int64_t n_compressed = 0;  // prompt entries per head that were scored
  int64_t budget = 0, window = 0, sinks = 0;
  double prefill_ms = 0;  // forward passes over the prompt (both parts when agnostic)
  double score_ms = 0;    // scoring: observer work during prefill + the policy's own pass
  double evict_ms = 0;    // selection + compaction
  double draft_ms = 0;    // of score_ms: a draft model's answer (speckv)
  double rows_ms = 0;     // of score_ms: the target's forward of those rows (speckv)
  EvictionStats stats;
  // Prompt compression before prefill (SpecPC): the target prefilled n_pc_after of the
  // n_pc_before prompt tokens (renumbered); its draft's time is not in prefill_ms.
  std::string prompt_compress = "none";
  int64_t n_pc_before = 0, n_pc_after = 0;
  bool pc_cross = false;      // the draft has another vocabulary (scores mapped by bytes)
  double pc_draft_ms = 0, pc_select_ms = 0;
  std::vector<int64_t> pc_kept;  // original prompt index of each prefilled token (SpecPC)
  size_t rss_before = 0, rss_after = 0;  // process resident bytes around the eviction

  // Lines for the stderr summary, and a JSON object for --timings-json.
  std::string report() const;
  std::string to_json() const;
};

// A policy set up for one prompt of n_prompt entries: settings resolved against the policy's
// defaults, its observer ready to watch the prefill. Scores are computed once and reused
// (eval evicts several branches with one scorer).
class PromptCompressor {
 public:
  PromptCompressor(const KvPolicySettings& settings, const ModelConfig& c, int64_t n_prompt);
  const ResolvedPolicy& resolved() const { return r_; }
  bool evicts() const { return policy_ && r_.evicts(); }
  // The observer to attach to the prompt's prefill, made on first call; null when the
  // policy needs none (or nothing is evicted).
  ForwardObserver* observer();
  // After the prompt was prefilled into ctx (and before anything else was appended).
  // suffix: the question still to prefill (query-agnostic). The context's logits are
  // restored if the policy generated on it.
  const KvScores& score(Context& ctx, const std::vector<int32_t>& prompt,
                        const std::vector<int32_t>& suffix);
  double score_ms() const { return score_ms_; }  // observer + own pass
  double draft_ms() const { return policy_ ? policy_->draft_ms() : 0; }
  double rows_ms() const { return policy_ ? policy_->rows_ms() : 0; }
  double observer_ms() const { return policy_ ? policy_->observer_ms() : 0; }
  // Budget plan, protection, top-k and compaction of ctx's prompt region with `scores`,
  // then the freed buffers go back to the OS.
  EvictionStats evict(Context& ctx, const KvScores& scores) const;

 private:
  std::unique_ptr<KvPolicy> policy_;
  ResolvedPolicy r_;
  const ModelConfig& config_;
  bool observing_ = false;
  ForwardObserver* observer_ = nullptr;
  bool scored_ = false;
  KvScores scores_;
  double score_ms_ = 0;
};

// The prompt compression of settings (SpecPC, runtime/specpc.h) on ctx's pool: the tokens the
// target prefills, n_compress mapped to them, and the report's prompt-compression fields.
// SpecKV-PC (settings.name == "speckv" with the same draft file) hands the draft's answer to
// ctx for the SpecKV step. Without prompt compression: tokens as they are.
std::vector<int32_t> compress_prompt(Context& ctx, const std::vector<int32_t>& tokens,
                                     int64_t& n_compress, const KvPolicySettings& settings,
                                     KvCompressReport& rep);

// prefill_with_eviction in chunks that the caller runs, alone or inside a batched forward
// with other contexts (the server interleaves a long prompt with other requests' decode
// steps). Stages: the compressed part (tokens[0, n_compress), with the policy's observer) ->
// score and evict (inside ran(), when that part is complete) -> the suffix (no observer).
// The model's forward gives a token the same bits whatever the batch split, so any chunking
// leaves exactly the cache and logits of one prefill_with_eviction call.
class StagedPrefill {
 public:
  // ctx must be empty when the policy evicts; nothing runs yet but the prompt compression of
  // settings (its draft model) when one is asked for.
  StagedPrefill(Context& ctx, std::vector<int32_t> tokens, int64_t n_compress,
                const KvPolicySettings& settings);
  StagedPrefill(const StagedPrefill&) = delete;
  StagedPrefill& operator=(const StagedPrefill&) = delete;
  bool done() const { return next_ == (int64_t)tokens_.size(); }
  int64_t remaining() const { return (int64_t)tokens_.size() - next_; }
  // The next chunk (1..max_tokens tokens, never across the end of the compressed part) and
  // the observer to run it with. Run it on this context, then call ran().
  ContextStep next(int64_t max_tokens);
  // The chunk of next() ran (forward_ms: its share of the forward's wall time, observer
  // included); scores and evicts once the compressed part is in.
  void ran(const ContextStep& chunk, double forward_ms);
  // Runs every remaining chunk on the context alone, n_batch tokens at a time.
  void run_all();
  const KvCompressReport& report() const { return rep_; }
  // The compressed part was just evicted and nothing after it has run: the context holds
  // exactly the compressed document (what a document cache keeps).
  bool at_compressed_boundary() const { return pc_ && rep_.evicted && next_ == n_compress_; }
  int64_t n_compress() const { return n_compress_; }

 private:
  Context& ctx_;
  std::vector<int32_t> tokens_;  // after prompt compression
  int64_t n_compress_ = 0;  // end of the compressed part (tokens_.size() when query-aware)
  int64_t next_ = 0;        // first token not yet run
  std::unique_ptr<PromptCompressor> pc_;  // null: nothing is evicted (the plain path)
  KvCompressReport rep_;
};

// Prefills tokens into ctx (which must be empty when a policy evicts), compressing the
// first n_compress of them (query-agnostic) or all of them. ctx.logits() afterwards are
// the last prompt token's.
KvCompressReport prefill_with_eviction(Context& ctx, const std::vector<int32_t>& tokens,
                                       int64_t n_compress, const KvPolicySettings& settings);

// What each (layer, KV head) holds of the prompt, as JSON: the prompt's token ids, the
// report's policy, budget, window and sinks, and "kept"[layer][kv_head] = the sorted original
// positions (< prompt.size()) still in the cache. Lets other engines be checked against the
// selection entry by entry. Entries decoded after the prompt are left out, so it may be
// written after generation.
std::string kept_positions_json(const KvCache& cache, const std::vector<int32_t>& prompt,
                                const KvCompressReport& rep);

}  // namespace glimpse
