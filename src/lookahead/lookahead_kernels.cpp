// Highway kernels for the lookahead rows (see lookahead_kernels.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "lookahead/lookahead_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lookahead/lookahead_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One vector-wide column chunk of the output at a time, 8 row accumulators, streaming v.
void LaPvRows(const float* const* p, int m, int64_t n, const float* v, int d, float* const* out) {
  const hn::ScalableTag<float> df;
  const int L = (int)hn::Lanes(df);
  int c0 = 0;
  for (; c0 + L <= d; c0 += L) {
    auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t j = 0; j < n; ++j) {
      const auto vv = hn::LoadU(df, v + (size_t)j * d + c0);
      a0 = hn::MulAdd(hn::Set(df, p[0][j]), vv, a0);
      if (m > 1) a1 = hn::MulAdd(hn::Set(df, p[1][j]), vv, a1);
      if (m > 2) a2 = hn::MulAdd(hn::Set(df, p[2][j]), vv, a2);
      if (m > 3) a3 = hn::MulAdd(hn::Set(df, p[3][j]), vv, a3);
      if (m > 4) a4 = hn::MulAdd(hn::Set(df, p[4][j]), vv, a4);
      if (m > 5) a5 = hn::MulAdd(hn::Set(df, p[5][j]), vv, a5);
      if (m > 6) a6 = hn::MulAdd(hn::Set(df, p[6][j]), vv, a6);
      if (m > 7) a7 = hn::MulAdd(hn::Set(df, p[7][j]), vv, a7);
    }
    auto add = [&](int i, decltype(a0) a) {
      hn::StoreU(hn::Add(hn::LoadU(df, out[i] + c0), a), df, out[i] + c0);
    };
    add(0, a0);
    if (m > 1) add(1, a1);
    if (m > 2) add(2, a2);
    if (m > 3) add(3, a3);
    if (m > 4) add(4, a4);
    if (m > 5) add(5, a5);
    if (m > 6) add(6, a6);
    if (m > 7) add(7, a7);
  }
  for (; c0 < d; ++c0)  // head_dim not a multiple of the vector width (tiny test models)
    for (int i = 0; i < m; ++i) {
      float acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += p[i][j] * v[(size_t)j * d + c0];
      out[i][c0] += acc;
    }
}

void LaAxpy(float a, const float* x, float* y, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = (int64_t)hn::Lanes(df);
  const auto va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

float LaDot(const float* x, const float* y, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t L = (int64_t)hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = a0;
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    a0 = hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, y + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, x + i + L), hn::LoadU(df, y + i + L), a1);
  }
  for (; i + L <= n; i += L) a0 = hn::MulAdd(hn::LoadU(df, x + i), hn::LoadU(df, y + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

void LaSoftmaxRow(float* x, int64_t n, float scale) {
  const hn::ScalableTag<float> df;
  const int64_t L = (int64_t)hn::Lanes(df);
  const auto vs = hn::Set(df, scale);
  auto vmax = hn::Set(df, -INFINITY);
  int64_t j = 0;
  for (; j + L <= n; j += L) vmax = hn::Max(vmax, hn::Mul(hn::LoadU(df, x + j), vs));
  float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (int64_t k = j; k < n; ++k) mx = std::max(mx, x[k] * scale);
  const auto vm = hn::Set(df, mx);
  auto vsum = hn::Zero(df);
  for (j = 0; j + L <= n; j += L) {
    const auto e = hn::Exp(df, hn::Sub(hn::Mul(hn::LoadU(df, x + j), vs), vm));
    hn::StoreU(e, df, x + j);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; j < n; ++j) sum += (x[j] = std::exp(x[j] * scale - mx));
  const auto vinv = hn::Set(df, 1.0f / sum);
  for (j = 0; j + L <= n; j += L) hn::StoreU(hn::Mul(hn::LoadU(df, x + j), vinv), df, x + j);
  for (; j < n; ++j) x[j] *= 1.0f / sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace glimpse::lookahead_detail {
HWY_EXPORT(LaPvRows);
HWY_EXPORT(LaAxpy);
HWY_EXPORT(LaDot);
HWY_EXPORT(LaSoftmaxRow);

void softmax_row(float* x, int64_t n, float scale) { HWY_DYNAMIC_DISPATCH(LaSoftmaxRow)(x, n, scale); }
void softmax_row(double* x, int64_t n, double scale) {
  double mx = -INFINITY, sum = 0;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[j] * scale);
  for (int64_t j = 0; j < n; ++j) sum += (x[j] = std::exp(x[j] * scale - mx));
  for (int64_t j = 0; j < n; ++j) x[j] /= sum;
}

void score_rows(const double* const* q, int m, const double* kt, int64_t n_pad, int d, double* s) {
  for (int i = 0; i < m; ++i)
    for (int64_t j = 0; j < n_pad; ++j) {
      double acc = 0;
      for (int c = 0; c < d; ++c) acc += q[i][c] * kt[(size_t)c * n_pad + j];
      s[(size_t)i * n_pad + j] = acc;
    }
}
void pv_rows(const float* const* p, int m, int64_t n, const float* v, int d, float* const* out) {
  HWY_DYNAMIC_DISPATCH(LaPvRows)(p, m, n, v, d, out);
}
void pv_rows(const double* const* p, int m, int64_t n, const double* v, int d, double* const* out) {
  for (int i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int c = 0; c < d; ++c) out[i][c] += p[i][j] * v[(size_t)j * d + c];
}
void axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(LaAxpy)(a, x, y, n); }
void axpy(double a, const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
float dot(const float* x, const float* y, int64_t n) { return HWY_DYNAMIC_DISPATCH(LaDot)(x, y, n); }
double dot(const double* x, const double* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}
void kv_to_real(KvType type, const uint8_t* src, int64_t n, int d, float* dst) {
  kv_rows_to_f32(type, src, n, d, dst);
}
void kv_to_real(KvType type, const uint8_t* src, int64_t n, int d, double* dst) {
  std::vector<float> row(d);  // exact: every stored value is an f32
  const size_t ld = kv_row_bytes(type, d);
  for (int64_t r = 0; r < n; ++r) {
    kv_rows_to_f32(type, src + r * ld, 1, d, row.data());
    std::copy(row.begin(), row.end(), dst + r * d);
  }
}

}  // namespace glimpse::lookahead_detail
#endif  // HWY_ONCE
