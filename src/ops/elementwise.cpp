// Small per-row ops. silu_mul has a vector version (Highway, runtime dispatch) because its
// exp is the one op here the compiler cannot vectorize on its own; the rest are plain loops.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/elementwise.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstring>

#include "ops/elementwise.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]; exp's argument is capped at 88 (e^88 is
// still finite in f32) so that very negative gates give a tiny value instead of inf/inf.
void SiluMul(float* gate, const float* up, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  const auto one = hn::Set(df, 1.0f), cap = hn::Set(df, 88.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto g = hn::LoadU(df, gate + i);
    const auto e = hn::Exp(df, hn::Min(hn::Neg(g), cap));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + i)), df, gate + i);
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(std::fmin(-gate[i], 88.0f))) * up[i];
}

// gate[i] = table[f16 bits of gate[i]] * up[i] for -10 < gate[i] < 10 (0 below, gate[i] * up
// above): the f16 rounding in vectors where the CPU converts (F16C: round to nearest even,
// as the scalar path; Highway's emulation elsewhere rounds differently, so those targets take
// the scalar loop), the table lookup scalar.
void GeluMul(float* gate, const float* up, int64_t n, const float* table) {
  int64_t i = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  HWY_ALIGN hwy::float16_t h[hn::MaxLanes(df)];
  for (; i + N <= n; i += N) {
    hn::Store(hn::DemoteTo(dh, hn::LoadU(df, gate + i)), dh, h);
    for (int64_t j = 0; j < N; ++j) {
      const float x = gate[i + j];
      uint16_t bits;
      std::memcpy(&bits, &h[j], 2);
      const float g = x <= -10.0f ? 0.0f : x >= 10.0f ? x : table[bits];
      gate[i + j] = g * up[i + j];
    }
  }
#endif
  for (; i < n; ++i) {
    const float x = gate[i];
    const float g = x <= -10.0f ? 0.0f : x >= 10.0f ? x : table[f32_to_fp16(x)];
    gate[i] = g * up[i];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

namespace glimpse {

HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluMul);

namespace {
// GELU of every f16 value, rounded to f16, stored as f32: [65536] indexed by the f16 bits.
const float* gelu_f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(1 << 16);
    for (uint32_t b = 0; b < (1u << 16); ++b)
      t[b] = fp16_to_f32(f32_to_fp16(gelu_tanh_f32(fp16_to_f32((uint16_t)b))));
    return t;
  }();
  return table.data();
}
}  // namespace

float gelu_tanh_f32(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoef = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoef * x * x)));
}

void gelu_tanh_mul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluMul)(gate, up, n, gelu_f16_table());
}

void gelu_tanh_mul_ref(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    float g = x;
    if (x <= -10.0f) g = 0.0f;
    else if (x < 10.0f) g = fp16_to_f32(f32_to_fp16(gelu_tanh_f32(fp16_to_f32(f32_to_fp16(x)))));
    gate[i] = g * up[i];
  }
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (double)(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt((float)(sum / n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void silu_mul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n);
}

void silu_mul_ref(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void add_bias_rows(float* x, const float* b, int64_t n_rows, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) x[r * n + i] += b[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::fmax(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace glimpse
#endif  // HWY_ONCE
