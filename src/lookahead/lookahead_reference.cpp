// The test reference of the lookahead pass: a plain transformer layer sequence over the
// lookahead rows, templated on the float type and instantiated in double only, for the
// finite-difference gradient check and the float-vs-double agreement tests
// (lookahead_test.cpp). The engine's pass (float, lookahead_forward.cpp) runs the rows through
// the model's own layer code with hooks; this file mirrors it op for op in double.
#include "lookahead/lookahead_forward.h"

#include <cmath>

#include "lookahead/lookahead_ops.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

using namespace lookahead_detail;

namespace {

// One layer's attention of the lookahead rows: over the prompt keys/values in the cache
// plus their own (causal among themselves). Adds each query head's mean probability over
// the prompt to sc_l [n_head][N]; fills tr.att [T][n_head][d] (not in the last layer) and,
// with keep_prob, tr.prob [n_head][T][N + T].
template <typename Real>
void reference_attention(const ModelConfig& c, const KvCache& cache, int l, bool last, int T,
                         int64_t N, LookaheadLayerTrace<Real>& tr, bool keep_prob, Real* sc_l,
                         ThreadPool& pool) {
  const int d = c.head_dim, H = c.n_head, KV = c.n_kv_head, G = H / KV, q_dim = H * d;
  const int64_t n_keys = N + T, n_pad = padded(n_keys);
  const Real att_scale = (Real)(1.0f / std::sqrt((float)d));
  std::vector<Buf<Real>> panel(KV), rows(KV);  // per KV head: keys^T [d][n_pad], values [n_keys][d]
  // Per KV head: transposed keys (prompt from the cache, then the lookahead rows) and
  // value rows. Each prompt key/value is converted once for all G x T queries.
  pool.parallel_for_dynamic(KV, [&](int64_t g, int) {
    const KvHead& kh = cache.head(l, (int)g);
    rows[g].resize((size_t)n_keys * d);
    head_rows(cache.type_k(), kh.k.data(), N, tr.k.data(), T, KV, (int)g, d, rows[g].data());
    panel[g].resize((size_t)d * n_pad);
    transpose_rows(rows[g].data(), n_keys, d, n_pad, panel[g].data());
    if (!last)
      head_rows(cache.type_v(), kh.v.data(), N, tr.v.data(), T, KV, (int)g, d, rows[g].data());
  });

  if (keep_prob) tr.prob.assign((size_t)H * T * n_keys, Real(0));
  tr.att.assign((size_t)T * q_dim, Real(0));
  // One unit per query head (it owns its score row): 8 lookahead rows at a time.
  pool.parallel_for_dynamic(H, [&](int64_t h, int) {
    const int g = (int)h / G;
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
        const int64_t vis = N + i0 + i + 1;  // prompt + lookahead rows up to this one
        softmax_row(p, vis, att_scale);
        std::fill(p + vis, p + n_pad, Real(0));
        axpy(Real(1) / (Real)T, p, sc, N);
        if (keep_prob)
          std::copy(p, p + n_keys, tr.prob.data() + ((size_t)h * T + i0 + i) * n_keys);
      }
      if (!last) pv_rows(pp, m, n_keys, rows[g].data(), d, op);
    }
  });
}

template <typename Real>
void reference_forward(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                       ThreadPool& pool, std::vector<Real>& scores, LookaheadTrace<Real>* trace) {
  check_lookahead_fits(model, cache, mod);
  const ModelConfig& c = model.config();
  const int T = mod.n_lookahead(), r = mod.rank();
  const int E = c.n_embd, d = c.head_dim, H = c.n_head, KV = c.n_kv_head, F = c.n_ff;
  const int q_dim = H * d, kv_dim = KV * d, L = c.n_layer;
  const int64_t N = cache.head(0, 0).size();
  const Real lscale = (Real)mod.scale();
  const int32_t pos0 = cache.n_past();

  scores.assign((size_t)L * H * N, Real(0));
  std::vector<LookaheadLayerTrace<Real>> local(trace ? 0 : 1);
  if (trace) {
    trace->n_prompt = N;
    trace->pos0 = pos0;
    trace->layers.assign(L, {});
  }

  // Rotation (cos, sin) pairs of the lookahead positions.
  std::vector<float> cs((size_t)T * c.rope.n_rot);
  for (int t = 0; t < T; ++t) rope_cos_sin(c.rope, pos0 + t, cs.data() + (size_t)t * c.rope.n_rot);

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

    // Attention block input.
    tr.x_in = x;
    tr.xn1.resize((size_t)T * E);
    tr.rinv1.resize(T);
    for (int t = 0; t < T; ++t)
      tr.rinv1[t] = rms_norm_row(x.data() + (size_t)t * E, w.attn_norm.data(),
                                 tr.xn1.data() + (size_t)t * E, E, c.rms_eps);
    linear(w.wq, w.bq, (int)LoraSlot::Q, tr.xn1, tr.q);
    linear(w.wk, w.bk, (int)LoraSlot::K, tr.xn1, tr.k);
    if (!last) linear(w.wv, w.bv, (int)LoraSlot::V, tr.xn1, tr.v);
    for (int t = 0; t < T; ++t) {
      const float* cst = cs.data() + (size_t)t * c.rope.n_rot;
      rope_apply(c.rope, cst, tr.q.data() + (size_t)t * q_dim, H, d);
      rope_apply(c.rope, cst, tr.k.data() + (size_t)t * kv_dim, KV, d);
    }

    reference_attention(c, cache, l, last, T, N, tr, trace != nullptr,
                        scores.data() + (size_t)l * H * N, pool);
    if (last) {  // the loss reads only the probabilities
      tr.att.clear();
      break;
    }

    // Output projection, residual, feed-forward.
    linear(w.wo, {}, (int)LoraSlot::O, tr.att, tmp);
    tr.x_mid = tr.x_in;
    for (size_t i = 0; i < tmp.size(); ++i) tr.x_mid[i] += tmp[i];
    tr.xn2.resize((size_t)T * E);
    tr.rinv2.resize(T);
    for (int t = 0; t < T; ++t)
      tr.rinv2[t] = rms_norm_row(tr.x_mid.data() + (size_t)t * E, w.ffn_norm.data(),
                                 tr.xn2.data() + (size_t)t * E, E, c.rms_eps);
    linear(w.w_gate, {}, (int)LoraSlot::Gate, tr.xn2, tr.gate);
    linear(w.w_up, {}, (int)LoraSlot::Up, tr.xn2, tr.up);
    tr.hid.resize((size_t)T * F);
    for (size_t i = 0; i < tr.hid.size(); ++i)
      tr.hid[i] = tr.gate[i] * sigmoid(tr.gate[i]) * tr.up[i];
    linear(w.w_down, {}, (int)LoraSlot::Down, tr.hid, tmp);
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
