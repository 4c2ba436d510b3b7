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

void rope_apply(const RopeParams& p, const float* cs, float* x, int n_heads, int head_dim) {
  const int half = p.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + (int64_t)h * head_dim;
    for (int i = 0; i < half; ++i) {
      const int a = p.style == RopeStyle::Norm ? 2 * i : i;
      const int b = p.style == RopeStyle::Norm ? 2 * i + 1 : i + half;
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

}  // namespace glimpse
