// The generation loop: prefill, then sample/decode until EOS, a stop string, -n tokens or
// a full context; text is streamed through a callback as complete UTF-8.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/compress.h"
#include "runtime/context.h"
#include "runtime/spec_report.h"
#include "sampling/sampler.h"
#include "util/timer.h"

namespace glimpse {

struct GenerateParams {
  int n_predict = -1;  // -1: until end of generation or a full context
  // >= 0: the log-probability of each generated token and of the n_probs most likely tokens
  // at its step (sampling/logprobs.h: the model's distribution, before sampling transforms).
  int n_probs = -1;
  SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings (not emitted)
  bool ignore_eos = false;
  KvPolicySettings kv;      // eviction after prefill (name "none": keep everything)
  int64_t n_compress = -1;  // query-agnostic: prompt tokens before the question
};

struct Timings {
  int64_t n_prompt = 0;
  int64_t n_cached = 0;  // of them, tokens whose KV came with the context (a prefix cache hit)
  int64_t n_gen = 0;  // tokens sampled (the first comes from the prefill logits)
  double load_ms = 0;
  double prefill_ms = 0;
  double decode_ms = 0;  // forward passes for generated tokens
  double decode_cpu_ms = 0;  // process CPU time (all threads) of the decode loop
  double sample_ms = 0;
  double total_ms = 0;
  KvCompressReport kv;  // prefill_ms above includes kv.score_ms, kv.evict_ms and the prompt
                        // compression's kv.pc_draft_ms + kv.pc_select_ms (time to first token)
  KvType type_k = KvType::F16, type_v = KvType::F16;  // KV cache element types
  size_t kv_bytes = 0;     // KV cache bytes held at the end (after any eviction)
  int64_t kv_entries = 0;  // entries stored then, summed over layers and KV heads
  // Speculative decoding (generate_speculative): decode_ms is then the wall time of every
  // round (drafts, target forwards, weights) less sample_ms, and prefill_ms includes the
  // draft sources' setup.
  SpecReport spec;

  // type_k, type_v, kv_bytes and kv_entries from the cache as it is at the end of a run.
  void record_cache(const KvCache& cache);
  double prefill_tps() const { return prefill_ms > 0 ? n_prompt * 1000.0 / prefill_ms : 0; }
  double decode_tps() const;
  std::string to_json() const;
  // llama.cpp-style lines for stderr.
  std::string report() const;
};

// A generated token's log-probability and the most likely alternatives at its step, with
// their pieces (the token's bytes, which may be part of a UTF-8 character).
struct TokenLogprob {
  struct Entry {
    int32_t id = -1;
    std::string piece;
    float logprob = 0;
  };
  Entry token;
  std::vector<Entry> top;
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token of `tokens` when n_probs >= 0
  std::string stop_reason;  // "eos", "stop", "length", "context"
  uint32_t seed = 0;
  Timings timings;
};

// Error unless a prompt of n_prompt tokens leaves room for at least one generated token.
void check_prompt_fits(const Context& ctx, size_t n_prompt);

// A prompt prefix the context already holds (runtime/prefix_cache.h): its length, and for a
// document compressed query-agnostically, the report of that compression.
struct CachedPrefix {
  int64_t n_tokens = 0;
  std::optional<KvCompressReport> compressed;
};

// generate() one step at a time, for callers that batch the forwards of many requests (the
// server's scheduler). The constructor arms the sampler; the prompt then goes in through the
// eviction path, either at once (prefill()) or chunk by chunk (prefill_chunk() gives the
// tokens and observer to run on the context, alone or inside forward_contexts with other
// contexts' rows; prefill_ran() afterwards) so a long prompt can share steps with other
// requests' decoding. step() samples the next token from the context's logits and emits its
// text, and returns the token the caller must decode next (alone: ctx.decode(id); batched
// with other contexts: forward_contexts, bit-identical) before calling step() again, or -1
// once the generation is over (end of generation, a stop string, -n tokens, a full context);
// finish() then emits the held-back text and returns the result. generate() is exactly this
// loop with ctx.decode, so every frontend produces the same tokens.
class Generation {
 public:
  // cached: the context holds prompt[0, cached.n_tokens) already (n_past equal to it, and
  // shorter than the prompt); only the rest goes in, without eviction (a compressed prefix
  // was evicted when it was cached).
  Generation(Context& ctx, const std::vector<int32_t>& prompt, const GenerateParams& p,
             std::function<void(std::string_view)> on_text, const CachedPrefix& cached = {});
  bool prefilling() const { return !prefill_->done(); }
  int64_t prefill_remaining() const { return prefill_->remaining(); }
  ContextStep prefill_chunk(int64_t max_tokens) { return prefill_->next(max_tokens); }
  // forward_ms: the chunk's forward wall time (scoring and eviction are timed here).
  void prefill_ran(const ContextStep& chunk, double forward_ms);
  void prefill();  // every remaining chunk, on the context alone
  // See StagedPrefill::at_compressed_boundary; prefill_report() is the eviction's report.
  bool at_compressed_boundary() const { return prefill_->at_compressed_boundary(); }
  const KvCompressReport& prefill_report() const { return prefill_->report(); }
  int32_t step();
  void add_decode_ms(double ms) { r_.timings.decode_ms += ms; }
  // With n_probs >= 0, called with each token's log-probabilities before its text.
  void set_on_logprob(std::function<void(const TokenLogprob&)> f) { on_logprob_ = std::move(f); }
  GenerateResult finish();
  Context& context() { return s_; }
  const Timings& timings() const { return r_.timings; }

 private:
  void emit(const std::string& text);
  void record_logprob(int32_t id);
  Context& s_;
  GenerateParams p_;
  std::function<void(std::string_view)> on_text_;
  std::function<void(const TokenLogprob&)> on_logprob_;
  std::unique_ptr<StagedPrefill> prefill_;
  std::optional<KvCompressReport> cached_kv_;
  GenerateResult r_;
  Stopwatch total_;
  double cpu0_ = 0;
  bool over_ = false;
};

// Prefill (through the eviction path) and sampling on one context, which must be empty.
GenerateResult generate(Context& ctx, const std::vector<int32_t>& prompt, const GenerateParams& p,
                        const std::function<void(std::string_view)>& on_text);

}  // namespace glimpse
