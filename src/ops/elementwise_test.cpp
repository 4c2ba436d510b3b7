// Row ops against double-precision formulas, at every ISA level this CPU runs (ops/isa.h).
#include "ops/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ops/isa.h"

namespace glimpse {
namespace {

float uni(std::mt19937& rng, float lo, float hi) {
  return lo + (float)((double)rng() / 4294967296.0) * (hi - lo);
}

TEST(Elementwise, RmsNormMatchesDoubleFormula) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::mt19937 rng(11);
    for (int64_t n : {1, 3, 7, 33, 129, 1001}) {
      for (float eps : {1e-5f, 1e-6f}) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " eps=" << eps);
        std::vector<float> x(n), w(n), y(n);
        for (auto& v : x) v = uni(rng, -3.0f, 3.0f);
        for (auto& v : w) v = uni(rng, 0.5f, 1.5f);
        rms_norm(x.data(), w.data(), y.data(), n, eps);
        double ss = 0;
        for (float v : x) ss += (double)v * v;
        const double scale = 1.0 / std::sqrt(ss / n + eps);
        for (int64_t i = 0; i < n; ++i) {
          const double want = x[i] * scale * w[i];
          EXPECT_NEAR(y[i], want, 2e-6 * std::fabs(want) + 1e-7) << i;
        }
        // In place (y aliases x) gives the same result.
        std::vector<float> xi = x;
        rms_norm(xi.data(), w.data(), xi.data(), n, eps);
        EXPECT_EQ(xi, y);
      }
    }
  }
}

TEST(Elementwise, RmsNormOfZerosIsZeroAndEpsMatters) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::vector<float> x(5, 0.0f), w(5, 1.0f), y(5, 1.0f);
    rms_norm(x.data(), w.data(), y.data(), 5, 1e-6f);
    for (float v : y) EXPECT_EQ(v, 0.0f);
    // Tiny inputs: eps dominates, y ~ x / sqrt(eps).
    std::vector<float> t(4, 1e-6f);
    rms_norm(t.data(), w.data(), y.data(), 4, 1e-2f);
    EXPECT_NEAR(y[0], 1e-6 / std::sqrt(1e-12 + 1e-2), 1e-11);
  }
}

TEST(Elementwise, SoftmaxSumsToOneAndMatchesDouble) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::mt19937 rng(12);
    for (int64_t n : {1, 2, 5, 33, 1000}) {
      for (float offset : {0.0f, 1000.0f, -1000.0f}) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " offset=" << offset);
        std::vector<float> x(n);
        for (auto& v : x) v = offset + uni(rng, -10.0f, 10.0f);
        std::vector<double> want(n);
        double mx = -1e300, sum = 0;
        for (float v : x) mx = std::max(mx, (double)v);
        for (int64_t i = 0; i < n; ++i) sum += (want[i] = std::exp((double)x[i] - mx));
        for (auto& v : want) v /= sum;
        softmax(x.data(), n);
        double total = 0;
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_TRUE(std::isfinite(x[i])) << i;
          EXPECT_GE(x[i], 0.0f);
          EXPECT_NEAR(x[i], want[i], 1e-6) << i;
          total += x[i];
        }
        EXPECT_NEAR(total, 1.0, 1e-6);
      }
    }
  }
}

TEST(Elementwise, SoftmaxMaskedEntriesAndExtremes) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    const float ninf = -std::numeric_limits<float>::infinity();
    std::vector<float> x = {ninf, 0.0f, ninf, 0.0f, ninf};
    softmax(x.data(), 5);
    EXPECT_EQ(x[0], 0.0f);
    EXPECT_EQ(x[2], 0.0f);
    EXPECT_EQ(x[4], 0.0f);
    EXPECT_FLOAT_EQ(x[1], 0.5f);
    EXPECT_FLOAT_EQ(x[3], 0.5f);
    // First element masked: the max must not come from it.
    std::vector<float> y = {ninf, 1.0f, 2.0f};
    softmax(y.data(), 3);
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_NEAR(y[2], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
    std::vector<float> big = {3e38f, 3e38f};
    softmax(big.data(), 2);
    EXPECT_FLOAT_EQ(big[0], 0.5f);
    EXPECT_FLOAT_EQ(big[1], 0.5f);
    float one = 42.0f;
    softmax(&one, 1);
    EXPECT_EQ(one, 1.0f);
    softmax(nullptr, 0);  // no-op
  }
}

TEST(Elementwise, SiluMulMatchesDouble) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::mt19937 rng(13);
    for (int64_t n : {1, 7, 15, 16, 17, 33, 257, 1536}) {
      std::vector<float> g(n), u(n);
      for (auto& v : g) v = uni(rng, -20.0f, 20.0f);
      for (auto& v : u) v = uni(rng, -2.0f, 2.0f);
      g[0] = 0.0f;
      if (n > 1) g[1] = -100.0f;  // exp overflow side: silu -> -0
      if (n > 20) g[18] = 100.0f, g[19] = -87.5f, g[20] = 1e-30f;
      // The vector kernel on a misaligned start (offset by one float) and the scalar reference.
      std::vector<float> buf(n + 1);
      std::copy(g.begin(), g.end(), buf.begin() + 1);
      float* gi_vec = buf.data() + 1;
      silu_mul(gi_vec, u.data(), n);
      std::vector<float> gi = g;
      silu_mul_ref(gi.data(), u.data(), n);
      double err = 0, ref = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double want = (double)g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
        ASSERT_TRUE(std::isfinite(gi_vec[i])) << i;
        EXPECT_NEAR(gi_vec[i], want, 1e-6 * std::fabs(want) + 1e-30) << i << " g=" << g[i];
        err += (gi_vec[i] - want) * (gi_vec[i] - want);
        ref += want * want;
      }
      EXPECT_LE(err, 1e-12 * ref) << "nMSE, n=" << n;
      for (int64_t i = 0; i < n; ++i) {
        const double want = (double)g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
        ASSERT_TRUE(std::isfinite(gi[i])) << i;
        EXPECT_NEAR(gi[i], want, 1e-6 * std::fabs(want) + 1e-30) << i << " g=" << g[i];
      }
    }
  }
}

TEST(Elementwise, GeluTanhMulMatchesReferenceAndFormula) {
  // The vector path gives the scalar reference's bits at every level; both are the tanh
  // GELU of x rounded to f16, rounded to f16 (|error| <= ~2^-10 relative + f16 input rounding).
  for (IsaLevel level : available_isa_levels()) {
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::mt19937 rng(21);
    for (int64_t n : {1, 7, 16, 33, 2048}) {
      std::vector<float> g(n), u(n);
      for (auto& v : g) v = uni(rng, -12.0f, 12.0f);
      for (auto& v : u) v = uni(rng, -2.0f, 2.0f);
      if (n > 3) g[0] = -10.0f, g[1] = 10.0f, g[2] = 0.0f, g[3] = -9.99f;
      std::vector<float> a = g, b = g;
      gelu_tanh_mul(a.data(), u.data(), n);
      gelu_tanh_mul_ref(b.data(), u.data(), n);
      EXPECT_EQ(a, b) << "n=" << n;
      for (int64_t i = 0; i < n; ++i) {
        const double x = g[i];
        double gelu = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        if (x <= -10.0) gelu = 0.0;
        const double want = gelu * u[i];
        EXPECT_NEAR(a[i], want, 2e-3 * std::fabs(x * u[i]) + 1e-6) << "x=" << x;
      }
    }
  }
}

TEST(Elementwise, AddInplaceAndBiasRows) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    std::vector<float> x = {1, 2, 3, 4, 5, 6}, y = {0.5f, -2, 0, 1, 1, -6};
    add_inplace(x.data(), y.data(), 6);
    EXPECT_EQ(x, (std::vector<float>{1.5f, 0, 3, 5, 6, 0}));
    std::vector<float> m = {0, 0, 0, 1, 1, 1}, b = {1, 2, 3};
    add_bias_rows(m.data(), b.data(), 2, 3);
    EXPECT_EQ(m, (std::vector<float>{1, 2, 3, 2, 3, 4}));
  }
}

}  // namespace
}  // namespace glimpse
