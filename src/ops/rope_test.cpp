// Rotary embedding against hand-computed double rotations; the inverse rotation and the
// double overload (lookahead backward and gradient check).
#include "ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace glimpse {
namespace {

std::vector<float> random_vec(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = (float)((double)rng() / 4294967296.0 * 4.0 - 2.0);
  return v;
}

std::vector<float> apply(const RopeParams& p, int64_t pos, std::vector<float> x, int n_heads,
                         int head_dim) {
  std::vector<float> cs(p.n_rot);
  rope_cos_sin(p, pos, cs.data());
  rope_apply(p, cs.data(), x.data(), n_heads, head_dim);
  return x;
}

// Double reference: pair i rotated by angle freq_scale * pos * base^(-2i/n_rot) / ff[i].
std::vector<double> reference(const RopeParams& p, int64_t pos, const std::vector<float>& x,
                              int n_heads, int head_dim) {
  std::vector<double> y(x.begin(), x.end());
  const int half = p.n_rot / 2;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < half; ++i) {
      const double ff = p.freq_factors ? p.freq_factors[i] : 1.0;
      const double ang =
          p.freq_scale * (double)pos * std::pow((double)p.freq_base, -2.0 * i / p.n_rot) / ff;
      const int a = h * head_dim + (p.style == RopeStyle::Norm ? 2 * i : i);
      const int b = h * head_dim + (p.style == RopeStyle::Norm ? 2 * i + 1 : i + half);
      y[a] = x[a] * std::cos(ang) - x[b] * std::sin(ang);
      y[b] = x[a] * std::sin(ang) + x[b] * std::cos(ang);
    }
  return y;
}

TEST(Rope, PositionZeroIsIdentity) {
  for (RopeStyle st : {RopeStyle::Norm, RopeStyle::Neox}) {
    RopeParams p;
    p.n_rot = 64;
    p.style = st;
    const auto x = random_vec(3 * 64, 1);
    EXPECT_EQ(apply(p, 0, x, 3, 64), x);
    std::vector<float> cs(64);
    rope_cos_sin(p, 0, cs.data());
    for (int i = 0; i < 32; ++i) {
      EXPECT_EQ(cs[2 * i], 1.0f);
      EXPECT_EQ(cs[2 * i + 1], 0.0f);
    }
  }
}

TEST(Rope, RotationPreservesPairNorms) {
  for (RopeStyle st : {RopeStyle::Norm, RopeStyle::Neox}) {
    RopeParams p;
    p.n_rot = 128;
    p.freq_base = 500000.0f;
    p.style = st;
    const int hd = 128, nh = 2;
    const auto x = random_vec(nh * hd, 2);
    for (int64_t pos : {1, 17, 4095, 131071}) {
      const auto y = apply(p, pos, x, nh, hd);
      for (int h = 0; h < nh; ++h)
        for (int i = 0; i < 64; ++i) {
          const int a = h * hd + (st == RopeStyle::Norm ? 2 * i : i);
          const int b = h * hd + (st == RopeStyle::Norm ? 2 * i + 1 : i + 64);
          const double n0 = std::hypot((double)x[a], (double)x[b]);
          const double n1 = std::hypot((double)y[a], (double)y[b]);
          EXPECT_NEAR(n1, n0, 1e-5 * n0 + 1e-7) << pos << " " << h << " " << i;
        }
    }
  }
}

void expect_matches(const std::vector<float>& got, const std::vector<double>& want,
                    const std::vector<float>& x, int n_rot_dims_per_head, int head_dim,
                    RopeStyle st, int n_rot) {
  (void)n_rot_dims_per_head;
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const int d = (int)(i % head_dim);
    if (d >= n_rot) {
      EXPECT_EQ(got[i], x[i]) << "dim " << d << " beyond n_rot must pass through";
    } else {
      EXPECT_NEAR(got[i], want[i], 2e-6) << "i=" << i << " style=" << (int)st;
    }
  }
}

TEST(Rope, NormAndNeoxLayoutsAgainstHandReference) {
  const int hd = 8;
  for (RopeStyle st : {RopeStyle::Norm, RopeStyle::Neox})
    for (int n_rot : {8, 4}) {
      SCOPED_TRACE(testing::Message() << "style=" << (int)st << " n_rot=" << n_rot);
      RopeParams p;
      p.n_rot = n_rot;
      p.style = st;
      const auto x = random_vec(2 * hd, 3);
      const auto y = apply(p, 5, x, 2, hd);
      expect_matches(y, reference(p, 5, x, 2, hd), x, n_rot, hd, st, n_rot);
    }
}

TEST(Rope, ExplicitPairsForPos5) {
  // head_dim 8, n_rot 4, base 10000: pair 0 angle 5, pair 1 angle 5 * 10000^(-1/2) = 0.05.
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const double a0 = 5.0, a1 = 0.05;
  RopeParams p;
  p.n_rot = 4;
  p.style = RopeStyle::Norm;
  auto y = apply(p, 5, x, 1, 8);
  EXPECT_NEAR(y[0], 1 * std::cos(a0) - 2 * std::sin(a0), 1e-6);
  EXPECT_NEAR(y[1], 1 * std::sin(a0) + 2 * std::cos(a0), 1e-6);
  EXPECT_NEAR(y[2], 3 * std::cos(a1) - 4 * std::sin(a1), 1e-6);
  EXPECT_NEAR(y[3], 3 * std::sin(a1) + 4 * std::cos(a1), 1e-6);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(y[i], x[i]);
  p.style = RopeStyle::Neox;  // pairs (0, 2) and (1, 3)
  y = apply(p, 5, x, 1, 8);
  EXPECT_NEAR(y[0], 1 * std::cos(a0) - 3 * std::sin(a0), 1e-6);
  EXPECT_NEAR(y[2], 1 * std::sin(a0) + 3 * std::cos(a0), 1e-6);
  EXPECT_NEAR(y[1], 2 * std::cos(a1) - 4 * std::sin(a1), 1e-6);
  EXPECT_NEAR(y[3], 2 * std::sin(a1) + 4 * std::cos(a1), 1e-6);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(y[i], x[i]);
}

TEST(Rope, FreqFactorsDivideAndFreqScaleMultipliesTheAngle) {
  const float ff[4] = {1.0f, 2.0f, 8.0f, 0.5f};
  for (RopeStyle st : {RopeStyle::Norm, RopeStyle::Neox}) {
    RopeParams p;
    p.n_rot = 8;
    p.freq_base = 500000.0f;
    p.freq_factors = ff;
    p.style = st;
    std::vector<float> cs(8);
    rope_cos_sin(p, 5, cs.data());
    for (int i = 0; i < 4; ++i) {
      const double ang = 5.0 * std::pow(500000.0, -2.0 * i / 8) / ff[i];
      EXPECT_NEAR(cs[2 * i], std::cos(ang), 1e-6) << i;
      EXPECT_NEAR(cs[2 * i + 1], std::sin(ang), 1e-6) << i;
    }
    const auto x = random_vec(8 * 3, 4);
    expect_matches(apply(p, 5, x, 3, 8), reference(p, 5, x, 3, 8), x, 8, 8, st, 8);
    // freq_scale 0.25 at position 20 gives the same angles as position 5.
    RopeParams q = p;
    q.freq_scale = 0.25f;
    std::vector<float> cs2(8);
    rope_cos_sin(q, 20, cs2.data());
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(cs2[i], cs[i], 1e-6) << i;
    expect_matches(apply(q, 20, x, 3, 8), reference(q, 20, x, 3, 8), x, 8, 8, st, 8);
  }
}

TEST(Rope, LargePositionsStayAccurate) {
  RopeParams p;
  p.n_rot = 64;
  p.style = RopeStyle::Neox;
  const auto x = random_vec(64, 5);
  for (int64_t pos : {100, 1000}) {
    const auto y = apply(p, pos, x, 1, 64);
    const auto want = reference(p, pos, x, 1, 64);
    // Angles are accumulated in f32 (as GGML): allow pos * few ulp of angle error.
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(y[i], want[i], 2e-7 * pos * 4) << pos << " " << i;
  }
}

TEST(Rope, InverseUndoesAndDoubleMatchesFloat) {
  for (RopeStyle st : {RopeStyle::Norm, RopeStyle::Neox}) {
    RopeParams p;
    p.n_rot = 16;
    p.style = st;
    const int hd = 24, nh = 3;  // dims past n_rot pass through
    const auto x = random_vec(nh * hd, 6);
    std::vector<float> cs(p.n_rot);
    rope_cos_sin(p, 37, cs.data());
    std::vector<float> y = x;
    rope_apply(p, cs.data(), y.data(), nh, hd);
    std::vector<double> yd(x.begin(), x.end());
    rope_apply(p, cs.data(), yd.data(), nh, hd);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], yd[i], 1e-6) << i;
    rope_apply(p, cs.data(), y.data(), nh, hd, /*inverse=*/true);
    rope_apply(p, cs.data(), yd.data(), nh, hd, /*inverse=*/true);
    // The inverse is the transpose; the f32 (cos, sin) pairs have norm 1 to ~1e-7 only.
    for (size_t i = 0; i < x.size(); ++i) {
      EXPECT_NEAR(y[i], x[i], 1e-6) << i;
      EXPECT_NEAR(yd[i], x[i], 1e-6) << i;
    }
  }
}

}  // namespace
}  // namespace glimpse
