// Dequantizers against an independent implementation (fixture written by the numpy code of
// the `gguf` package, see tests/fixtures/make_dequant_fixture.py), hand-made blocks with
// exactly known values, and the fp16/bf16 conversions.
#include "ops/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "util/error.h"
#include "util/fp16.h"

namespace glimpse {
namespace {

std::string fixture_path() {
  return std::string(GLIMPSE_SOURCE_DIR) + "/tests/fixtures/dequant_reference.gguf";
}

struct NamedType {
  const char* name;
  GgmlType type;
};

constexpr NamedType kFixtureTypes[] = {
    {"Q4_0", GgmlType::Q4_0}, {"Q4_1", GgmlType::Q4_1}, {"Q5_0", GgmlType::Q5_0},
    {"Q5_1", GgmlType::Q5_1}, {"Q8_0", GgmlType::Q8_0}, {"Q4_K", GgmlType::Q4_K},
    {"Q5_K", GgmlType::Q5_K}, {"Q6_K", GgmlType::Q6_K}, {"F16", GgmlType::F16},
};

TEST(QuantFixture, RefAndFastPathMatchIndependentImplementation) {
  const GgufFile f = GgufFile::open(fixture_path());
  for (const NamedType& nt : kFixtureTypes) {
    SCOPED_TRACE(nt.name);
    const GgufTensor* q = f.find_tensor(std::string(nt.name) + ".q");
    const GgufTensor* ref = f.find_tensor(std::string(nt.name) + ".f32");
    ASSERT_NE(q, nullptr);
    ASSERT_NE(ref, nullptr);
    ASSERT_EQ(q->type, GgmlType::I8);
    ASSERT_EQ(ref->type, GgmlType::F32);
    const int64_t n = ref->n_elements();
    ASSERT_EQ(n, 512);
    ASSERT_EQ(q->nbytes, ggml_row_bytes(nt.type, n));
    // Copy to aligned storage (tensor data is only 32-byte aligned within the file).
    std::vector<uint8_t> raw(q->data, q->data + q->nbytes);
    std::vector<float> want(n);
    std::memcpy(want.data(), ref->data, n * sizeof(float));

    std::vector<float> got_ref(n, -777.0f), got_fast(n, -777.0f);
    dequant_row_ref(nt.type, raw.data(), got_ref.data(), n);
    dequant_row(nt.type, raw.data(), got_fast.data(), n);
    int bad = 0;
    for (int64_t i = 0; i < n && bad < 5; ++i) {
      if (!(std::fabs(got_ref[i] - want[i]) <= 1e-6f)) {
        ADD_FAILURE() << "ref i=" << i << " got " << got_ref[i] << " want " << want[i];
        ++bad;
      }
      if (!(std::fabs(got_fast[i] - want[i]) <= 1e-6f)) {
        ADD_FAILURE() << "fast i=" << i << " got " << got_fast[i] << " want " << want[i];
        ++bad;
      }
    }
    // Both paths agree bit for bit, also on a prefix of one block.
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got_ref[i], got_fast[i]) << i;
    const int64_t be = ggml_type_info((uint32_t)nt.type)->block_elems;
    std::vector<float> a(be), b(be);
    dequant_row_ref(nt.type, raw.data(), a.data(), be);
    dequant_row(nt.type, raw.data(), b.data(), be);
    for (int64_t i = 0; i < be; ++i) {
      EXPECT_EQ(a[i], got_ref[i]) << i;
      EXPECT_EQ(b[i], got_ref[i]) << i;
    }
  }
}

uint16_t h(float x) { return f32_to_fp16(x); }

TEST(QuantBlocks, Q4_1ExactValues) {
  BlockQ4_1 b[2];
  b[0].d = h(0.5f);
  b[0].m = h(-1.0f);
  for (int j = 0; j < 16; ++j) b[0].qs[j] = (uint8_t)(j | ((15 - j) << 4));
  b[1].d = h(0.25f);
  b[1].m = h(3.0f);
  for (int j = 0; j < 16; ++j) b[1].qs[j] = (uint8_t)((15 - j) | (j << 4));
  for (int path = 0; path < 2; ++path) {
    float y[64];
    (path ? dequant_row : dequant_row_ref)(GgmlType::Q4_1, b, y, 64);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], j * 0.5f - 1.0f) << path << " " << j;
      EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 1.0f) << path << " " << j;
      EXPECT_EQ(y[32 + j], (15 - j) * 0.25f + 3.0f) << path << " " << j;
      EXPECT_EQ(y[48 + j], j * 0.25f + 3.0f) << path << " " << j;
    }
  }
}

TEST(QuantBlocks, Q4_0ExactValues) {
  BlockQ4_0 b;
  b.d = h(2.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
  for (int path = 0; path < 2; ++path) {
    float y[32];
    (path ? dequant_row : dequant_row_ref)(GgmlType::Q4_0, &b, y, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], (j - 8) * 2.0f) << path << " " << j;
      EXPECT_EQ(y[j + 16], (7 - j) * 2.0f) << path << " " << j;
    }
  }
}

TEST(QuantBlocks, Q8_0ExactValues) {
  BlockQ8_0 b[2];
  b[0].d = h(0.125f);
  b[1].d = h(-3.0f);
  for (int j = 0; j < 32; ++j) {
    b[0].qs[j] = (int8_t)(j * 8 - 128);  // -128 .. 120
    b[1].qs[j] = (int8_t)(127 - j);
  }
  for (int path = 0; path < 2; ++path) {
    float y[64];
    (path ? dequant_row : dequant_row_ref)(GgmlType::Q8_0, b, y, 64);
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(y[j], (j * 8 - 128) * 0.125f) << path << " " << j;
      EXPECT_EQ(y[32 + j], (127 - j) * -3.0f) << path << " " << j;
    }
  }
}

TEST(QuantBlocks, Q5_0AndQ5_1HighBit) {
  BlockQ5_0 b0;
  BlockQ5_1 b1;
  b0.d = b1.d = h(1.0f);
  b1.m = h(0.5f);
  // Element j (low nibble of qs[j]) gets high bit j%2; element j+16 gets (j+16) bit = 1.
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) qh |= (uint32_t)(j & 1) << j;
  qh |= 0xFFFF0000u;
  std::memcpy(b0.qh, &qh, 4);
  std::memcpy(b1.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b0.qs[j] = b1.qs[j] = (uint8_t)(j | ((15 - j) << 4));
  float y0[32], y1[32];
  dequant_row_ref(GgmlType::Q5_0, &b0, y0, 32);
  dequant_row_ref(GgmlType::Q5_1, &b1, y1, 32);
  for (int j = 0; j < 16; ++j) {
    const int q_lo = j | ((j & 1) << 4), q_hi = (15 - j) | 16;
    EXPECT_EQ(y0[j], (float)(q_lo - 16)) << j;
    EXPECT_EQ(y0[j + 16], (float)(q_hi - 16)) << j;
    EXPECT_EQ(y1[j], q_lo + 0.5f) << j;
    EXPECT_EQ(y1[j + 16], q_hi + 0.5f) << j;
  }
}

TEST(QuantBlocks, Q8_0ScaleSubnormalAndZero) {
  BlockQ8_0 b;
  b.d = 0x0001;  // 2^-24
  for (int j = 0; j < 32; ++j) b.qs[j] = (int8_t)(j - 16);
  float y[32];
  dequant_row(GgmlType::Q8_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * std::ldexp(1.0f, -24));
  b.d = 0;
  dequant_row(GgmlType::Q8_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.0f);
}

// Random blocks with finite scales: the dispatched path equals the reference bit for bit
// over longer rows than the fixture holds.
TEST(QuantFastPath, EqualsReferenceOnLongRandomRows) {
  struct Case {
    GgmlType t;
    std::vector<int> f16_fields;
  };
  const Case cases[] = {
      {GgmlType::Q4_0, {0}}, {GgmlType::Q4_1, {0, 2}}, {GgmlType::Q5_0, {0}},
      {GgmlType::Q5_1, {0, 2}}, {GgmlType::Q8_0, {0}}, {GgmlType::Q4_K, {0, 2}},
      {GgmlType::Q5_K, {0, 2}}, {GgmlType::Q6_K, {208}},
  };
  std::mt19937 rng(1234);
  for (const Case& c : cases) {
    SCOPED_TRACE(ggml_type_name(c.t));
    const GgmlTypeInfo* info = ggml_type_info((uint32_t)c.t);
    const int64_t n = 4096;
    const int64_t nb = n / info->block_elems;
    std::vector<uint8_t> raw(nb * info->block_bytes);
    for (auto& x : raw) x = (uint8_t)rng();
    for (int64_t i = 0; i < nb; ++i)
      for (int off : c.f16_fields) {
        const float v = ((int)(rng() % 2001) - 1000) * 1e-4f;
        const uint16_t hv = f32_to_fp16(v);
        std::memcpy(&raw[i * info->block_bytes + off], &hv, 2);
      }
    std::vector<float> a(n), b(n);
    dequant_row_ref(c.t, raw.data(), a.data(), n);
    dequant_row(c.t, raw.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(a[i], b[i]) << i;
  }
}

TEST(QuantPlain, F32F16BF16Rows) {
  const float v[8] = {0.0f, -0.0f, 1.5f, -2.25f, 65504.0f, 1e-3f, -7.0f, 3.0f};
  std::vector<uint16_t> hv(8), bv(8);
  for (int i = 0; i < 8; ++i) {
    hv[i] = f32_to_fp16(v[i]);
    bv[i] = f32_to_bf16(v[i]);
  }
  float y[8];
  for (int path = 0; path < 2; ++path) {
    auto fn = path ? dequant_row : dequant_row_ref;
    fn(GgmlType::F32, v, y, 8);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], v[i]);
    fn(GgmlType::F16, hv.data(), y, 8);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], fp16_to_f32(hv[i]));
    fn(GgmlType::BF16, bv.data(), y, 8);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], bf16_to_f32(bv[i]));
  }
}

TEST(QuantErrors, UnsupportedTypesAndBadLengthsFail) {
  EXPECT_TRUE(is_supported_weight_type(GgmlType::Q6_K));
  EXPECT_TRUE(is_supported_weight_type(GgmlType::BF16));
  EXPECT_FALSE(is_supported_weight_type(GgmlType::Q2_K));
  EXPECT_FALSE(is_supported_weight_type(GgmlType::IQ4_NL));
  EXPECT_FALSE(is_supported_weight_type(GgmlType::I8));
  uint8_t buf[256] = {};
  float y[64];
  EXPECT_THROW(dequant_row_ref(GgmlType::Q2_K, buf, y, 0), Error);
  EXPECT_THROW(dequant_row(GgmlType::IQ4_NL, buf, y, 32), Error);
  EXPECT_THROW(dequant_row_ref(GgmlType::Q4_0, buf, y, 33), Error);
}

// ---- fp16 / bf16 -------------------------------------------------------------------------

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(QuantFp16, EveryHalfRoundTrips) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t hv = (uint16_t)i;
    const float f = fp16_to_f32(hv);
    const bool is_nan = (hv & 0x7c00) == 0x7c00 && (hv & 0x3ff) != 0;
    if (is_nan) {
      ASSERT_TRUE(std::isnan(f)) << i;
      const uint16_t back = f32_to_fp16(f);
      ASSERT_EQ(back & 0x7c00, 0x7c00) << i;
      ASSERT_NE(back & 0x3ff, 0) << i;
      ASSERT_EQ(back & 0x8000, hv & 0x8000) << i;
    } else {
      ASSERT_EQ(f32_to_fp16(f), hv) << i;
    }
  }
}

TEST(QuantFp16, KnownValues) {
  EXPECT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
  EXPECT_EQ(bits_of(fp16_to_f32(0x8000)), 0x80000000u);

  EXPECT_EQ(f32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);
  // A NaN whose payload lives only in the low f32 mantissa bits must stay NaN.
  EXPECT_NE(f32_to_fp16(from_bits(0x7f800001u)) & 0x3ff, 0);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);  // tie above max rounds to even = inf
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-1e-30f), 0x8000);
  // Ties to even in the normal range: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  // Mantissa carry into the exponent: 2 - 2^-12 rounds up to 2.
  EXPECT_EQ(f32_to_fp16(2.0f - std::ldexp(1.0f, -12)), 0x4000);
  // Subnormal ties: 2^-25 is halfway between 0 and 2^-24 -> 0; 3 * 2^-25 -> 2 * 2^-24.
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_fp16(std::ldexp(5.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  // Largest subnormal rounding up into the smallest normal.
  EXPECT_EQ(f32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);
}

// Around every boundary between consecutive finite halves: the exact midpoint goes to the
// even neighbour, one f32 ulp below/above goes to the nearer one.
TEST(QuantFp16, RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t i = 0; i < 0x7bff; ++i) {
    const double lo = fp16_to_f32((uint16_t)i), hi = fp16_to_f32((uint16_t)(i + 1));
    const float mid = (float)((lo + hi) / 2);
    ASSERT_EQ((double)mid, (lo + hi) / 2) << i;  // exactly representable
    const uint16_t even = (i & 1) ? (uint16_t)(i + 1) : (uint16_t)i;
    ASSERT_EQ(f32_to_fp16(mid), even) << i;
    ASSERT_EQ(f32_to_fp16(std::nextafter(mid, 0.0f)), i) << i;
    ASSERT_EQ(f32_to_fp16(std::nextafter(mid, 1e6f)), i + 1) << i;
    ASSERT_EQ(f32_to_fp16(-mid), even | 0x8000) << i;
  }
}

TEST(QuantBf16, RoundTripAndNearestEven) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t hv = (uint16_t)i;
    const float f = bf16_to_f32(hv);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << i;
    } else {
      ASSERT_EQ(f32_to_bf16(f), hv) << i;
    }
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  // NaN with payload only in the low bits stays NaN (quieted).
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0xff800001u)))));
  EXPECT_EQ(bf16_to_f32(0x4049), from_bits(0x40490000u));
}

}  // namespace
}  // namespace glimpse
