#include "ops/rope.h"

#include <cmath>

namespace glimpse {

void rope_cos_sin(const RopeParams& p, int64_t pos, float* cs) {
  const float theta_scale = std::pow(p.freq_base, -2.0f / (float)p.n_rot);
  float theta = (float)pos;
  for (int i = 0; i < p.n_rot / 2; ++i) {
    const float ff = p.freq_factors ? p.freq_factors[i] : 1.0f;
    const float angle = p.freq_scale * (theta / ff);
    cs[2 * i] = std::cos(angle);
    cs[2 * i + 1] = std::sin(angle);
    theta *= theta_scale;
  }
}

namespace {

// Pairs (a, b) per RopeStyle; the inverse negates sin (exact, so it is the transpose).
template <typename Real>
void rotate(const RopeParams& p, const float* cs, Real* x, int n_heads, int head_dim, bool inverse) {
  const int half = p.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    Real* v = x + (int64_t)h * head_dim;
    for (int i = 0; i < half; ++i) {
      const int a = p.style == RopeStyle::Norm ? 2 * i : i;
      const int b = p.style == RopeStyle::Norm ? 2 * i + 1 : i + half;
      const Real c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
      const Real x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

}  // namespace

void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim,
                bool inverse) {
  rotate(p, cs, x, n_heads, head_dim, inverse);
}

void rope_apply(const RopeParams& p, const float* cs, double* x, int n_heads, int head_dim,
                bool inverse) {
  rotate(p, cs, x, n_heads, head_dim, inverse);
}

}  // namespace glimpse
