// matmul (panel GEMM over the thread pool) against matmul_ref (dequant_row_ref + double
// accumulation) for every supported weight type at awkward shapes.
//
// Tolerances. For quantized weights matmul multiplies activations rounded to 8 bits per
// 32-element block (scale d = amax/127 stored as f16, as GGML's q8_0). Checks:
//   * against matmul_ref on activations quantized the same way here, per element:
//     |y - yref| <= 1e-5 * sum_k |w_k x_k| (only f32 vs double accumulation differs);
//   * against matmul_ref on the raw activations, per element: the rounding bound
//     |y - yref| <= sum_k |w_k| * 0.6 * d_k (|x' - x| <= d/2 + 127 * |f16(d) - d|) + the above;
//   * normalised MSE sum(y-yref)^2 / sum(yref^2) <= 1e-4 over all shapes of a type (the
//     8-bit rounding noise of uniform activations is ~1.5e-5 of their power; a single
//     output close to zero makes a per-output ratio meaningless, so it is pooled).
// F32/F16/BF16 weights see the activations unchanged: the per-element accumulation bound
// and pooled normalised MSE <= 1e-6.
// Q4_0/Q4_1/Q8_0 on CPUs with AVX-512 VNNI or AVX2 take the integer path; MatmulInt8 below
// holds it to its scalar definition bit for bit and to a much tighter bound (nMSE <= 1e-12).
#include "ops/matmul.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "ops/isa.h"
#include "ops/matmul_int8.h"
#include "ops/quant.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

// Uniform in [-1, 1) from the raw generator output (portable across standard libraries).
float uni(std::mt19937& rng) { return (float)((double)rng() / 4294967296.0 * 2.0 - 1.0); }

std::vector<int> f16_fields(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: return {0};
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K:
      return {0, 2};
    case GgmlType::Q6_K: return {208};
    default: return {};
  }
}

// rows x cols weights of type t with random quants and modest finite scales.
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const size_t row_bytes = ggml_row_bytes(t, cols);
  std::vector<uint8_t> w(rows * row_bytes + 64);
  if (t == GgmlType::F32) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = uni(rng);
      std::memcpy(&w[i * 4], &v, 4);
    }
  } else if (t == GgmlType::F16 || t == GgmlType::BF16) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = uni(rng);
      const uint16_t hv = t == GgmlType::F16 ? f32_to_fp16(v) : f32_to_bf16(v);
      std::memcpy(&w[i * 2], &hv, 2);
    }
  } else {
    const GgmlTypeInfo* info = ggml_type_info((uint32_t)t);
    for (auto& b : w) b = (uint8_t)rng();
    const int64_t nb = rows * cols / info->block_elems;
    for (int64_t i = 0; i < nb; ++i)
      for (int off : f16_fields(t)) {
        const uint16_t hv = f32_to_fp16(uni(rng) * 0.05f);
        std::memcpy(&w[i * info->block_bytes + off], &hv, 2);
      }
  }
  return w;
}

// GGML q8_0 activation rounding: d = amax/127, q = round(x/d), x' = q * f16(d).
std::vector<float> quantize_q8(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const float dh = fp16_to_f32(f32_to_fp16(d));
    for (int j = 0; j < 32; ++j) out[b + j] = std::round(x[b + j] * id) * dh;
  }
  return out;
}

bool is_plain(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16;
}

struct Stats {
  double num = 0, den = 0;  // sum (y - yref)^2, sum yref^2
  double worst_ratio = 0;   // max |y - ybound_ref| / (1e-5 * sum|w x| + tiny)
  double worst_raw = 0;     // max |y - yref| / (quantization bound + accumulation bound)
};

// y vs yref (raw activations x) and vs ybound_ref (activations xb as matmul uses them).
Stats compare(const WeightView& w, const std::vector<float>& x, const std::vector<float>& xb,
              int64_t T, const std::vector<float>& y, const std::vector<float>& yref,
              const std::vector<float>& ybound_ref, bool quantized) {
  Stats s;
  for (size_t i = 0; i < y.size(); ++i) {
    s.num += ((double)y[i] - yref[i]) * ((double)y[i] - yref[i]);
    s.den += (double)yref[i] * yref[i];
  }
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequant_row_ref(w.type, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < T; ++t) {
      double abs_sum = 0;
      for (int64_t k = 0; k < w.cols; ++k) abs_sum += std::fabs((double)row[k] * xb[t * w.cols + k]);
      const double err = std::fabs((double)y[t * w.rows + r] - ybound_ref[t * w.rows + r]);
      // Q4_1's min term uses the activation block sum rounded to f16, as llama.cpp's q8_1
      // blocks store it: allow one f16 rounding (2^-11 relative, doubled) of m * sum per block.
      double min_term = 0;
      if (quantized && w.type == GgmlType::Q4_1)
        for (int64_t b = 0; b < w.cols / 32; ++b) {
          uint16_t mh;
          std::memcpy(&mh, w.row(r) + b * 20 + 2, 2);
          double bsum = 0;
          for (int j = 0; j < 32; ++j) bsum += xb[t * w.cols + b * 32 + j];
          min_term += std::fabs((double)fp16_to_f32(mh) * bsum) * std::ldexp(1.0, -10);
        }
      s.worst_ratio = std::max(s.worst_ratio, err / (1e-5 * abs_sum + min_term + 1e-30));
      double qbound = 0;
      if (quantized) {
        for (int64_t b = 0; b < w.cols; b += 32) {
          float amax = 0, wsum = 0;
          for (int j = 0; j < 32; ++j) {
            amax = std::max(amax, std::fabs(x[t * w.cols + b + j]));
            wsum += std::fabs(row[b + j]);
          }
          qbound += (double)wsum * 0.6 * amax / 127.0;
        }
      }
      const double raw_err = std::fabs((double)y[t * w.rows + r] - yref[t * w.rows + r]);
      s.worst_raw = std::max(s.worst_raw, raw_err / (qbound + 2e-5 * abs_sum + 1e-30));
    }
  }
  return s;
}

struct Pools {
  ThreadPool one{1};
  ThreadPool two{2};
};
Pools& pools() {
  static Pools p;
  return p;
}

void run_type(GgmlType t, const std::vector<int64_t>& cols_list, uint32_t seed) {
  SCOPED_TRACE(ggml_type_name(t));
  std::mt19937 rng(seed);
  double num = 0, den = 0;
  for (int64_t cols : cols_list)
    for (int64_t rows : {1, 3, 17, 33})
      for (int64_t T : {1, 2, 3, 5, 17, 64, 130}) {
        SCOPED_TRACE(testing::Message() << "rows=" << rows << " T=" << T << " cols=" << cols);
        const std::vector<uint8_t> wdata = random_weights(t, rows, cols, rng);
        const WeightView w = make_weight_view(t, wdata.data(), rows, cols);
        std::vector<float> x(T * cols);
        for (auto& v : x) v = uni(rng);
        // One all-zero 32-block when possible (zero scale in the activation rounding).
        if (T >= 2 && cols >= 32) std::fill(x.begin() + cols, x.begin() + cols + 32, 0.0f);

        std::vector<float> yref(T * rows);
        matmul_ref(w, x.data(), T, yref.data());
        std::vector<float> y1(T * rows, NAN), y2(T * rows, NAN);
        matmul(w, x.data(), T, y1.data(), pools().one);
        // Two threads, activations starting 4 bytes into a buffer: the same bits.
        std::vector<float> xs(T * cols + 1);
        std::copy(x.begin(), x.end(), xs.begin() + 1);
        matmul(w, xs.data() + 1, T, y2.data(), pools().two);
        for (size_t i = 0; i < y1.size(); ++i)
          ASSERT_EQ(std::memcmp(&y1[i], &y2[i], 4), 0) << "threads 1 vs 2 differ at " << i;

        Stats s;
        if (is_plain(t)) {
          s = compare(w, x, x, T, y1, yref, yref, false);
          EXPECT_LE(s.worst_ratio, 1.0);
        } else {
          const std::vector<float> xq = quantize_q8(x);
          std::vector<float> yq(T * rows);
          matmul_ref(w, xq.data(), T, yq.data());
          s = compare(w, x, xq, T, y1, yref, yq, true);
          EXPECT_LE(s.worst_ratio, 1.0) << "vs reference on identically quantized activations";
          EXPECT_LE(s.worst_raw, 1.0) << "vs reference on raw activations";
        }
        num += s.num;
        den += s.den;
      }
  const double nmse = num / den;
  EXPECT_LE(nmse, is_plain(t) ? 1e-6 : 1e-4);
  testing::Test::RecordProperty(std::string("nmse_") + std::string(ggml_type_name(t)),
                                std::to_string(nmse));
}

TEST(Matmul, PlainWeightsF32) { run_type(GgmlType::F32, {1, 7, 33, 64}, 1); }
TEST(Matmul, PlainWeightsF16) { run_type(GgmlType::F16, {1, 7, 33, 64}, 2); }
TEST(Matmul, PlainWeightsBF16) { run_type(GgmlType::BF16, {1, 7, 33, 64}, 3); }
TEST(Matmul, QuantQ4_0) { run_type(GgmlType::Q4_0, {32, 64, 96}, 4); }
TEST(Matmul, QuantQ4_1) { run_type(GgmlType::Q4_1, {32, 64, 96}, 5); }
TEST(Matmul, QuantQ5_0) { run_type(GgmlType::Q5_0, {32, 64, 96}, 6); }
TEST(Matmul, QuantQ5_1) { run_type(GgmlType::Q5_1, {32, 64, 96}, 7); }
TEST(Matmul, QuantQ8_0) { run_type(GgmlType::Q8_0, {32, 64, 96}, 8); }
TEST(Matmul, QuantQ4_K) { run_type(GgmlType::Q4_K, {256, 512}, 9); }
TEST(Matmul, QuantQ5_K) { run_type(GgmlType::Q5_K, {256, 512}, 10); }
TEST(Matmul, QuantQ6_K) { run_type(GgmlType::Q6_K, {256, 512}, 11); }

// The integer path (Q4_0/Q4_1/Q8_0 with AVX-512 VNNI, AVX2 or SSE4): every kernel (GEMM
// tiles, GEMV, packed at load or interleaved on the fly) of each instruction set must
// reproduce int8mm::matmul_ref, the scalar statement of its per-output float operations
// (fused for the FMA levels, unfused for SSE4), bit for bit,
// whatever T, the row count, the activation alignment or the thread count. Bit equality with
// one per-token definition is what makes logits independent of how a prompt is split into
// batches (and of the CPU's instruction set).
// Against matmul_ref (double accumulation of dequantized weights) on activations rounded
// the same way, only f32 rounding of ~nb block terms differs: pooled normalised MSE
// <= 1e-12 (measured 6e-15 (Q4_0, Q8_0) and 1.1e-14 (Q4_1)).
std::vector<float> activations(int64_t T, int64_t cols, std::mt19937& rng) {
  std::vector<float> x(T * cols);
  for (auto& v : x) v = uni(rng) * 3.0f;
  if (T >= 2 && cols >= 64) {
    // Exact rounding ties (amax 127 -> d = 1), a zero block and a block whose f16 scale is
    // subnormal in the second token.
    for (int j = 0; j < 32; ++j) x[cols + j] = j == 0 ? 127.0f : (float)(j - 16) + 0.5f;
    std::fill(x.begin() + cols + 32, x.begin() + cols + 64, 0.0f);
    for (int j = 0; j < 32; ++j) x[j] = uni(rng) * 1e-6f;
  }
  if (T >= 3 && cols >= 64) {
    // The largest integer sums: quants all -127, then all +127, in the third token.
    std::fill(x.begin() + 2 * cols, x.begin() + 2 * cols + 32, -3.0f);
    std::fill(x.begin() + 2 * cols + 32, x.begin() + 2 * cols + 64, 3.0f);
  }
  return x;
}

// Valid but extreme weight blocks: row 0 block 0 with the largest quant magnitudes (Q8_0:
// all -128, which a hostile file may hold; Q4: all 15), row 1's last block alternating the
// extremes, a subnormal f16 scale (and min) in row 2 and a zero scale in row 3.
void extreme_weights(GgmlType t, std::vector<uint8_t>& w, int64_t rows, int64_t cols) {
  const size_t rb = ggml_row_bytes(t, cols), bb = rb / (cols / 32);
  const size_t qs = t == GgmlType::Q4_1 ? 4 : 2, nq = t == GgmlType::Q8_0 ? 32 : 16;
  const bool q8 = t == GgmlType::Q8_0;
  for (size_t j = 0; j < nq; ++j) w[qs + j] = q8 ? 0x80 : 0xFF;
  if (rows > 1)
    for (size_t j = 0; j < nq; ++j) w[rb + rb - bb + qs + j] = q8 ? (j % 2 ? 0x7F : 0x80) : 0x0F;
  if (rows > 2) {
    const uint16_t sub = 0x0003, neg_sub = 0x8001;
    std::memcpy(&w[2 * rb], &sub, 2);
    if (t == GgmlType::Q4_1) std::memcpy(&w[2 * rb + 2], &neg_sub, 2);
  }
  if (rows > 3) std::memset(&w[3 * rb], 0, 2);
}

// The level (ops/isa.h) whose int8 kernels are isa.
IsaLevel level_of(int8mm::Isa isa) {
  switch (isa) {
    case int8mm::Isa::kAvx512:
      return IsaLevel::kAvx512;
    case int8mm::Isa::kAvx2:
      return IsaLevel::kAvx2;
    case int8mm::Isa::kSse4:
      return IsaLevel::kSse4;
    case int8mm::Isa::kScalar:
      break;
  }
  return IsaLevel::kScalar;
}

void check_int8_kernels(int8mm::Isa isa) {
  const IsaLevelScope scope(level_of(isa));
  ASSERT_EQ(int8mm::isa(), isa);
  std::mt19937 rng(99);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    double num = 0, den = 0;
    for (int64_t cols : {32, 96, 576})
      for (int64_t rows : {1, 15, 17, 33, 100})
        for (int64_t T : {1, 2, 3, 5, 17, 64, 130}) {
          SCOPED_TRACE(testing::Message() << int8mm::isa_name(isa) << " " << ggml_type_name(t)
                                          << " rows=" << rows << " T=" << T << " cols=" << cols);
          std::vector<uint8_t> wdata = random_weights(t, rows, cols, rng);
          extreme_weights(t, wdata, rows, cols);
          const WeightView w = make_weight_view(t, wdata.data(), rows, cols);
          const WeightView wp = pack_weights(w, false);
          ASSERT_NE(wp.packed, nullptr);
          const std::vector<float> x = activations(T, cols, rng);
          std::vector<float> xs(T * cols + 1);  // misaligned copy: starts 4 bytes in
          std::copy(x.begin(), x.end(), xs.begin() + 1);

          if (T == 1) {  // rows read back from the copy (embedding lookups)
            std::vector<float> a(cols), b(cols);
            for (int64_t r = 0; r < rows; ++r) {
              weight_row(w, r, a.data());
              weight_row(wp, r, b.data());
              ASSERT_EQ(std::memcmp(a.data(), b.data(), cols * 4), 0) << "weight_row " << r;
            }
          }
          std::vector<float> yref(T * rows);
          int8mm::matmul_ref(w, x.data(), T, yref.data(), /*fused=*/isa != int8mm::Isa::kSse4);
          for (int variant = 0; variant < 4; ++variant) {
            const WeightView& wv = variant & 1 ? wp : w;
            ThreadPool& pool = variant & 2 ? pools().two : pools().one;
            std::vector<float> y(T * rows, NAN);
            ASSERT_TRUE(int8mm::matmul(wv, variant == 3 ? xs.data() + 1 : x.data(), T, y.data(),
                                       pool));
            ASSERT_EQ(std::memcmp(y.data(), yref.data(), y.size() * 4), 0)
                << "variant " << variant << " (bit 0: packed, bit 1: 2 threads)";
          }
          // Accuracy against double accumulation on the same rounded activations.
          const std::vector<float> xq = quantize_q8(x);
          std::vector<float> yd(T * rows);
          matmul_ref(w, xq.data(), T, yd.data());
          for (size_t i = 0; i < yd.size(); ++i) {
            num += ((double)yref[i] - yd[i]) * ((double)yref[i] - yd[i]);
            den += (double)yd[i] * yd[i];
          }
        }
    // Q4_1: the min term's f16-rounded activation sum (llama.cpp's q8_1 numerics) costs
    // ~1e-9; the others only differ by float summation order.
    EXPECT_LE(num / den, t == GgmlType::Q4_1 ? 1e-8 : 1e-12) << ggml_type_name(t);
    testing::Test::RecordProperty(std::string("int8_nmse_") + int8mm::isa_name(isa) + "_" +
                                      std::string(ggml_type_name(t)),
                                  std::to_string(num / den));
    std::printf("int8 path (%s) %s: nMSE vs double reference on rounded activations %.3g\n",
                int8mm::isa_name(isa), std::string(ggml_type_name(t)).c_str(), num / den);
  }
}

TEST(MatmulInt8, KernelsMatchScalarDefinitionBitForBit) {
  if (int8mm::best_isa() < int8mm::Isa::kAvx512) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  check_int8_kernels(int8mm::Isa::kAvx512);
}

TEST(MatmulInt8, Avx2KernelsMatchScalarDefinitionBitForBit) {
  if (int8mm::best_isa() < int8mm::Isa::kAvx2) GTEST_SKIP() << "no AVX2 + FMA + F16C on this CPU";
  check_int8_kernels(int8mm::Isa::kAvx2);
}

// SSE4 has no FMA: its kernels reproduce the unfused definition.
TEST(MatmulInt8, Sse4KernelsMatchScalarDefinitionBitForBit) {
  if (int8mm::best_isa() < int8mm::Isa::kSse4) GTEST_SKIP() << "no SSSE3 + SSE4.1 on this CPU";
  check_int8_kernels(int8mm::Isa::kSse4);
}

// Every f16 bit pattern as a weight scale (Q8_0, one block per row: row r has scale r),
// normals, subnormals, zeros, infinities and NaNs: each int8 level widens the scales exactly
// as fp16_to_f32 (SSE4 without F16C, with integer operations), so the outputs keep the bits
// of the scalar definition, NaNs included.
TEST(MatmulInt8, EveryF16ScaleAtEveryLevel) {
  std::mt19937 rng(3);
  const int64_t rows = 65536, cols = 32, T = 3;
  std::vector<uint8_t> wdata = random_weights(GgmlType::Q8_0, rows, cols, rng);
  const size_t rb = ggml_row_bytes(GgmlType::Q8_0, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t h = (uint16_t)r;
    std::memcpy(&wdata[r * rb], &h, 2);
  }
  const WeightView w = make_weight_view(GgmlType::Q8_0, wdata.data(), rows, cols);
  std::vector<float> x(T * cols);
  for (auto& v : x) v = uni(rng);
  for (IsaLevel l : available_isa_levels()) {
    const IsaLevelScope scope(l);
    const int8mm::Isa isa = int8mm::isa();
    if (isa == int8mm::Isa::kScalar) continue;
    SCOPED_TRACE(int8mm::isa_name(isa));
    std::vector<float> yref(T * rows), y(T * rows, 0.0f);
    int8mm::matmul_ref(w, x.data(), T, yref.data(), /*fused=*/isa != int8mm::Isa::kSse4);
    for (int64_t t : {int64_t{1}, T}) {  // GEMV and GEMM
      ASSERT_TRUE(int8mm::matmul(w, x.data(), t, y.data(), pools().one));
      for (int64_t i = 0; i < t * rows; ++i)
        ASSERT_EQ(std::memcmp(&y[i], &yref[i], 4), 0) << "T " << t << " row " << i % rows;
    }
  }
}

// The fused and unfused definitions differ only in the rounding of the products: on the
// same weights and activations they agree to a few f32 ulps of the block terms, and differ
// somewhere (else the unfused variant would not be exercised).
TEST(MatmulInt8, UnfusedDefinitionIsCloseToFused) {
  std::mt19937 rng(21);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0}) {
    SCOPED_TRACE(ggml_type_name(t));
    const int64_t rows = 33, cols = 576, T = 5;
    const auto wdata = random_weights(t, rows, cols, rng);
    const WeightView w = make_weight_view(t, wdata.data(), rows, cols);
    const std::vector<float> x = activations(T, cols, rng);
    std::vector<float> yf(T * rows), yu(T * rows);
    int8mm::matmul_ref(w, x.data(), T, yf.data(), /*fused=*/true);
    int8mm::matmul_ref(w, x.data(), T, yu.data(), /*fused=*/false);
    double num = 0, den = 0;
    for (size_t i = 0; i < yf.size(); ++i) {
      num += ((double)yf[i] - yu[i]) * ((double)yf[i] - yu[i]);
      den += (double)yf[i] * yf[i];
    }
    EXPECT_GT(num, 0.0);
    EXPECT_LE(num / den, 1e-12);
  }
}

// The level can be lowered (not raised past the CPU's), every level but scalar has int8
// kernels, and the f32 path takes over at kScalar even for weights packed under an int8
// level.
TEST(MatmulInt8, IsaLevels) {
  const int8mm::Isa best = int8mm::best_isa();
  {
    const IsaLevelScope scope(IsaLevel::kAvx512);
    EXPECT_EQ(isa_level(), best_isa_level());
    EXPECT_EQ(int8mm::isa(), best);
  }
  for (IsaLevel l : available_isa_levels()) {  // scalar: no int8 kernels
    const IsaLevelScope scope(l);
    EXPECT_EQ(int8mm::isa() != int8mm::Isa::kScalar, l >= IsaLevel::kSse4) << isa_level_name(l);
    EXPECT_LE(level_of(int8mm::isa()), l) << isa_level_name(l);
    // Highway dispatches at or below the level: no AVX-512 target below avx512, no AVX2
    // below avx2, only EMU128 / SCALAR at scalar.
    const int64_t t = hwy::SupportedTargets();
    if (l < IsaLevel::kAvx512) { EXPECT_EQ(t & (HWY_AVX3 | HWY_AVX3_DL), 0); }
    if (l < IsaLevel::kAvx2) { EXPECT_EQ(t & HWY_AVX2, 0); }
    if (l == IsaLevel::kScalar) { EXPECT_EQ(t & ~(HWY_EMU128 | HWY_SCALAR), 0); }
    if (l < best_isa_level()) { EXPECT_NE(hwy_targets_for(l), 0); }
  }
  if (best == int8mm::Isa::kScalar) GTEST_SKIP() << "no int8 kernels on this CPU";
  const IsaLevelScope int8_level(level_of(best));  // the best int8 kernels
  std::mt19937 rng(5);
  const int64_t rows = 20, cols = 64, T = 3;
  const auto wdata = random_weights(GgmlType::Q4_1, rows, cols, rng);
  const WeightView w = make_weight_view(GgmlType::Q4_1, wdata.data(), rows, cols);
  const WeightView wp = pack_weights(w, false);
  ASSERT_NE(wp.packed, nullptr);
  const std::vector<float> x = activations(T, cols, rng);
  std::vector<float> yref(T * rows), y(T * rows, NAN);
  matmul(wp, x.data(), T, yref.data(), pools().one);
  const IsaLevelScope scope(IsaLevel::kScalar);
  EXPECT_FALSE(int8mm::cpu_has_kernels());
  EXPECT_EQ(pack_weights(w, false).packed, nullptr);
  EXPECT_FALSE(int8mm::matmul(wp, x.data(), T, y.data(), pools().one));
  matmul(wp, x.data(), T, y.data(), pools().one);  // the f32 path on the packed view
  std::vector<float> y2(T * rows, NAN);
  matmul(w, x.data(), T, y2.data(), pools().one);
  EXPECT_EQ(std::memcmp(y.data(), y2.data(), y.size() * 4), 0);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], yref[i], 1e-2f * (1 + std::fabs(yref[i])));
}

TEST(Matmul, PanelKernelOnRowSubrange) {
  std::mt19937 rng(42);
  const int64_t rows = 37, cols = 64, T = 6;
  const auto wdata = random_weights(GgmlType::F32, rows, cols, rng);
  const WeightView w = make_weight_view(GgmlType::F32, wdata.data(), rows, cols);
  std::vector<float> x(T * cols);
  for (auto& v : x) v = uni(rng);
  std::vector<float> yref(T * rows), y(T * rows, -12345.0f), scratch(16 * cols);
  matmul_ref(w, x.data(), T, yref.data());
  detail::matmul_rows(w, x.data(), T, y.data(), 5, 30, scratch.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      const float got = y[t * rows + r];
      if (r < 5 || r >= 30) {
        EXPECT_EQ(got, -12345.0f) << "row outside [r0, r1) written: " << r;
      } else {
        EXPECT_NEAR(got, yref[t * rows + r], 1e-5f) << t << " " << r;
      }
    }
}

// At every ISA level a batch of T activation rows gives each row the bits it gets alone
// (T = 1, for Q4_1 the fused decode path): every output is one MulAdd chain over K whatever
// the tile (4 x 4 or 4 x 3 rows), token block or panel it falls in. The shapes straddle all
// three (T = 53, 37 rows) and, for f32 / f16, leave a scalar tail in K (100 columns). Q4_1 at
// levels with int8 kernels (all but scalar) is left to MatmulInt8.
TEST(Matmul, BatchRowsMatchSingleRowsAtEveryIsaLevel) {
  std::mt19937 rng(11);
  for (IsaLevel level : available_isa_levels()) {
    const IsaLevelScope scope(level);
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q4_1}) {
      if (t == GgmlType::Q4_1 && level >= IsaLevel::kSse4) continue;
      SCOPED_TRACE(testing::Message() << isa_level_name(level) << " " << ggml_type_name(t));
      const int64_t rows = 37, T = 53, cols = t == GgmlType::Q4_1 ? 96 : 100;
      const auto wdata = random_weights(t, rows, cols, rng);
      const WeightView w = make_weight_view(t, wdata.data(), rows, cols);
      std::vector<float> x(T * cols);
      for (auto& v : x) v = uni(rng);
      std::vector<float> y(T * rows, NAN), y1(rows, NAN), yref(T * rows);
      matmul(w, x.data(), T, y.data(), pools().two);
      matmul_ref(w, x.data(), T, yref.data());
      for (int64_t i = 0; i < T; ++i) {
        matmul(w, x.data() + i * cols, 1, y1.data(), pools().one);
        for (int64_t r = 0; r < rows; ++r) {
          const float got = y[i * rows + r];
          ASSERT_EQ(std::memcmp(&got, &y1[r], 4), 0) << "token " << i << " row " << r;
          if (t != GgmlType::Q4_1) {
            EXPECT_NEAR(got, yref[i * rows + r], 1e-4f * (1 + std::fabs(got)));
          }
        }
      }
    }
  }
}

TEST(Matmul, WeightRowAndViewChecks) {
  std::mt19937 rng(7);
  const auto wdata = random_weights(GgmlType::Q4_K, 3, 256, rng);
  const WeightView w = make_weight_view(GgmlType::Q4_K, wdata.data(), 3, 256);
  EXPECT_EQ(w.row_bytes, 144u);
  std::vector<float> a(256), b(256);
  weight_row(w, 2, a.data());
  dequant_row_ref(GgmlType::Q4_K, wdata.data() + 2 * 144, b.data(), 256);
  EXPECT_EQ(a, b);
  EXPECT_THROW(make_weight_view(GgmlType::Q2_K, wdata.data(), 1, 256), Error);
  EXPECT_THROW(make_weight_view(GgmlType::I32, wdata.data(), 1, 4), Error);
}

}  // namespace
}  // namespace glimpse
