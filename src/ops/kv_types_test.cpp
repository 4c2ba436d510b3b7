// KV element types: row sizes, names, conversions (q8_0 against the GGUF dequantizer), and
// the cache's own operations (append, gather, truncate, resident bytes) on every type.
#include "ops/kv_types.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kv/kv_cache.h"
#include "ops/isa.h"
#include "ops/quant.h"
#include "util/error.h"
#include "util/fp16.h"

namespace glimpse {
namespace {

constexpr KvType kTypes[] = {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0};

std::vector<float> random_rows(int64_t n, int d, uint32_t seed, float a = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-a, a);
  std::vector<float> x((size_t)n * d);
  for (auto& e : x) e = u(rng);
  return x;
}

TEST(KvTypes, NamesAndRowBytes) {
  for (KvType t : kTypes) EXPECT_EQ(parse_kv_type("-ctk", kv_type_name(t)), t);
  EXPECT_EQ(kv_type_list(), "f32, f16, bf16, q8_0");
  try {
    parse_kv_type("-ctv", "q4_0");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-ctv: unknown KV cache type 'q4_0'"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(kv_row_bytes(KvType::F32, 64), 256u);
  EXPECT_EQ(kv_row_bytes(KvType::F16, 64), 128u);
  EXPECT_EQ(kv_row_bytes(KvType::BF16, 40), 80u);
  EXPECT_EQ(kv_row_bytes(KvType::Q8_0, 64), 68u);  // 2 blocks of 34
  EXPECT_EQ(kv_row_bytes(KvType::Q8_0, 128), 136u);
  EXPECT_TRUE(kv_type_supports(KvType::F16, 40));
  EXPECT_FALSE(kv_type_supports(KvType::Q8_0, 40));
  EXPECT_THROW(kv_row_bytes(KvType::Q8_0, 48), Error);
}

TEST(KvTypes, CacheRejectsQ8WithAnOddHeadDim) {
  try {
    KvCache c(2, 2, 48, 16, KvType::F16, KvType::Q8_0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("V (-ctv) cache type q8_0 needs the head dimension to be "
                                         "a multiple of 32, but it is 48"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(KvCache(2, 2, 48, 16, KvType::BF16, KvType::F32));
}

TEST(KvTypes, RoundTripsWithinTheTypesPrecision) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    const int d = 64;
    const int64_t n = 37;
    const std::vector<float> x = random_rows(n, d, 1);
    for (KvType t : kTypes) {
      SCOPED_TRACE(kv_type_name(t));
      std::vector<uint8_t> st(n * kv_row_bytes(t, d));
      kv_rows_from_f32(t, x.data(), n, d, st.data());
      std::vector<float> y(x.size());
      kv_rows_to_f32(t, st.data(), n, d, y.data());
      for (size_t i = 0; i < x.size(); ++i) {
        const float tol = t == KvType::F32    ? 0.0f
                          : t == KvType::F16  ? std::fabs(x[i]) * 0x1p-11f
                          : t == KvType::BF16 ? std::fabs(x[i]) * 0x1p-8f
                                              : 3.0f / 127.0f * 0.6f;  // half a step + f16 scale
        ASSERT_LE(std::fabs(y[i] - x[i]), tol) << i;
      }
      // Scalar element conversions agree with the vector path.
      for (int64_t r = 0; r < n; ++r)
        for (int c = 0; c < d; ++c) {
          const uint8_t* row = st.data() + r * kv_row_bytes(t, d);
          uint16_t h;
          float want = 0;
          if (t == KvType::F32) std::memcpy(&want, row + 4 * c, 4);
          if (t == KvType::F16) std::memcpy(&h, row + 2 * c, 2), want = fp16_to_f32(h);
          if (t == KvType::BF16) std::memcpy(&h, row + 2 * c, 2), want = bf16_to_f32(h);
          if (t == KvType::Q8_0) {
            std::memcpy(&h, row + c / 32 * 34, 2);
            want = fp16_to_f32(h) * (float)(int8_t)row[c / 32 * 34 + 2 + c % 32];
          }
          ASSERT_EQ(y[r * d + c], want);
        }
    }
  }
}

TEST(KvTypes, F16RowsRoundExactlyAsTheScalarConversion) {
  // The vector (F16C) path must give f32_to_fp16's bits: normals, ties, subnormals,
  // overflow to inf, signed zeros, on every Highway target this CPU runs.
  std::mt19937 rng(7);
  std::vector<float> x;
  for (int e = -30; e <= 17; ++e)
    for (int i = 0; i < 64; ++i) {
      const uint32_t mant = rng() & 0x7fffff;
      const uint32_t tie = i < 8 ? (mant & ~0x1fffu) | 0x1000u : mant;  // exact halfway cases
      uint32_t bits = ((uint32_t)(e + 127) << 23) | tie | (i % 2 ? 0x80000000u : 0);
      float f;
      std::memcpy(&f, &bits, 4);
      x.push_back(f);
    }
  x.insert(x.end(), {0.0f, -0.0f, 65504.0f, 65519.9f, 65520.0f, -1e9f, 5.96e-8f, 2.9e-8f});
  const int d = 32;
  while (x.size() % d) x.push_back(1.0f);
  std::vector<uint8_t> got(x.size() * 2);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    kv_rows_from_f32(KvType::F16, x.data(), (int64_t)x.size() / d, d, got.data());
    for (size_t i = 0; i < x.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, got.data() + 2 * i, 2);
      ASSERT_EQ(h, f32_to_fp16(x[i])) << hwy::TargetName(target) << " " << x[i];
    }
  }
  set_isa_level_for_testing(isa_level());  // back to the level in use
}

// ggml's quantize_row_q8_0_ref, scalar: the reference for the vector quantizer.
void q8_0_reference(const float* x, int64_t nb, uint8_t* dst) {
  for (int64_t b = 0; b < nb; ++b, x += 32, dst += 34) {
    float amax = 0;
    for (int j = 0; j < 32; ++j)
      if (!std::isnan(x[j])) amax = std::max(amax, std::fabs(x[j]));
    const float scale = amax / 127.0f, inv = scale != 0 ? 1.0f / scale : 0.0f;
    const uint16_t h = f32_to_fp16(scale);
    std::memcpy(dst, &h, 2);
    for (int j = 0; j < 32; ++j) {
      const float r = std::round(x[j] * inv);
      dst[2 + j] = (uint8_t)(int8_t)(std::isnan(r) ? 0.0f : std::clamp(r, -127.0f, 127.0f));
    }
  }
}

TEST(KvTypes, Q8_0QuantizesAsTheScalarReference) {
  // Random blocks of varied scales, exact halfway products, zeros, infinities and NaNs, on
  // every Highway target this CPU runs.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x;
  for (int b = 0; b < 200; ++b) {
    const float a = std::pow(10.0f, (float)(b % 13) - 6);
    for (int j = 0; j < 32; ++j) x.push_back(u(rng) * a);
  }
  for (int j = 0; j < 32; ++j) x.push_back((float)(j - 16) * 0.5f);  // amax 8: x / scale ties
  for (int j = 0; j < 32; ++j) x.push_back(0.0f);
  for (int j = 0; j < 32; ++j) x.push_back(j == 3 ? INFINITY : j == 5 ? NAN : (float)j);
  const int64_t nb = (int64_t)x.size() / 32;
  std::vector<uint8_t> want(nb * 34), got(nb * 34);
  q8_0_reference(x.data(), nb, want.data());
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    std::fill(got.begin(), got.end(), 0xAB);
    kv_rows_from_f32(KvType::Q8_0, x.data(), nb, 32, got.data());
    EXPECT_EQ(got, want) << hwy::TargetName(target);
  }
  set_isa_level_for_testing(isa_level());  // back to the level in use
}

TEST(KvTypes, Q8_0IsTheGgufBlockFormat) {
  // The stored row is a valid GGUF Q8_0 row: the weight dequantizer reads the same values.
  const int d = 128;
  const std::vector<float> x = random_rows(3, d, 2, 0.7f);
  std::vector<uint8_t> st(3 * kv_row_bytes(KvType::Q8_0, d));
  kv_rows_from_f32(KvType::Q8_0, x.data(), 3, d, st.data());
  std::vector<float> a(x.size()), b(x.size());
  kv_rows_to_f32(KvType::Q8_0, st.data(), 3, d, a.data());
  dequant_row_ref(GgmlType::Q8_0, st.data(), b.data(), 3 * d);
  EXPECT_EQ(a, b);
  // ggml's rounding: scale = amax / 127 stored as f16, q = round(x / scale) with the
  // unrounded scale; the block's largest magnitude maps to +-127.
  for (int blk = 0; blk < 3 * d / 32; ++blk) {
    const uint8_t* p = st.data() + blk * 34;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    uint16_t h;
    std::memcpy(&h, p, 2);
    EXPECT_EQ(h, f32_to_fp16(amax / 127.0f));
    const float inv = 1.0f / (amax / 127.0f);
    int qmax = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = (int8_t)p[2 + j];
      EXPECT_EQ(q, (int)std::round(x[blk * 32 + j] * inv));
      qmax = std::max(qmax, std::abs(q));
    }
    EXPECT_EQ(qmax, 127);
  }
  // All-zero block: scale 0, every q 0.
  std::vector<float> z(32, 0.0f);
  std::vector<uint8_t> zs(34, 0xff);
  kv_rows_from_f32(KvType::Q8_0, z.data(), 1, 32, zs.data());
  for (uint8_t byte : zs) EXPECT_EQ(byte, 0);
}

TEST(KvTypes, ConvertGoesThroughF32) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    const int d = 64;
    const std::vector<float> x = random_rows(5, d, 3);
    std::vector<uint8_t> f16(5 * 128), q8(5 * 68), back(5 * 128);
    kv_rows_from_f32(KvType::F16, x.data(), 5, d, f16.data());
    kv_rows_convert(KvType::F16, f16.data(), KvType::F16, back.data(), 5, d);
    EXPECT_EQ(f16, back);
    kv_rows_convert(KvType::F16, f16.data(), KvType::Q8_0, q8.data(), 5, d);
    std::vector<float> xf(x.size());
    kv_rows_to_f32(KvType::F16, f16.data(), 5, d, xf.data());
    std::vector<uint8_t> q8_direct(5 * 68);
    kv_rows_from_f32(KvType::Q8_0, xf.data(), 5, d, q8_direct.data());
    EXPECT_EQ(q8, q8_direct);
  }
}

// append / views / gather / truncate_from / resident_bytes per type: rows move as whole
// stored rows, and memory follows the row size.
TEST(KvTypes, CacheOperationsOnEveryType) {
  for (IsaLevel level : available_isa_levels()) {  // every level this CPU runs
    const IsaLevelScope scope(level);
    SCOPED_TRACE(isa_level_name(level));
    const int L = 2, H = 3, d = 64;
    const int64_t T = 20;
    const std::vector<float> k = random_rows(T * H, d, 4), v = random_rows(T * H, d, 5);
    std::vector<int32_t> pos(T);
    std::iota(pos.begin(), pos.end(), 0);
    for (KvType tk : kTypes)
      for (KvType tv : kTypes) {
        SCOPED_TRACE(std::string(kv_type_name(tk)) + "/" + kv_type_name(tv));
        KvCache c(L, H, d, 64, tk, tv);
        const size_t bk = kv_row_bytes(tk, d), bv = kv_row_bytes(tv, d);
        EXPECT_EQ(c.k_row_bytes(), bk);
        EXPECT_EQ(c.v_row_bytes(), bv);
        c.reserve_more(T);  // as the forward pass does: capacity grows in 64-entry steps
        for (int l = 0; l < L; ++l) c.append(l, k.data(), v.data(), pos.data(), T);
        EXPECT_EQ(c.n_past(), T);
        EXPECT_EQ(c.resident_bytes(), (size_t)L * H * 64 * (bk + bv + 4));
        // Row t of head h holds the input row (t, h) in the stored type.
        std::vector<uint8_t> want(std::max(bk, bv));
        for (int h = 0; h < H; ++h)
          for (int64_t t = 0; t < T; ++t) {
            kv_rows_from_f32(tk, k.data() + (t * H + h) * d, 1, d, want.data());
            ASSERT_EQ(0, std::memcmp(c.head(1, h).k.data() + t * bk, want.data(), bk));
            kv_rows_from_f32(tv, v.data() + (t * H + h) * d, 1, d, want.data());
            ASSERT_EQ(0, std::memcmp(c.head(1, h).v.data() + t * bv, want.data(), bv));
          }
        KvHeadView views[H];
        c.views(0, 4, views);
        EXPECT_EQ(views[2].k, c.head(0, 2).k.data());
        EXPECT_EQ(views[2].n_base, T - 4);
        // gather keeps whole rows and frees the rest.
        const KvHead before = c.head(0, 1);
        const int32_t idx[] = {3, 7, 19};
        c.gather(0, 1, idx, 3);
        const KvHead& g = c.head(0, 1);
        ASSERT_EQ(g.size(), 3);
        EXPECT_EQ(g.k.capacity(), 3 * bk);
        for (int i = 0; i < 3; ++i) {
          EXPECT_EQ(g.pos[i], idx[i]);
          EXPECT_EQ(0, std::memcmp(g.k.data() + i * bk, before.k.data() + idx[i] * bk, bk));
          EXPECT_EQ(0, std::memcmp(g.v.data() + i * bv, before.v.data() + idx[i] * bv, bv));
        }
        // truncate_from drops positions >= 10 and keeps the others' rows.
        c.truncate_from(10);
        EXPECT_EQ(c.head(0, 1).size(), 2);
        EXPECT_EQ(c.head(1, 0).size(), 10);
        EXPECT_EQ(c.head(1, 0).k.size(), 10 * bk);
        EXPECT_EQ(c.head(1, 0).v.size(), 10 * bv);
        EXPECT_EQ(0, std::memcmp(c.head(0, 1).k.data() + bk, before.k.data() + 7 * bk, bk));
      }
  }
}

}  // namespace
}  // namespace glimpse
