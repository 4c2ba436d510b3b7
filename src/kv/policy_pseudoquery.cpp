// Pseudo-query scoring: LookaheadKV without its trained module. The prompt's own last R =
// min(32, N) queries (per layer and query head, kept during prefill, post-RoPE) stand in
// for the 32 lookahead rows: row i of the window, run at position p_i, is moved to the
// lookahead row's position N + i by rotating it by N + i - p_i (RoPE rotations compose, so
// rotating a post-RoPE query by the difference equals rotating its pre-RoPE form by N + i).
// Those rows are scored exactly as the lookahead rows are: softmax over the N prompt keys
// (f32, scale 1/sqrt(d)), mean over the R rows -> s[j] per query head, group mean, top C
// per KV head. No window, sinks or pooling by default (all settable), like `lookahead`.
// One difference: the lookahead rows' softmax also covers their own keys (causally); these
// rows bring no keys of their own, so theirs covers the prompt keys only.
// It measures what LookaheadKV's training adds over queries the prompt already had.
//
// Shapes: kept queries [n_layer][R][n_head][head_dim]; scores [n_layer][n_head][N] before
// the group reduction.
#include <algorithm>
#include <cmath>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "kv/policy_util.h"
#include "ops/rope.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

constexpr int64_t kPseudoRows = 32;  // LookaheadKV's lookahead row count

class PseudoQueryPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "pseudoquery"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    const int64_t rows = std::min(kPseudoRows, r.n_prompt);
    cap_ = std::make_unique<QueryCapture>(c.n_layer, (int32_t)(r.n_prompt - rows),
                                          (int32_t)r.n_prompt);
    return cap_.get();
  }
  KvScores score(PolicyInput& in) override;

 private:
  std::unique_ptr<QueryCapture> cap_;
};

KvScores PseudoQueryPolicy::score(PolicyInput& in) {
  const ModelConfig& c = in.model.config();
  const int64_t n = in.cfg.n_prompt;
  const int H = c.n_head, G = c.n_head / c.n_kv_head, d = c.head_dim;
  const int64_t rows = (int64_t)cap_->pos[0].size();
  if (rows < 1) fail("pseudoquery: no prompt queries were kept");
  // The first position after the prompt (N when the prompt starts at 0), where the lookahead
  // rows would run.
  const int32_t future = in.cache.n_past();

  // Move row i of every layer to position future + i (all heads of a row share the angle).
  std::vector<float> cs(c.rope.n_rot);
  for (int l = 0; l < c.n_layer; ++l) {
    if (!scored_layer(c, l)) continue;
    if ((int64_t)cap_->pos[l].size() != rows) fail("pseudoquery: uneven query capture");
    float* q = cap_->q[l].data();
    for (int64_t i = 0; i < rows; ++i) {
      rope_cos_sin(c.rope, (int64_t)future + i - cap_->pos[l][i], cs.data());
      rope_apply(c.rope, cs.data(), q + i * H * d, H, d);
    }
  }

  // One unit per (layer, query head): its rows over the N prompt keys of its KV head.
  std::vector<float> acc((size_t)c.n_layer * H * n, 0.0f);
  const float scale = c.attn_scale > 0 ? c.attn_scale : 1.0f / std::sqrt((float)d);
  in.pool.parallel_for_dynamic((int64_t)c.n_layer * H, [&](int64_t u, int) {
    const int l = (int)(u / H), qh = (int)(u % H);
    if (!scored_layer(c, l)) return;  // sliding-window layer: never evicted
    const KvHead& hd = in.cache.head(l, qh / G);
    const float* q = cap_->q[l].data();
    std::vector<ScoreQuery> qs((size_t)rows);
    for (int64_t i = 0; i < rows; ++i) qs[i] = {q + (i * H + qh) * d, n, 0};
    float* row = acc.data() + (size_t)u * n;
    accumulate_attention(qs.data(), rows, in.cache.type_k(), hd.k.data(), n, d, scale,
                         QueryReduce::Sum, row, n, n);
    for (int64_t j = 0; j < n; ++j) row[j] /= (float)rows;
  });
  return reduce_query_heads(acc, c.n_layer, H, c.n_kv_head, n, in.cfg.pool_kernel, in.cfg.pool,
                            in.cfg.s.reduce);
}

}  // namespace

std::unique_ptr<KvPolicy> make_pseudoquery_policy() {
  return std::make_unique<PseudoQueryPolicy>();
}

}  // namespace glimpse
