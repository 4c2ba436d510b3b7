// The engine's lookahead pass: the module's embeddings P run through the model's own layer
// code (Model::forward(HookedRows)); LookaheadHooks adds the LoRA after each linear,
// replaces attention (prompt keys/values read from the cache, never appended, plus the
// lookahead rows' own keys, causal among themselves; the softmax rows give the scores) and
// copies the activations the backward pass needs into the trace.
#include "lookahead/lookahead_forward.h"

#include <cmath>

#include "kv/kv_scores.h"
#include "lookahead/lookahead_ops.h"
#include "model/layer_hooks.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

using namespace lookahead_detail;

int64_t check_lookahead_fits(const Model& model, const KvCache& cache, const LookaheadModule& mod) {
  const ModelConfig& c = model.config();
  const LookaheadBaseInfo& b = mod.base();
  if (b.n_layer != c.n_layer || b.n_embd != c.n_embd || b.n_head != c.n_head ||
      b.n_kv_head != c.n_kv_head || b.head_dim != c.head_dim || b.n_ff != c.n_ff)
    fail("LookaheadKV module does not fit this model's shape");
  if (cache.n_layer() != c.n_layer || cache.n_kv_head() != c.n_kv_head || cache.head_dim() != c.head_dim)
    fail("lookahead: the KV cache does not belong to this model");
  if (n_scored_layers(c) == 0) fail("lookahead: the model has no layer to score (all sliding-window)");
  if (c.swa_window > 0 && mod.n_lookahead() >= c.swa_window)
    fail("lookahead: {} lookahead rows do not fit the {}-key sliding window", mod.n_lookahead(), c.swa_window);
  int64_t N = -1;
  for (int l = 0; l < c.n_layer; ++l) {
    const int64_t n_l = cache.head(l, 0).size();
    if (scored_layer(c, l) && N < 0) N = n_l;
    for (int g = 0; g < c.n_kv_head; ++g)
      if (cache.head(l, g).size() != (scored_layer(c, l) ? N : n_l) || n_l < 1)
        fail("lookahead: KV heads hold different entry counts (was the cache already evicted?)");
  }
  return N;
}

namespace {

class LookaheadHooks final : public LayerHooks {
 public:
  LookaheadHooks(const ModelConfig& c, const KvCache& cache, const LookaheadModule& mod,
                 std::vector<float>& scores, LookaheadTrace<float>* trace, int64_t n_prompt)
      : c_(c), cache_(cache), mod_(mod), scores_(scores), trace_(trace),
        N_(n_prompt), T_(mod.n_lookahead()), pos0_(cache.n_past()),
        panel_(c.n_kv_head), rows_(c.n_kv_head) {}

  // out += scale * B (A in); A in is kept for the backward pass.
  void after_linear(int l, LinearSlot slot, const float* in, int64_t T, float* out) override {
    const int s = (int)slot;
    if (!mod_.has(l, s)) return;
    std::vector<float>& a = trace_ ? trace_->layers[l].a[s] : a_;
    a.resize((size_t)T * mod_.rank());
    lora_forward(mod_.lora(l, s), mod_.rank(), mod_.scale(), in, T, a.data(), out);
  }

  void on_activation(int l, LayerTap tap, const float* x, int64_t T) override {
    if (!trace_) return;
    LookaheadLayerTrace<float>& tr = trace_->layers[l];
    const size_t nE = (size_t)T * c_.n_embd, nF = (size_t)T * c_.n_ff;
    const int d = c_.head_dim;
    switch (tap) {
      case LayerTap::Input:
        tr.x_in.assign(x, x + nE);
        inv_rms_rows(x, T, c_.n_embd, c_.rms_eps, tr.rinv1);
        break;
      case LayerTap::AttnNormed: tr.xn1.assign(x, x + nE); break;
      case LayerTap::Mid:
        tr.x_mid.assign(x, x + nE);
        inv_rms_rows(x, T, c_.n_embd, c_.rms_eps, tr.rinv2);
        break;
      case LayerTap::FfnNormed: tr.xn2.assign(x, x + nE); break;
      case LayerTap::Gate: tr.gate.assign(x, x + nF); break;
      case LayerTap::Up: tr.up.assign(x, x + nF); break;
      case LayerTap::Hidden: tr.hid.assign(x, x + nF); break;
      case LayerTap::QProj:
        tr.q_raw.assign(x, x + (size_t)T * c_.n_head * d);
        inv_rms_rows(x, T * c_.n_head, d, c_.rms_eps, tr.rinv_q);
        break;
      case LayerTap::KProj:
        tr.k_raw.assign(x, x + (size_t)T * c_.n_kv_head * d);
        inv_rms_rows(x, T * c_.n_kv_head, d, c_.rms_eps, tr.rinv_k);
        break;
      case LayerTap::AttnOut:
        tr.o_raw.assign(x, x + nE);
        inv_rms_rows(x, T, c_.n_embd, c_.rms_eps, tr.rinv_o);
        break;
      case LayerTap::FfnOut:
        tr.f_raw.assign(x, x + nE);
        inv_rms_rows(x, T, c_.n_embd, c_.rms_eps, tr.rinv_f);
        break;
    }
  }

  void attend(int l, const float* q, const float* k, const float* v, int64_t T, float* out,
              ThreadPool& pool) override;

 private:
  const ModelConfig& c_;
  const KvCache& cache_;
  const LookaheadModule& mod_;
  std::vector<float>& scores_;  // [n_layer][n_head][N]
  LookaheadTrace<float>* trace_;
  const int64_t N_;     // prompt entries of the scored layers
  const int T_;
  const int32_t pos0_;  // position of the first lookahead row
  std::vector<float> a_;  // A x without a trace
  std::vector<std::vector<float>> panel_, rows_;  // per KV head: keys^T [d][n_pad], values [n_keys][d]
};

// Softmax attention of the T lookahead rows over the layer's N_l prompt keys (from the cache;
// a sliding-window layer's rows see only the keys inside their window) and the lookahead keys
// up to their own; in a scored layer (N_l = N) scores[l][h][j] = mean over rows of p[j].
// The last layer needs only the probabilities (no values, no output).
void LookaheadHooks::attend(int l, const float* q, const float* k, const float* v, int64_t T,
                            float* out, ThreadPool& pool) {
  if (T != T_) fail("lookahead: {} rows reached attention, the module has {}", T, T_);
  const int d = c_.head_dim, H = c_.n_head, KV = c_.n_kv_head, G = H / KV;
  const int64_t q_dim = (int64_t)H * d, kv_dim = (int64_t)KV * d;
  const int64_t N = cache_.head(l, 0).size(), n_keys = N + T, n_pad = padded(n_keys);
  const bool last = l == c_.n_layer - 1, scored = scored_layer(c_, l);
  const float att_scale = c_.attn_scale;
  LookaheadLayerTrace<float>* tr = trace_ ? &trace_->layers[l] : nullptr;
  if (tr) {
    tr->n_prompt = N;
    tr->q.assign(q, q + T * q_dim);
    tr->k.assign(k, k + T * kv_dim);
    if (!last) tr->v.assign(v, v + T * kv_dim);
    tr->prob.assign((size_t)H * T * n_keys, 0.0f);
  }

  // Per KV head: transposed keys (prompt from the cache, then the lookahead rows) and
  // value rows. Each prompt key/value is converted once for all G x T queries.
  pool.parallel_for_dynamic(KV, [&](int64_t g, int) {
    const KvHead& kh = cache_.head(l, (int)g);
    rows_[g].resize((size_t)n_keys * d);
    head_rows(cache_.type_k(), kh.k.data(), N, k, T, KV, (int)g, d, rows_[g].data());
    panel_[g].resize((size_t)d * n_pad);
    transpose_rows(rows_[g].data(), n_keys, d, n_pad, panel_[g].data());
    if (!last) head_rows(cache_.type_v(), kh.v.data(), N, v, T, KV, (int)g, d, rows_[g].data());
  });

  std::fill(out, out + T * q_dim, 0.0f);
  float* sc_l = scores_.data() + (size_t)l * H * N_;
  // One unit per query head (it owns its score row): 8 lookahead rows at a time.
  pool.parallel_for_dynamic(H, [&](int64_t h, int) {
    const int g = (int)h / G;
    const std::vector<int32_t>& kpos = cache_.head(l, g).pos;
    std::vector<float> s((size_t)8 * n_pad);
    float* sc = sc_l + h * N_;
    for (int64_t i0 = 0; i0 < T; i0 += 8) {
      const int m = (int)std::min<int64_t>(8, T - i0);
      const float* qp[8];
      const float* pp[8];
      float* op[8];
      for (int i = 0; i < m; ++i) {
        qp[i] = q + ((i0 + i) * H + h) * d;
        pp[i] = s.data() + (size_t)i * n_pad;
        op[i] = out + ((i0 + i) * H + h) * d;
      }
      score_rows(qp, m, panel_[g].data(), n_pad, d, s.data());
      for (int i = 0; i < m; ++i) {
        float* p = s.data() + (size_t)i * n_pad;
        const int64_t vis = N + i0 + i + 1;  // prompt + lookahead rows up to this one
        const int64_t j0 = first_visible(kpos, N, pos0_ + i0 + i, c_.window_of(l));
        masked_softmax_row(p, j0, vis, n_pad, att_scale);
        if (scored) axpy(1.0f / (float)T, p, sc, N);
        if (tr) std::copy(p, p + n_keys, tr->prob.data() + ((size_t)h * T + i0 + i) * n_keys);
      }
      if (!last) pv_rows(pp, m, n_keys, rows_[g].data(), d, op);
    }
  });
  if (tr && !last) tr->att.assign(out, out + T * q_dim);
}

}  // namespace

template <>
void lookahead_forward<float>(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                              ThreadPool& pool, std::vector<float>& scores,
                              LookaheadTrace<float>* trace) {
  const int64_t N = check_lookahead_fits(model, cache, mod);
  const ModelConfig& c = model.config();
  scores.assign((size_t)c.n_layer * c.n_head * N, 0.0f);
  if (trace) {
    trace->n_prompt = N;
    trace->pos0 = cache.n_past();
    trace->layers.assign(c.n_layer, {});
  }
  LookaheadHooks hooks(c, cache, mod, scores, trace, N);
  // The rows sit at positions N .. N+T-1 (after the prompt); the loss reads only the last
  // layer's probabilities, so the pass stops there.
  model.forward(HookedRows{mod.P().data(), mod.n_lookahead(), cache.n_past(), &hooks,
                           /*stop_after_last_attention=*/true},
                pool);
}

std::vector<float> lookahead_kv_scores(const Model& model, const KvCache& cache,
                                       const LookaheadModule& mod, ThreadPool& pool) {
  std::vector<float> s;
  lookahead_forward<float>(model, cache, mod, pool, s, nullptr);
  return s;
}

}  // namespace glimpse
