// Row-wise building blocks of the lookahead pass and their derivatives, templated on the
// float type (float: the engine's pass hooks and training backward; double: the reference
// pass and gradient checks). T is always the number of lookahead rows (32 by default), so
// everything here is small except the frozen linears.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/kv_types.h"
#include "lookahead/lookahead_kernels.h"
#include "lookahead/lookahead_module.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "util/thread_pool.h"

namespace glimpse::lookahead_detail {

template <typename Real>
using Buf = std::vector<Real>;

// y [T][rows] = W x, x [T][cols], for the double reference pass: dequantized rows, double
// accumulation (the float pass runs the model's own matmul).
inline void frozen_linear(const WeightView& w, const double* x, int64_t T, double* y, ThreadPool& pool) {
  pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> row(w.cols);
    for (int64_t r = r0; r < r1; ++r) {
      weight_row(w, r, row.data());
      for (int64_t t = 0; t < T; ++t) {
        double acc = 0;
        const double* xt = x + t * w.cols;
        for (int64_t i = 0; i < w.cols; ++i) acc += (double)row[i] * xt[i];
        y[t * w.rows + r] = acc;
      }
    }
  });
}

// dx [T][cols] += W^T dy, dy [T][rows]. Rows are dequantized one at a time (no f32 copy of
// the weights is kept). The rows are cut into a fixed number of chunks, each with its own
// partial dx, summed in chunk order: the result does not depend on the thread count.
template <typename Real>
void frozen_linear_t(const WeightView& w, const Real* dy, int64_t T, Real* dx, ThreadPool& pool) {
  constexpr int64_t kChunks = 16;
  const int64_t n_chunks = std::min<int64_t>(kChunks, w.rows);
  std::vector<Buf<Real>> part(n_chunks);
  pool.parallel_for_dynamic(n_chunks, [&](int64_t ci, int) {
    const int64_t r0 = w.rows * ci / n_chunks, r1 = w.rows * (ci + 1) / n_chunks;
    Buf<Real>& p = part[ci];
    p.assign((size_t)T * w.cols, Real(0));
    std::vector<float> rowf(w.cols);
    Buf<Real> row(w.cols);
    for (int64_t r = r0; r < r1; ++r) {
      weight_row(w, r, rowf.data());
      std::copy(rowf.begin(), rowf.end(), row.begin());
      for (int64_t t = 0; t < T; ++t) {
        const Real g = dy[t * w.rows + r];
        if (g != Real(0)) axpy(g, row.data(), p.data() + t * w.cols, w.cols);
      }
    }
  });
  for (const Buf<Real>& p : part) axpy(Real(1), p.data(), dx, (int64_t)p.size());
}

// Adapter forward: a [T][rank] = A x; y [T][out] += scale * B a. Both as vector loops
// (dot along A's rows, axpy along B's columns): the engine's panel matmul is slower at
// these shapes (rank-sized rows or columns).
template <typename Real>
void lora_forward(const LoraAdapter& ad, int rank, Real scale, const Real* x, int64_t T, Real* a,
                  Real* y) {
  Buf<Real> Ar(ad.A.begin(), ad.A.end());
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < rank; ++k)
      a[t * rank + k] = dot(Ar.data() + (size_t)k * ad.in, x + t * ad.in, ad.in);
  Buf<Real> Bt((size_t)rank * ad.out);  // B^T [rank][out]
  for (int o = 0; o < ad.out; ++o)
    for (int k = 0; k < rank; ++k) Bt[(size_t)k * ad.out + o] = ad.B[(size_t)o * rank + k];
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < rank; ++k)
      axpy(scale * a[t * rank + k], Bt.data() + (size_t)k * ad.out, y + t * ad.out, ad.out);
}

// Adapter backward for y = W x + scale * B (A x): adds dA, dB to g and A^T da to dx.
template <typename Real>
void lora_backward(const LoraAdapter& ad, int rank, Real scale, const Real* x, const Real* a,
                   const Real* dy, int64_t T, Real* dx, LoraAdapter& g) {
  // da [T][rank] = scale * B^T dy;  dB[o][k] += scale * sum_t dy[t][o] a[t][k]
  Buf<Real> da((size_t)T * rank, Real(0));
  Buf<Real> dB((size_t)ad.out * rank, Real(0));
  for (int64_t t = 0; t < T; ++t) {
    const Real* dyt = dy + t * ad.out;
    const Real* at = a + t * rank;
    Real* dat = da.data() + t * rank;
    for (int o = 0; o < ad.out; ++o) {
      const Real go = dyt[o];
      if (go == Real(0)) continue;
      const float* b = ad.B.data() + (size_t)o * rank;
      Real* db = dB.data() + (size_t)o * rank;
      for (int k = 0; k < rank; ++k) {
        dat[k] += scale * (Real)b[k] * go;
        db[k] += scale * go * at[k];
      }
    }
  }
  for (size_t i = 0; i < dB.size(); ++i) g.B[i] += (float)dB[i];
  // dA[k][:] += sum_t da[t][k] x[t][:];  dx[t][:] += sum_k da[t][k] A[k][:]
  Buf<Real> Ar(ad.A.begin(), ad.A.end());
  Buf<Real> dA_row(ad.in);
  for (int k = 0; k < rank; ++k) {
    std::fill(dA_row.begin(), dA_row.end(), Real(0));
    for (int64_t t = 0; t < T; ++t) {
      const Real c = da[t * rank + k];
      axpy(c, x + t * ad.in, dA_row.data(), ad.in);
      axpy(c, Ar.data() + (size_t)k * ad.in, dx + t * ad.in, ad.in);
    }
    float* gA = g.A.data() + (size_t)k * ad.in;
    for (int i = 0; i < ad.in; ++i) gA[i] += (float)dA_row[i];
  }
}

// RMSNorm of one row: y = x * rinv * w, rinv = 1 / sqrt(mean(x^2) + eps) (sum in double).
template <typename Real>
Real rms_norm_row(const Real* x, const float* w, Real* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i];
  const Real rinv = (Real)(1.0 / std::sqrt(ss / (double)n + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * rinv * (Real)w[i];
  return rinv;
}

// dx += d(rms_norm)/dx^T dy:  dx_i += rinv * w_i dy_i - x_i * rinv^3 / n * sum_k x_k w_k dy_k
template <typename Real>
void rms_norm_row_backward(const Real* x, const float* w, Real rinv, const Real* dy, Real* dx,
                           int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)x[i] * w[i] * dy[i];
  const Real c = (Real)(s * (double)rinv * rinv * rinv / (double)n);
  for (int64_t i = 0; i < n; ++i) dx[i] += rinv * (Real)w[i] * dy[i] - x[i] * c;
}

template <typename Real>
Real sigmoid(Real g) { return Real(1) / (Real(1) + std::exp(-g)); }

// GELU in the tanh form, and its derivative. (The engine's kernel rounds GELU through an
// f16 table, ops/elementwise.h; the reference pass and every derivative use the exact
// function.)
template <typename Real>
Real gelu_tanh(Real x) {
  const Real k = (Real)0.79788456080286535587989211986876, c = (Real)0.044715;
  return Real(0.5) * x * (Real(1) + std::tanh(k * x * (Real(1) + c * x * x)));
}
template <typename Real>
Real gelu_tanh_grad(Real x) {
  const Real k = (Real)0.79788456080286535587989211986876, c = (Real)0.044715;
  const Real th = std::tanh(k * x * (Real(1) + c * x * x));
  return Real(0.5) * (Real(1) + th) + Real(0.5) * x * (Real(1) - th * th) * k * (Real(1) + Real(3) * c * x * x);
}

}  // namespace glimpse::lookahead_detail

namespace glimpse::lookahead_detail {

// Rows [n_keys][d] of one KV head: the N prompt entries from the cache (rows stored as
// `type`) followed by the T lookahead entries (la: [T][n_kv_head][d], head g).
template <typename Real>
void head_rows(KvType type, const uint8_t* prompt, int64_t N, const Real* la, int64_t T,
               int n_kv_head, int g, int d, Real* rows) {
  kv_to_real(type, prompt, N, d, rows);
  for (int64_t t = 0; t < T; ++t)
    std::copy(la + ((size_t)t * n_kv_head + g) * d, la + ((size_t)t * n_kv_head + g + 1) * d,
              rows + (N + t) * d);
}

// First of a layer's n prompt entries (ascending original positions `pos`) that a query at
// pos_q sees through a sliding window of `window` keys counting itself (0: all): the
// entries with pos > pos_q - window. Lookahead rows see each other (T < window is checked).
inline int64_t first_visible(const std::vector<int32_t>& pos, int64_t n, int64_t pos_q, int window) {
  if (window <= 0) return 0;
  const int64_t lo = pos_q - window;
  return std::upper_bound(pos.begin(), pos.begin() + n, lo,
                          [](int64_t a, int32_t b) { return a < (int64_t)b; }) - pos.begin();
}

// Softmax of row p over its visible keys [j0, vis) (logits scaled); zero elsewhere up to n_pad.
template <typename Real>
void masked_softmax_row(Real* p, int64_t j0, int64_t vis, int64_t n_pad, Real scale) {
  softmax_row(p + j0, vis - j0, scale);
  std::fill(p, p + j0, Real(0));
  std::fill(p + vis, p + n_pad, Real(0));
}

// 1/rms of the rows of n values of x [rows][n] (sum in double), as the backward passes of the
// norms need them.
template <typename Real>
void inv_rms_rows(const Real* x, int64_t rows, int64_t n, float eps, std::vector<Real>& out) {
  out.resize(rows);
  for (int64_t t = 0; t < rows; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += (double)x[t * n + i] * x[t * n + i];
    out[t] = (Real)(1.0 / std::sqrt(ss / (double)n + eps));
  }
}

// panel [d][n_pad] = rows^T, padding columns zero.
template <typename Real>
void transpose_rows(const Real* rows, int64_t n, int d, int64_t n_pad, Real* panel) {
  std::fill(panel, panel + (size_t)d * n_pad, Real(0));
  for (int64_t j0 = 0; j0 < n; j0 += 16) {  // 16 x d tiles stay in L1 on both sides
    const int64_t j1 = std::min(n, j0 + 16);
    for (int c = 0; c < d; ++c)
      for (int64_t j = j0; j < j1; ++j) panel[(size_t)c * n_pad + j] = rows[j * d + c];
  }
}

}  // namespace glimpse::lookahead_detail
