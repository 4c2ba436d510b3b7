// A request context: what one conversation owns on top of the shared Engine. Its KV cache
// (ragged per layer x KV head, original positions), its position (cache().n_past()) and the
// logits of its last token. Every frontend drives the model through contexts: run, bench,
// eval, the generating KV policies (through KvRequest), LookaheadKV training, and batched
// decode over many contexts at once (forward_contexts, greedy_contexts).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <optional>
#include <string>

#include "kv/kv_cache.h"
#include "kv/policy.h"
#include "runtime/engine.h"
#include "sampling/sampler.h"
#include "sampling/stop_strings.h"

namespace glimpse {

// What a generating request carries between steps: its sampler (RNG and penalty window),
// the incremental UTF-8 decoder of its tokens and its stop-string matcher.
struct SamplingState {
  SamplingState(const SamplerParams& p, std::vector<std::string> stop, const Tokenizer& tok)
      : sampler(p, tok.n_vocab()), stream(tok), stops(std::move(stop)) {}
  Sampler sampler;
  StreamDecoder stream;
  StopMatcher stops;
};

class Context final : public KvRequest {
 public:
  // An empty context. params: n_ctx 0 = the model's; pool: the executor this context's
  // forwards run on (null: the engine's default pool).
  Context(std::shared_ptr<const Engine> engine, const ContextParams& params,
          ThreadPool* pool = nullptr);
  explicit Context(std::shared_ptr<const Engine> engine)
      : Context(engine, engine->context_defaults()) {}

  const Engine& engine() const { return *engine_; }
  const Model& model() const { return engine_->model(); }
  const Tokenizer& tokenizer() const { return engine_->tokenizer(); }
  ThreadPool& pool() const { return *pool_; }
  int n_ctx() const { return params_.n_ctx; }
  int n_batch() const { return params_.n_batch; }
  int32_t n_past() const { return cache_.n_past(); }
  KvCache& cache() override { return cache_; }
  const KvCache& cache() const { return cache_; }
  const std::vector<float>& logits() const override { return logits_; }
  void set_logits(std::vector<float> l) { logits_ = std::move(l); }

  // Called per batch with (index of the batch's first token, logits [n][n_vocab], n).
  using RowsCallback = std::function<void(int64_t, const float*, int64_t)>;
  // Runs tokens after what the cache holds, in batches of n_batch; logits() = the last
  // token's. An observer sees every layer's queries (KV policies score from them).
  void prefill(const std::vector<int32_t>& tokens, ForwardObserver* observer) override;
  // The same, computing every token's logits and handing them over batch by batch.
  void prefill(const std::vector<int32_t>& tokens, const RowsCallback& on_rows,
               ForwardObserver* observer = nullptr);
  // One token at the next position.
  void decode(int32_t token, ForwardObserver* observer = nullptr);
  GreedyRun greedy(const GreedyOptions& o, ForwardObserver* observer) override;
  // SpecKV's draft answer (runtime/draft_model.h), on this context's pool; one set with
  // prepare_draft_answer for the same file is handed over (once) instead of running again.
  DraftAnswer draft_answer(const std::string& draft_path, const std::vector<int32_t>& prompt,
                           int max_new) override;
  // SpecKV-PC: SpecPC's draft already wrote the answer from the full prompt.
  void prepare_draft_answer(const std::string& draft_path, std::vector<int32_t> answer) {
    prepared_draft_ = PreparedDraft{draft_path, std::move(answer)};
  }

  // An independent copy: cache, position and logits (the engine is shared).
  std::unique_ptr<Context> fork() const;
  // An empty context on the same engine, parameters and pool.
  std::unique_ptr<Context> empty_like() const {
    return std::make_unique<Context>(engine_, params_, pool_);
  }
  std::unique_ptr<KvRequest> fork_request() const override { return fork(); }
  // Exact rollback of every head to the positions before pos (logits become stale).
  void truncate(int32_t pos) override;
  void reset();
  // Replaces the cache by an empty one of other element types (bench compares types).
  void set_cache_types(KvType type_k, KvType type_v);

  // Sampling: arms the request's sampler and stop strings (the prompt's tokens enter the
  // penalty window), then each sample_next() draws a token from logits() and records it;
  // text_of(id) is the text that token completes (stop strings held back, "" once a stop
  // string was seen); finish_text() the rest at the end. A fork carries a copy of it all.
  void begin_sampling(const SamplerParams& p, std::vector<std::string> stop,
                      const std::vector<int32_t>& prompt);
  SamplingState& sampling();
  int32_t sample_next();
  std::string text_of(int32_t id);
  std::string finish_text();
  bool stopped() const { return sampling_ && sampling_->stops.stopped(); }

  // Bytes this context holds: KV buffers (capacity) and logits.
  size_t resident_bytes() const;

 private:
  friend void forward_contexts(std::vector<struct ContextStep>& steps);
  Context(const Context&) = default;
  std::shared_ptr<const Engine> engine_;
  ContextParams params_;
  ThreadPool* pool_;
  KvCache cache_;
  std::vector<float> logits_;  // [n_vocab] after the last forward
  std::optional<SamplingState> sampling_;
  struct PreparedDraft {
    std::string path;
    std::vector<int32_t> answer;
  };
  std::optional<PreparedDraft> prepared_draft_;
};

// One step of a batched forward: a context and the tokens it runs.
struct ContextStep {
  Context* ctx = nullptr;
  std::vector<int32_t> tokens;
  ForwardObserver* observer = nullptr;
};

// One forward over several contexts of the same engine (8 contexts decoding one token each,
// or one prefilling a batch while others decode): the weights are read once for all rows,
// attention runs per context over its own cache. Each context's logits() become those of its
// last token, bit-identical to running it alone. Runs on the first context's pool.
void forward_contexts(std::vector<ContextStep>& steps);

// Contexts per forward of greedy_contexts: more are split into near-equal groups.
inline constexpr size_t kGreedyContextsPerForward = 64;

// Greedy decoding of several distinct contexts of one engine at once: each step is one
// forward_contexts over the contexts still decoding (in groups of at most
// kGreedyContextsPerForward), so the weights are read once per step for all of them. Each
// run's tokens, rows and steps, and each context's final cache, position and logits, are
// exactly those of ctx->greedy(o, nullptr) alone (tested); a context leaves the batch where
// its own greedy would stop (max_new, end of generation, context full). decode_ms is the
// wall time of the whole batched loop, the same in every run: a per-context decode time is
// not measured. per_forward: the group size (tests split a few contexts into several
// forwards with a small one).
std::vector<GreedyRun> greedy_contexts(const std::vector<Context*>& ctxs, const GreedyOptions& o,
                                       size_t per_forward = kGreedyContextsPerForward);

}  // namespace glimpse
