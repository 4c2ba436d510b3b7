// SpecKV: a smaller draft model writes an approximate answer Y' (greedy, --kv-draft-n tokens,
// from the prompt it is given), and the target reads it to see which prompt entries its own
// answer would use. The target runs [X; Y'] (X is in the cache already; Y' is one more
// prefill on the request), and per layer and query head the scoring queries are the last
// w + 1 prompt queries (observed during the prompt's prefill; w = the protected window,
// default 32, so 33 queries) plus every draft row; their softmax attention over the prompt
// keys is reduced by max over the queries (--kv-draft-mean: mean) and by max over the query
// heads of a GQA group, pooled with a max kernel of 7 over the entries before the window, and
// the top C - w are kept with the last w. The draft rows' KV is dropped again (truncate), so
// the prompt keeps its original positions and decoding starts at N.
//
// The draft comes through KvRequest::draft_answer (runtime/draft_model.h): one engine per
// file per process; a draft with another vocabulary reads the prompt's text and its answer
// is re-tokenized for the target. With the model as its own draft (and --kv-window 0,
// --kv-draft-mean, no pooling) the draft answer is the oracle's and so are the kept entries.
// Sliding-window layers are not scored (kv_scores.h).
#include <algorithm>
#include <climits>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "util/timer.h"

namespace glimpse {
namespace {

class SpecKvPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "speckv"; }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.window = 32;
    d.pool_kernel = 7;
    d.pool = PoolKind::Max;
    return d;
  }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    // The window's w entries plus the query just before them (the reference's 33 of 32);
    // none with --kv-window 0.
    const int64_t w = r.observe_window > 0 ? std::min(r.observe_window + 1, r.n_prompt) : 0;
    prompt_rec_ = std::make_unique<AttentionRecorder>(c, r.n_prompt, (int32_t)(r.n_prompt - w),
                                                      (int32_t)r.n_prompt, reduce(r.s));
    n_prompt_queries_ = w;
    return w > 0 ? prompt_rec_.get() : nullptr;
  }

  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const int64_t n = in.cfg.n_prompt;
    // 1. The draft's answer to what the target has read (the context alone when
    // query-agnostic: the question is not known yet).
    KvRequest::DraftAnswer answer = in.request.draft_answer(
        in.cfg.s.draft_model, in.prompt, resolved_draft_max_new(in.cfg.s));
    draft_ms_ = answer.ms;
    // The rows must fit the request's context (a re-tokenized answer may be longer).
    const int64_t room = std::max<int64_t>(0, in.cache.n_ctx() - in.cache.n_past() - 1);
    if ((int64_t)answer.tokens.size() > room) answer.tokens.resize((size_t)room);
    std::vector<float> acc = prompt_rec_->acc();  // [L][H][n]
    int64_t n_queries = n_prompt_queries_;
    // 2. The target reads it: its rows' attention over the prompt, then they go again.
    // Sliding-window layers keep their entries meanwhile (the answer may be longer than
    // their rollback slack).
    if (!answer.tokens.empty()) {
      Stopwatch sw;
      const int32_t prompt_end = in.cache.n_past();
      KeepWindowEntries keep(in.request.cache());
      AttentionRecorder rec(c, n, prompt_end, INT32_MAX, reduce(in.cfg.s));
      in.request.prefill(answer.tokens, &rec);
      in.request.truncate(prompt_end);  // the caller restores the prompt's logits
      const std::vector<float>& a = rec.acc();
      for (size_t i = 0; i < acc.size(); ++i)
        acc[i] = in.cfg.s.draft_query_mean ? acc[i] + a[i] : std::max(acc[i], a[i]);
      n_queries += (int64_t)answer.tokens.size();
      rows_ms_ = sw.ms();  // the forward of the draft rows, their scoring included
    }
    if (in.cfg.s.draft_query_mean && n_queries > 0)
      for (float& x : acc) x /= (float)n_queries;
    return reduce_query_heads(acc, c.n_layer, c.n_head, c.n_kv_head, n, in.cfg.pool_kernel,
                              in.cfg.pool, GroupReduce::Max, n - in.cfg.window);
  }
  double observer_ms() const override { return prompt_rec_ ? prompt_rec_->ms() : 0; }
  double draft_ms() const override { return draft_ms_; }
  double rows_ms() const override { return rows_ms_; }

 private:
  static QueryReduce reduce(const KvPolicySettings& s) {
    return s.draft_query_mean ? QueryReduce::Sum : QueryReduce::Max;
  }
  std::unique_ptr<AttentionRecorder> prompt_rec_;
  int64_t n_prompt_queries_ = 0;
  double draft_ms_ = 0, rows_ms_ = 0;
};

}  // namespace

std::unique_ptr<KvPolicy> make_speckv_policy() { return std::make_unique<SpecKvPolicy>(); }

}  // namespace glimpse
