#include "lookahead/lookahead_backward.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kv/kv_scores.h"
#include "lookahead/lookahead_ops.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

using namespace lookahead_detail;

namespace {

// KL(h || s / S) of one row and, into ds (if given), w / rows times its gradient d/ds_j =
// (1 - h_j / p_j) / S (h sums to 1). h: a target row summing to 1.
template <typename Real>
double row_kl(const Real* s, double S, const double* h, int64_t N, double w, int64_t rows, Real* ds) {
  constexpr double kFloor = 1e-30;  // a probability that underflowed to 0
  double kl = 0;
  for (int64_t j = 0; j < N; ++j) {
    const double pj = std::max((double)s[j] / S, kFloor);
    if (h[j] > 0) kl += h[j] * (std::log(h[j]) - std::log(pj));
    if (ds) ds[j] += (Real)(w * (1.0 - h[j] / pj) / S / (double)rows);
  }
  return kl;
}

}  // namespace

template <typename Real>
double lookahead_loss(const std::vector<Real>& scores, const float* gt, int n_layer, int n_head,
                      int64_t N, std::vector<Real>* dscores, const LookaheadLoss& opt) {
  const int64_t all_rows = (int64_t)n_layer * n_head;
  if (dscores) dscores->assign((size_t)all_rows * N, Real(0));
  // The mean runs over the rows with a target: all of them, but for the sliding-window
  // layers of Gemma 3 (never evicted, so never scored or targeted).
  int64_t rows = 0;
  for (int64_t r = 0; r < all_rows; ++r) {
    const float* g = gt + r * N;
    rows += std::any_of(g, g + N, [](float x) { return x > 0; });
  }
  if (rows == 0) return 0;
  const int64_t k = std::min<int64_t>(opt.top_k, N);
  const bool topk = opt.topk_weight > 0 && k > 0;
  std::vector<double> h(N), hb;
  std::vector<int64_t> idx;
  double total = 0;
  for (int64_t r = 0; r < all_rows; ++r) {
    const Real* s = scores.data() + r * N;
    const float* g = gt + r * N;
    double S = 0, Gs = 0;
    for (int64_t j = 0; j < N; ++j) {
      S += (double)s[j];
      Gs += (double)g[j];
    }
    if (!(Gs > 0) || !(S > 0)) continue;  // no target mass: this row has no opinion
    for (int64_t j = 0; j < N; ++j) h[j] = g[j] / Gs;
    Real* ds = dscores ? dscores->data() + r * N : nullptr;
    total += row_kl(s, S, h.data(), N, 1.0, rows, ds);
    if (!topk) continue;
    // The target's top k entries (ties to the lower index), renormalised.
    idx.resize(N);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
      return h[a] > h[b] || (h[a] == h[b] && a < b);
    });
    hb.assign(N, 0.0);
    double B = 0;
    for (int64_t i = 0; i < k; ++i) B += h[idx[i]];
    if (!(B > 0)) continue;
    for (int64_t i = 0; i < k; ++i) hb[idx[i]] = h[idx[i]] / B;
    total += opt.topk_weight * row_kl(s, S, hb.data(), N, opt.topk_weight, rows, ds);
  }
  return total / (double)rows;
}

// Attention of one layer backwards: from datt [T][n_head][d] (the attention output's
// gradient; zero in the last layer) and, in a scored layer, dsc_l [n_head][N] (the score
// gradient) to dq [T][n_head][d], dk, dv [T][n_kv_head][d], before RoPE (the inverse
// rotation applied: rope and cs are the layer's). The prompt keys/values are constants read
// from the cache; keys outside a sliding window have p = 0 and get no gradient.
template <typename Real>
void attention_backward(const ModelConfig& c, const KvCache& cache, int l, bool last, int T,
                        const LookaheadLayerTrace<Real>& tr, const Buf<Real>& datt,
                        const Real* dsc_l, const RopeParams& rope, const std::vector<float>& cs,
                        Buf<Real>& dq, Buf<Real>& dk, Buf<Real>& dv, ThreadPool& pool) {
  const int d = c.head_dim, H = c.n_head, KV = c.n_kv_head, G = H / KV;
  const int q_dim = H * d, kv_dim = KV * d;
  const int64_t N = tr.n_prompt, n_keys = N + T, n_pad = padded(n_keys);
  const Real att_scale = (Real)c.attn_scale;
  std::vector<Buf<Real>> krows(KV), vpanel(KV);
  std::vector<Buf<Real>> dk_h(H), dv_h(H);  // per query head partials [T][d]
  // Attention. Per KV head: key rows [n_keys][d] (for dq) and values transposed
  // [d][n_pad] (for dp = datt . v).
  pool.parallel_for_dynamic(KV, [&](int64_t g, int) {
    const KvHead& kh = cache.head(l, (int)g);
    krows[g].resize((size_t)n_keys * d);
    head_rows(cache.type_k(), kh.k.data(), N, tr.k.data(), T, KV, (int)g, d, krows[g].data());
    if (!last) {
      Buf<Real> vr((size_t)n_keys * d);
      head_rows(cache.type_v(), kh.v.data(), N, tr.v.data(), T, KV, (int)g, d, vr.data());
      vpanel[g].resize((size_t)d * n_pad);
      transpose_rows(vr.data(), n_keys, d, n_pad, vpanel[g].data());
    }
  });
  dq.assign((size_t)T * q_dim, Real(0));
  pool.parallel_for_dynamic(H, [&](int64_t h, int) {
    const int g = (int)h / G;
    dk_h[h].assign((size_t)T * d, Real(0));
    dv_h[h].assign((size_t)T * d, Real(0));
    Buf<Real> ds((size_t)8 * n_pad);
    for (int i0 = 0; i0 < T; i0 += 8) {
      const int m = std::min(8, T - i0);
      const Real* ap[8];
      const Real* dsp[8];
      Real* dqp[8];
      for (int i = 0; i < m; ++i) {
        ap[i] = datt.data() + ((size_t)(i0 + i) * H + h) * d;
        dsp[i] = ds.data() + (size_t)i * n_pad;
        dqp[i] = dq.data() + ((size_t)(i0 + i) * H + h) * d;
      }
      // dp_ij = datt_i . v_j  (+ the score gradient on prompt keys: s_j = mean_i p_ij)
      if (!last)
        score_rows(ap, m, vpanel[g].data(), n_pad, d, ds.data());
      else
        std::fill(ds.begin(), ds.end(), Real(0));
      for (int i = 0; i < m; ++i) {
        Real* dp = ds.data() + (size_t)i * n_pad;
        const Real* p = tr.prob.data() + ((size_t)h * T + i0 + i) * n_keys;
        if (dsc_l) axpy(Real(1) / (Real)T, dsc_l + h * N, dp, N);
        // softmax: dz_j = p_j (dp_j - sum_k p_k dp_k); the logits are att_scale * q . k_j
        const Real pd = dot(p, dp, n_keys);
        for (int64_t j = 0; j < n_keys; ++j) dp[j] = att_scale * p[j] * (dp[j] - pd);
        std::fill(dp + n_keys, dp + n_pad, Real(0));
        // Lookahead keys and values are parameters' functions: dk_t, dv_t.
        const Real* qi = tr.q.data() + ((size_t)(i0 + i) * H + h) * d;
        for (int t = 0; t <= i0 + i; ++t) {
          axpy(dp[N + t], qi, dk_h[h].data() + (size_t)t * d, d);
          if (!last) axpy(p[N + t], ap[i], dv_h[h].data() + (size_t)t * d, d);
        }
      }
      pv_rows(dsp, m, n_keys, krows[g].data(), d, dqp);  // dq_i = sum_j dz_ij k_j
    }
  });
  dk.assign((size_t)T * kv_dim, Real(0));
  dv.assign((size_t)T * kv_dim, Real(0));
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < T; ++t) {
      const size_t o = ((size_t)t * KV + h / G) * d;
      axpy(Real(1), dk_h[h].data() + (size_t)t * d, dk.data() + o, d);
      axpy(Real(1), dv_h[h].data() + (size_t)t * d, dv.data() + o, d);
    }
  for (int t = 0; t < T; ++t) {
    const float* cst = cs.data() + (size_t)t * rope.n_rot;
    rope_apply(rope, cst, dq.data() + (size_t)t * q_dim, H, d, /*inverse=*/true);
    rope_apply(rope, cst, dk.data() + (size_t)t * kv_dim, KV, d, /*inverse=*/true);
  }
}

// Through a norm of `rows` rows of n values backwards: dx = d(norm)/dx^T dy (overwritten).
template <typename Real>
void norm_rows_backward(const Buf<Real>& x, const std::vector<float>& w, const Buf<Real>& rinv,
                        const Real* dy, int64_t rows, int64_t n, Buf<Real>& dx) {
  dx.assign((size_t)rows * n, Real(0));
  for (int64_t t = 0; t < rows; ++t)
    rms_norm_row_backward(x.data() + t * n, w.data(), rinv[t], dy + t * n, dx.data() + t * n, n);
}

template <typename Real>
void lookahead_backward(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                        const LookaheadTrace<Real>& trace, const std::vector<Real>& dscores,
                        LookaheadModule& grad, ThreadPool& pool) {
  const ModelConfig& c = model.config();
  const int T = mod.n_lookahead(), r = mod.rank();
  const int E = c.n_embd, d = c.head_dim, H = c.n_head, KV = c.n_kv_head, F = c.n_ff;
  const int q_dim = H * d, L = c.n_layer;
  const int64_t N = trace.n_prompt;
  const Real lscale = (Real)mod.scale();
  if ((int)trace.layers.size() != L || (int64_t)dscores.size() != (int64_t)L * H * N)
    fail("lookahead backward: trace or score gradient does not match the model");

  std::vector<float> cs((size_t)T * c.rope.n_rot), cs_swa((size_t)T * c.rope_swa.n_rot);
  for (int t = 0; t < T; ++t) {
    rope_cos_sin(c.rope, trace.pos0 + t, cs.data() + (size_t)t * c.rope.n_rot);
    if (c.swa_window > 0)
      rope_cos_sin(c.rope_swa, trace.pos0 + t, cs_swa.data() + (size_t)t * c.rope_swa.n_rot);
  }
  const bool gelu = c.ffn_act == FfnActivation::GeluTanh;

  Buf<Real> dx((size_t)T * E, Real(0));  // dloss / d(residual stream leaving layer l)
  Buf<Real> dxn((size_t)T * E), datt, dq, dk, dv, dhid, dgate, dup, dpre, dq_raw, dk_raw;

  for (int l = L - 1; l >= 0; --l) {
    const LayerWeights& w = model.layer(l);
    const LookaheadLayerTrace<Real>& tr = trace.layers[l];
    const bool last = l == L - 1;
    // dx_in += W^T dy (+ adapter), adapter gradients into grad.
    auto linear_back = [&](const WeightView& wv, int slot, const Buf<Real>& in, const Real* dy,
                           Buf<Real>& dx_in) {
      frozen_linear_t(wv, dy, T, dx_in.data(), pool);
      if (mod.has(l, slot))
        lora_backward(mod.lora(l, slot), r, lscale, in.data(), tr.a[slot].data(), dy, T,
                      dx_in.data(), grad.lora(l, slot));
    };
    // The gradient of a block output [T][E] before its post-norm, if the block has one.
    auto through_post_norm = [&](const std::vector<float>& w_post, const Buf<Real>& raw,
                                 const Buf<Real>& rinv) -> const Real* {
      if (w_post.empty()) return dx.data();
      norm_rows_backward(raw, w_post, rinv, dx.data(), T, E, dpre);
      return dpre.data();
    };

    datt.assign((size_t)T * q_dim, Real(0));
    if (!last) {
      // x_out = x_mid + [post-norm] down(act(gate) * up): dx passes through the residual.
      dhid.assign((size_t)T * F, Real(0));
      linear_back(w.w_down, (int)LoraSlot::Down, tr.hid, through_post_norm(w.ffn_post_norm, tr.f_raw, tr.rinv_f), dhid);
      dgate.resize((size_t)T * F);
      dup.resize((size_t)T * F);
      for (size_t i = 0; i < dhid.size(); ++i) {
        const Real g = tr.gate[i];
        if (gelu) {
          dup[i] = dhid[i] * gelu_tanh(g);
          dgate[i] = dhid[i] * tr.up[i] * gelu_tanh_grad(g);
        } else {
          const Real sg = sigmoid(g);
          dup[i] = dhid[i] * g * sg;
          dgate[i] = dhid[i] * tr.up[i] * sg * (Real(1) + g * (Real(1) - sg));
        }
      }
      std::fill(dxn.begin(), dxn.end(), Real(0));
      linear_back(w.w_gate, (int)LoraSlot::Gate, tr.xn2, dgate.data(), dxn);
      linear_back(w.w_up, (int)LoraSlot::Up, tr.xn2, dup.data(), dxn);
      for (int t = 0; t < T; ++t)
        rms_norm_row_backward(tr.x_mid.data() + (size_t)t * E, w.ffn_norm.data(), tr.rinv2[t],
                              dxn.data() + (size_t)t * E, dx.data() + (size_t)t * E, E);
      // x_mid = x_in + [post-norm] o(att)
      linear_back(w.wo, (int)LoraSlot::O, tr.att, through_post_norm(w.attn_post_norm, tr.o_raw, tr.rinv_o), datt);
    }

    const bool scored = scored_layer(c, l);
    attention_backward(c, cache, l, last, T, tr, datt, scored ? dscores.data() + (size_t)l * H * N : nullptr,
                       c.rope_of(l), c.is_swa(l) ? cs_swa : cs, dq, dk, dv, pool);
    if (c.qk_norm) {  // back through the per-head norms of q and k
      norm_rows_backward(tr.q_raw, w.q_norm, tr.rinv_q, dq.data(), (int64_t)T * H, d, dq_raw);
      norm_rows_backward(tr.k_raw, w.k_norm, tr.rinv_k, dk.data(), (int64_t)T * KV, d, dk_raw);
      dq.swap(dq_raw);
      dk.swap(dk_raw);
    }

    // q, k, v projections of the attention-normed input, then the norm.
    std::fill(dxn.begin(), dxn.end(), Real(0));
    linear_back(w.wq, (int)LoraSlot::Q, tr.xn1, dq.data(), dxn);
    linear_back(w.wk, (int)LoraSlot::K, tr.xn1, dk.data(), dxn);
    if (!last) linear_back(w.wv, (int)LoraSlot::V, tr.xn1, dv.data(), dxn);
    for (int t = 0; t < T; ++t)
      rms_norm_row_backward(tr.x_in.data() + (size_t)t * E, w.attn_norm.data(), tr.rinv1[t],
                            dxn.data() + (size_t)t * E, dx.data() + (size_t)t * E, E);
  }
  std::vector<float>& gP = grad.P();
  for (size_t i = 0; i < gP.size(); ++i) gP[i] += (float)dx[i];
}

template <typename Real>
double lookahead_loss_and_grad(const Model& model, const KvCache& cache,
                               const LookaheadModule& mod, const float* gt,
                               LookaheadModule* grad, ThreadPool& pool, const LookaheadLoss& opt) {
  const ModelConfig& c = model.config();
  std::vector<Real> scores, dscores;
  LookaheadTrace<Real> trace;
  lookahead_forward<Real>(model, cache, mod, pool, scores, grad ? &trace : nullptr);
  const int64_t N = (int64_t)scores.size() / ((int64_t)c.n_layer * c.n_head);
  const double loss =
      lookahead_loss<Real>(scores, gt, c.n_layer, c.n_head, N, grad ? &dscores : nullptr, opt);
  if (grad) lookahead_backward<Real>(model, cache, mod, trace, dscores, *grad, pool);
  return loss;
}

#define INSTANTIATE(Real)                                                                      \
  template double lookahead_loss<Real>(const std::vector<Real>&, const float*, int, int,       \
                                       int64_t, std::vector<Real>*, const LookaheadLoss&);     \
  template void lookahead_backward<Real>(const Model&, const KvCache&, const LookaheadModule&, \
                                         const LookaheadTrace<Real>&, const std::vector<Real>&, \
                                         LookaheadModule&, ThreadPool&);                       \
  template double lookahead_loss_and_grad<Real>(const Model&, const KvCache&,                  \
                                                const LookaheadModule&, const float*,          \
                                                LookaheadModule*, ThreadPool&,                 \
                                                const LookaheadLoss&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace glimpse
