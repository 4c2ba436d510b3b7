#include "ops/transcode.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/isa.h"
#include "ops/matmul_int8.h"
#include "ops/quant.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

// rows x cols of random blocks of type t, their f16 scales set to finite values of the
// size real files have (random bytes elsewhere: every quant pattern occurs).
std::vector<uint8_t> random_blocks(GgmlType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(1e-4f, 2e-2f);
  std::vector<uint8_t> buf(ggml_row_bytes(t, cols) * rows);
  for (auto& b : buf) b = (uint8_t)rng();
  const size_t bb = ggml_row_bytes(t, t == GgmlType::Q4_K || t == GgmlType::Q6_K ? 256 : 32);
  for (size_t off = 0; off < buf.size(); off += bb) {
    auto put = [&](size_t at, float x) {
      const uint16_t h = f32_to_fp16(x);
      std::memcpy(&buf[off + at], &h, 2);
    };
    if (t == GgmlType::Q5_0) put(0, scale(rng));
    if (t == GgmlType::Q4_K) put(0, scale(rng)), put(2, scale(rng));
    if (t == GgmlType::Q6_K) put(208, scale(rng) / 8);
  }
  return buf;
}

std::vector<float> values(const WeightView& w) {
  std::vector<float> out(w.rows * w.cols);
  for (int64_t r = 0; r < w.rows; ++r) dequant_row_ref(w.type, w.row(r), &out[r * w.cols], w.cols);
  return out;
}

TEST(Transcode, Q5_0BecomesQ8_0Exactly) {
  const auto src = random_blocks(GgmlType::Q5_0, 7, 256, 1);
  const WeightView w = make_weight_view(GgmlType::Q5_0, src.data(), 7, 256);
  const WeightView v = transcode_for_int8(w);
  ASSERT_EQ(v.type, GgmlType::Q8_0);
  ASSERT_TRUE(v.data_storage);
  EXPECT_EQ(values(v), values(w));
}

TEST(Transcode, Q4_KBecomesQ4_1WithinScaleRounding) {
  const int64_t rows = 5, cols = 512;
  const auto src = random_blocks(GgmlType::Q4_K, rows, cols, 2);
  const WeightView w = make_weight_view(GgmlType::Q4_K, src.data(), rows, cols);
  const WeightView v = transcode_for_int8(w);
  ASSERT_EQ(v.type, GgmlType::Q4_1);
  const auto a = values(w), b = values(v);
  // x = (d sc) q - dmin m with both products rounded to f16: |error| <= 2^-11 (15 |d sc| +
  // |dmin m|) <= 2^-11 * 78 * max(d, dmin) * 63, plus f32 rounding.
  for (int64_t i = 0; i < rows * cols; ++i) {
    const auto* blk = reinterpret_cast<const BlockQ4_K*>(w.row(i / cols)) + (i % cols) / 256;
    const float big = std::max(fp16_to_f32(blk->d), fp16_to_f32(blk->dmin)) * 63.0f;
    ASSERT_NEAR(a[i], b[i], big * 78.0f / 2048.0f + 1e-6f) << i;
  }
  int exact = 0;
  for (int64_t i = 0; i < rows * cols; ++i) exact += a[i] == b[i];
  EXPECT_GT(exact, 0);  // the nibbles are kept in place (zero-scale sub-blocks are exact)
}

TEST(Transcode, Q6_KBecomesQ8_0WithinHalfAStep) {
  const int64_t rows = 3, cols = 256;
  const auto src = random_blocks(GgmlType::Q6_K, rows, cols, 3);
  const WeightView w = make_weight_view(GgmlType::Q6_K, src.data(), rows, cols);
  const WeightView v = transcode_for_int8(w);
  ASSERT_EQ(v.type, GgmlType::Q8_0);
  const auto a = values(w), b = values(v);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t blk = 0; blk < cols / 32; ++blk) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(a[r * cols + blk * 32 + j]));
      // Half a step from rounding q, plus |q| <= 127 times the f16 rounding of the step.
      const float step = amax / 127.0f, bound = step * (0.5f + 127.0f / 2048.0f) + 1e-7f;
      for (int j = 0; j < 32; ++j) {
        const int64_t i = r * cols + blk * 32 + j;
        ASSERT_NEAR(a[i], b[i], bound) << i;
      }
    }
}

TEST(Transcode, TypesWithKernelsStayAsTheyAre) {
  const auto src = random_blocks(GgmlType::Q8_0, 2, 64, 4);
  const WeightView w = make_weight_view(GgmlType::Q8_0, src.data(), 2, 64);
  const WeightView v = transcode_for_int8(w);
  EXPECT_EQ(v.data, w.data);
  EXPECT_FALSE(v.data_storage);
  EXPECT_EQ(int8_transcode_type(GgmlType::F32), GgmlType::F32);
  EXPECT_EQ(int8_transcode_type(GgmlType::Q4_1), GgmlType::Q4_1);
}

}  // namespace
}  // namespace glimpse

namespace glimpse {
namespace {

// Packed re-encoded weights keep no second copy of their blocks (data is null): the int8
// kernels, the f32 path at a level without them, matmul_ref and weight_row all read the
// interleaved copy and agree.
TEST(Transcode, PackedCopyIsTheOnlyStorageAndEveryPathReadsIt) {
  if (!int8mm::cpu_has_kernels()) GTEST_SKIP() << "no int8 kernels at this level";
  const int64_t rows = 40, cols = 512, T = 3;
  const auto src = random_blocks(GgmlType::Q6_K, rows, cols, 5);
  const WeightView w = pack_weights(make_weight_view(GgmlType::Q6_K, src.data(), rows, cols), false);
  ASSERT_EQ(w.type, GgmlType::Q8_0);
  ASSERT_NE(w.packed, nullptr);
  EXPECT_EQ(w.data, nullptr);
  EXPECT_FALSE(w.data_storage);
  const WeightView re = transcode_for_int8(make_weight_view(GgmlType::Q6_K, src.data(), rows, cols));
  std::vector<float> row(cols), want(cols);
  for (int64_t r = 0; r < rows; ++r) {
    weight_row(w, r, row.data());
    dequant_row_ref(re.type, re.row(r), want.data(), cols);
    ASSERT_EQ(row, want) << r;
  }
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(T * cols);
  for (auto& v : x) v = u(rng);
  ThreadPool pool(2);
  std::vector<float> y_int8(T * rows), y_f32(T * rows), y_ref(T * rows), y_ref_re(T * rows);
  matmul(w, x.data(), T, y_int8.data(), pool);
  {
    IsaLevelScope scalar(IsaLevel::kScalar);
    matmul(w, x.data(), T, y_f32.data(), pool);
  }
  matmul_ref(w, x.data(), T, y_ref.data());
  matmul_ref(re, x.data(), T, y_ref_re.data());
  EXPECT_EQ(y_ref, y_ref_re);
  // Both quantize x to 8 bits in 32-blocks and differ only in summation order. (Against the
  // unquantized matmul_ref the 8-bit activations are the difference; the matmul tests bound
  // that for every type.)
  for (int64_t i = 0; i < T * rows; ++i)
    EXPECT_NEAR(y_int8[i], y_f32[i], 1e-4f * (1 + std::fabs(y_ref[i]))) << i;
}

}  // namespace
}  // namespace glimpse
