// The test reference of the lookahead pass: a plain transformer layer sequence over the
// lookahead rows, templated on the float type and instantiated in double only, for the
// finite-difference gradient check and the float-vs-double agreement tests
// (lookahead_test.cpp). The engine's pass (float, lookahead_forward.cpp) runs the rows through
// the model's own layer code with hooks; this file mirrors it op for op in double.
#include "lookahead/lookahead_forward.h"

#include <cmath>

#include "kv/kv_scores.h"
#include "lookahead/lookahead_ops.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

using namespace lookahead_detail;

namespace {

// One layer's attention of the lookahead rows: over the layer's prompt keys/values in the
// cache (inside the window on a sliding-window layer) plus their own (causal among
// themselves). In a scored layer adds each query head's mean probability over the prompt to
// sc_l [n_head][N]; fills tr.att [T][n_head][d] (not in the last layer) and, with keep_prob,
// tr.prob [n_head][T][N_l + T].
template <typename Real>
void reference_attention(const ModelConfig& c, const KvCache& cache, int l, bool last, int T,
                         int32_t pos0, int64_t N, LookaheadLayerTrace<Real>& tr, bool keep_prob,
                         Real* sc_l, ThreadPool& pool) {
  const int d = c.head_dim, H = c.n_head, KV = c.n_kv_head, G = H / KV, q_dim = H * d;
  const int64_t N_l = cache.head(l, 0).size(), n_keys = N_l + T, n_pad = padded(n_keys);
  const Real att_scale = (Real)c.attn_scale;
  const bool scored = scored_layer(c, l);
  tr.n_prompt = N_l;
  std::vector<Buf<Real>> panel(KV), rows(KV);  // per KV head: keys^T [d][n_pad], values [n_keys][d]
  pool.parallel_for_dynamic(KV, [&](int64_t g, int) {
    const KvHead& kh = cache.head(l, (int)g);
    rows[g].resize((size_t)n_keys * d);
    head_rows(cache.type_k(), kh.k.data(), N_l, tr.k.data(), T, KV, (int)g, d, rows[g].data());
    panel[g].resize((size_t)d * n_pad);
    transpose_rows(rows[g].data(), n_keys, d, n_pad, panel[g].data());
    if (!last)
      head_rows(cache.type_v(), kh.v.data(), N_l, tr.v.data(), T, KV, (int)g, d, rows[g].data());
  });

  if (keep_prob) tr.prob.assign((size_t)H * T * n_keys, Real(0));
  tr.att.assign((size_t)T * q_dim, Real(0));
  // One unit per query head (it owns its score row): 8 lookahead rows at a time.
  pool.parallel_for_dynamic(H, [&](int64_t h, int) {
    const int g = (int)h / G;
    const std::vector<int32_t>& kpos = cache.head(l, g).pos;
    Buf<Real> s((size_t)8 * n_pad);
    Real* sc = sc_l + h * N;
    for (int i0 = 0; i0 < T; i0 += 8) {
      const int m = std::min(8, T - i0);
      const Real* qp[8];
      const Real* pp[8];
      Real* op[8];
      for (int i = 0; i < m; ++i) {
        qp[i] = tr.q.data() + ((size_t)(i0 + i) * H + h) * d;
        pp[i] = s.data() + (size_t)i * n_pad;
        op[i] = tr.att.data() + ((size_t)(i0 + i) * H + h) * d;
      }
      score_rows(qp, m, panel[g].data(), n_pad, d, s.data());
      for (int i = 0; i < m; ++i) {
        Real* p = s.data() + (size_t)i * n_pad;
        const int64_t vis = N_l + i0 + i + 1;  // prompt + lookahead rows up to this one
        const int64_t j0 = first_visible(kpos, N_l, pos0 + i0 + i, c.window_of(l));
        masked_softmax_row(p, j0, vis, n_pad, att_scale);
        if (scored) axpy(Real(1) / (Real)T, p, sc, N);
        if (keep_prob)
          std::copy(p, p + n_keys, tr.prob.data() + ((size_t)h * T + i0 + i) * n_keys);
      }
      if (!last) pv_rows(pp, m, n_keys, rows[g].data(), d, op);
    }
  });
}

// y = rms_norm(x) * w, row by row (rows of n values); rinv receives each row's 1/rms.
template <typename Real>
void norm_rows(const Real* x, const float* w, Real* y, int64_t rows, int64_t n, float eps,
               Buf<Real>& rinv) {
  rinv.resize(rows);
  for (int64_t t = 0; t < rows; ++t) rinv[t] = rms_norm_row(x + t * n, w, y + t * n, n, eps);
}

template <typename Real>
void reference_forward(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                       ThreadPool& pool, std::vector<Real>& scores, LookaheadTrace<Real>* trace) {
  const int64_t N = check_lookahead_fits(model, cache, mod);
  const ModelConfig& c = model.config();
  const int T = mod.n_lookahead(), r = mod.rank();
  const int E = c.n_embd, d = c.head_dim, H = c.n_head, KV = c.n_kv_head, F = c.n_ff;
  const int q_dim = H * d, kv_dim = KV * d, L = c.n_layer;
  const Real lscale = (Real)mod.scale();
  const int32_t pos0 = cache.n_past();

  scores.assign((size_t)L * H * N, Real(0));
  std::vector<LookaheadLayerTrace<Real>> local(trace ? 0 : 1);
  if (trace) {
    trace->n_prompt = N;
    trace->pos0 = pos0;
    trace->layers.assign(L, {});
  }

  // Rotation (cos, sin) pairs of the lookahead positions, global and sliding-window layers.
  std::vector<float> cs((size_t)T * c.rope.n_rot), cs_swa((size_t)T * c.rope_swa.n_rot);
  for (int t = 0; t < T; ++t) {
    rope_cos_sin(c.rope, pos0 + t, cs.data() + (size_t)t * c.rope.n_rot);
    if (c.swa_window > 0) rope_cos_sin(c.rope_swa, pos0 + t, cs_swa.data() + (size_t)t * c.rope_swa.n_rot);
  }

  Buf<Real> x(mod.P().begin(), mod.P().end());  // [T][E] residual stream
  Buf<Real> tmp((size_t)T * E);

  for (int l = 0; l < L; ++l) {
    const LayerWeights& w = model.layer(l);
    const bool last = l == L - 1;
    LookaheadLayerTrace<Real>& tr = trace ? trace->layers[l] : local[0];
    auto linear = [&](const WeightView& wv, const std::vector<float>& bias, int slot,
                      const Buf<Real>& in, Buf<Real>& out) {
      out.resize((size_t)T * wv.rows);
      frozen_linear(wv, in.data(), T, out.data(), pool);
      if (!bias.empty())
        for (int t = 0; t < T; ++t)
          for (int64_t o = 0; o < wv.rows; ++o) out[(size_t)t * wv.rows + o] += (Real)bias[o];
      if (mod.has(l, slot)) {
        tr.a[slot].resize((size_t)T * r);
        lora_forward(mod.lora(l, slot), r, lscale, in.data(), T, tr.a[slot].data(), out.data());
      }
    };
    // An output [T][E] through the post-norm w_post, if the block has one (raw/rinv kept).
    auto post_norm = [&](const std::vector<float>& w_post, Buf<Real>& y, Buf<Real>& raw, Buf<Real>& rinv) {
      if (w_post.empty()) return;
      raw = y;
      norm_rows(raw.data(), w_post.data(), y.data(), T, E, c.rms_eps, rinv);
    };

    // Attention block input.
    tr.x_in = x;
    tr.xn1.resize((size_t)T * E);
    norm_rows(x.data(), w.attn_norm.data(), tr.xn1.data(), T, E, c.rms_eps, tr.rinv1);
    linear(w.wq, w.bq, (int)LoraSlot::Q, tr.xn1, tr.q);
    linear(w.wk, w.bk, (int)LoraSlot::K, tr.xn1, tr.k);
    if (!last) linear(w.wv, w.bv, (int)LoraSlot::V, tr.xn1, tr.v);
    if (c.qk_norm) {  // per-head norms of q and k before RoPE
      tr.q_raw = tr.q;
      tr.k_raw = tr.k;
      norm_rows(tr.q_raw.data(), w.q_norm.data(), tr.q.data(), (int64_t)T * H, d, c.rms_eps, tr.rinv_q);
      norm_rows(tr.k_raw.data(), w.k_norm.data(), tr.k.data(), (int64_t)T * KV, d, c.rms_eps, tr.rinv_k);
    }
    const RopeParams& rope = c.rope_of(l);
    const std::vector<float>& cs_l = c.is_swa(l) ? cs_swa : cs;
    for (int t = 0; t < T; ++t) {
      const float* cst = cs_l.data() + (size_t)t * rope.n_rot;
      rope_apply(rope, cst, tr.q.data() + (size_t)t * q_dim, H, d);
      rope_apply(rope, cst, tr.k.data() + (size_t)t * kv_dim, KV, d);
    }

    reference_attention(c, cache, l, last, T, pos0, N, tr, trace != nullptr,
                        scores.data() + (size_t)l * H * N, pool);
    if (last) {  // the loss reads only the probabilities
      tr.att.clear();
      break;
    }

    // Output projection (and post-norm), residual, feed-forward (and post-norm), residual.
    linear(w.wo, {}, (int)LoraSlot::O, tr.att, tmp);
    post_norm(w.attn_post_norm, tmp, tr.o_raw, tr.rinv_o);
    tr.x_mid = tr.x_in;
    for (size_t i = 0; i < tmp.size(); ++i) tr.x_mid[i] += tmp[i];
    tr.xn2.resize((size_t)T * E);
    norm_rows(tr.x_mid.data(), w.ffn_norm.data(), tr.xn2.data(), T, E, c.rms_eps, tr.rinv2);
    linear(w.w_gate, {}, (int)LoraSlot::Gate, tr.xn2, tr.gate);
    linear(w.w_up, {}, (int)LoraSlot::Up, tr.xn2, tr.up);
    tr.hid.resize((size_t)T * F);
    const bool gelu = c.ffn_act == FfnActivation::GeluTanh;
    for (size_t i = 0; i < tr.hid.size(); ++i) {
      const Real g = tr.gate[i];
      tr.hid[i] = (gelu ? gelu_tanh(g) : g * sigmoid(g)) * tr.up[i];
    }
    linear(w.w_down, {}, (int)LoraSlot::Down, tr.hid, tmp);
    post_norm(w.ffn_post_norm, tmp, tr.f_raw, tr.rinv_f);
    x = tr.x_mid;
    for (size_t i = 0; i < tmp.size(); ++i) x[i] += tmp[i];
  }
}

}  // namespace

template <>
void lookahead_forward<double>(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                               ThreadPool& pool, std::vector<double>& scores,
                               LookaheadTrace<double>* trace) {
  reference_forward<double>(model, cache, mod, pool, scores, trace);
}

}  // namespace glimpse
