// AVX2 kernels of the int8 matmul (GEMM for T > 1, GEMV for T = 1) and their activation
// rounding, for CPUs without AVX-512 VNNI. See matmul_int8.h for the per-output definition
// (the same float operations as every other kernel, so the same bits) and matmul_int8.cpp
// for the interleaved weight layout, read here as two 256-bit vectors of 8 rows per 64-byte
// slice vector (lane = row, 4 bytes each).
//
// The exact int32 block sums come from vpmaddubsw (u8 x s8 -> i16 pairs, saturating) and
// vpmaddwd with ones (-> i32); no i16 saturation can occur:
//   Q4_0 / Q4_1: weights 0..15 (u8) x activations -127..127: a pair is at most
//     2 * 15 * 127 = 3810 in magnitude, so the pairs of all 8 slices of a block (30480) are
//     summed in i16 before one vpmaddwd. Q4_0's zero point comes in through c = -8 * asum.
//   Q8_0: the weights are signed (the layout's q + 128 flipped back); |q| <= 128 is the u8
//     operand and the activations take q's sign (vpsignb; an activation is never -128, see
//     quantize_row_avx2), so a pair is at most 2 * 128 * 127 = 32512. The sum is then
//     sum q * a directly, the reference's sum (q + 128) * a - 128 * asum: c is not used.
#include <algorithm>
#include <cstring>

#include "ops/matmul_int8_impl.h"

#if GLIMPSE_INT8_KERNELS
#include <immintrin.h>

namespace glimpse {
namespace int8mm {
namespace impl {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

// std::round: truncate, then step away from zero when the dropped fraction is >= 1/2
// (v - trunc(v) is exact for |v| < 2^23).
inline __m256 round_half_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up =
      _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
  return _mm256_blendv_ps(t, _mm256_add_ps(t, one), up);
}

// quantize_row_scalar with vectors, bit-identical: the same IEEE operations per block (F16C
// rounds to nearest even like f32_to_fp16). The quants are the low bytes of the int32
// values, as the AVX-512 path's vpmovdb keeps them: -127..127 for finite inputs (|x| * (1/d)
// stays below 127.5), 0 where x or 1/d is not finite (never -128, which the Q8_0 kernel's
// sign trick relies on).
void quantize_row_avx2(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                       int32_t* c, int64_t qstride, int64_t mstride) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  // packus leaves the 4-element groups of a block in the order 0 2 4 6 1 3 5 7.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < K / 32; ++b, x += 32, q += qstride) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
    const __m256 m8 = _mm256_max_ps(
        _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
        _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i iv[4];
    for (int i = 0; i < 4; ++i)
      iv[i] = _mm256_and_si256(
          _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[i], idv))), low_byte);
    // The bytes are 0..255 now: the unsigned packs cannot saturate.
    const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(iv[0], iv[1]),
                                              _mm256_packus_epi32(iv[2], iv[3]));
    const __m256i qv = _mm256_permutevar8x32_epi32(bytes, order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), qv);
    // asum: the quants as s8, widened by vpmaddubsw against ones (u8) and summed.
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), qv);
    __m256i s32 = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
    const int32_t asum = _mm_cvtsi128_si32(s4);
    const float dh = _cvtsh_ss(_cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    finish_block(kind, asum, dd, dh, d + b * mstride, s + b * mstride, c + b * mstride);
  }
}

inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Outputs of NG groups (2 NG vectors of 8 rows, lanes = rows) x NT tokens (t0..) over all
// blocks. Per block: exact int32 sums (see the top of the file), then the float update of
// the definition.
template <Kind kKind, int NG, int NT>
void tile(const uint8_t* wg, size_t gbytes, const Acts& a, int64_t t0, float* y, int64_t ldy,
          int64_t row0, int64_t rows) {
  constexpr int QS = qs_bytes(kKind);
  constexpr int R = 2 * NG;  // vectors of 8 rows; vector r: group r / 2, half r % 2
  const int64_t nb = a.nb;
  // Running pointers, advanced once per block: weights of group g at + g * gbytes (quants,
  // scales at + nb * QS, mins at + nb * (QS + 32)); the token tile t0 / slots.
  const uint8_t* qs = wg;
  const uint8_t* sc = wg + nb * QS;
  const int64_t S = a.slots;
  const int8_t* aq = a.q + t0 * nb * 32;
  const float* ad = a.d + t0 * nb;
  const float* as = a.s + t0 * nb;
  const int32_t* ac = a.c + t0 * nb;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  auto wofs = [gbytes](int r) { return (size_t)(r / 2) * gbytes + (r % 2) * 32; };

  __m256 facc[R][NT];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) facc[r][t] = _mm256_setzero_ps();

  for (int64_t b = 0; b < nb; ++b, qs += QS, sc += 32, aq += S * 32, ad += S, as += S, ac += S) {
    __m256i isum[R][NT];
    if constexpr (kKind == Kind::Q8_0) {
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) isum[r][t] = _mm256_setzero_si256();
      #pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        __m256i wq[R], wabs[R];
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          wq[r] = _mm256_xor_si256(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + wofs(r) + j * 64)),
              _mm256_set1_epi8((char)0x80));
          wabs[r] = _mm256_abs_epi8(wq[r]);  // -128 -> 0x80 = 128 as u8
        }
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m256i av = bcast32(aq + t * 32 + 4 * j);
          #pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            const __m256i p = _mm256_maddubs_epi16(wabs[r], _mm256_sign_epi8(av, wq[r]));
            isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(p, ones));
            // Keeps GCC from reassociating the chains into a tree of spilled partial sums.
            asm("" : "+x"(isum[r][t]));
          }
        }
      }
    } else {
      __m256i acc[R][NT];  // i16 pair sums of the whole block (|.| <= 30480)
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_si256();
      // Slice j's low nibbles (elements 4j..) then its high nibbles (16 + 4j..): few live
      // registers (AVX2 has 16). The sums never saturate (see the top); the saturating add
      // only keeps GCC from reassociating the chains into a tree of spilled partial sums.
      #pragma GCC unroll 8
      for (int jh = 0; jh < 8; ++jh) {
        const int j = jh / 2;
        __m256i w[R];
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i v =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + wofs(r) + j * 64));
          w[r] = _mm256_and_si256(jh % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
        }
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m256i av = bcast32(aq + t * 32 + (jh % 2) * 16 + 4 * j);
          #pragma GCC unroll 8
          for (int r = 0; r < R; ++r)
            acc[r][t] = _mm256_adds_epi16(acc[r][t], _mm256_maddubs_epi16(w[r], av));
        }
      }
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m256i init =
            kKind == Kind::Q4_0 ? _mm256_set1_epi32(ac[t]) : _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          isum[r][t] = _mm256_add_epi32(init, _mm256_madd_epi16(acc[r][t], ones));
      }
    }
    __m256 dw[R], mw[R];
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const size_t o = (size_t)(r / 2) * gbytes + (r % 2) * 16;
      dw[r] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + o)));
      if constexpr (kKind == Kind::Q4_1)
        mw[r] = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + o + nb * 32)));
    }
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m256 da = _mm256_set1_ps(ad[t]);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 p = _mm256_mul_ps(dw[r], da);
        facc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][t]), p, facc[r][t]);
        if constexpr (kKind == Kind::Q4_1)
          facc[r][t] = _mm256_fmadd_ps(mw[r], _mm256_set1_ps(as[t]), facc[r][t]);
      }
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const int64_t r0 = row0 + (r / 2) * kGroup + (r % 2) * 8;
    if (r0 >= rows) break;
    if (rows - r0 >= 8) {
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + (t0 + t) * ldy + r0, facc[r][t]);
    } else {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rows - r0)),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) _mm256_maskstore_ps(y + (t0 + t) * ldy + r0, m, facc[r][t]);
    }
  }
}

#pragma GCC pop_options

using TileFn = void (*)(const uint8_t*, size_t, const Acts&, int64_t, float*, int64_t, int64_t,
                        int64_t);

constexpr int kGemmGroups = 1;  // GEMM tile: 16 rows x kGemmTokens tokens
constexpr int kGemmTokens = 4;
constexpr int kGemvGroups = 2;  // GEMV: 32 rows
static_assert(kGemmGroups == 1 && kGemvGroups <= 4 && kGemmTokens <= 6);

template <Kind kKind>
TileFn pick_kind(int ng, int nt) {
  if (nt == 1) {  // GEMV: up to kGemvGroups groups share each activation broadcast
    switch (ng) {
      case 1: return tile<kKind, 1, 1>;
      case 2: return tile<kKind, std::min(2, kGemvGroups), 1>;
      case 3: return tile<kKind, std::min(3, kGemvGroups), 1>;
      default: return tile<kKind, kGemvGroups, 1>;
    }
  }
  switch (nt) {  // ng <= kGemmGroups
    case 2: return tile<kKind, kGemmGroups, std::min(2, kGemmTokens)>;
    case 3: return tile<kKind, kGemmGroups, std::min(3, kGemmTokens)>;
    case 4: return tile<kKind, kGemmGroups, std::min(4, kGemmTokens)>;
    case 5: return tile<kKind, kGemmGroups, std::min(5, kGemmTokens)>;
    default: return tile<kKind, kGemmGroups, kGemmTokens>;
  }
}

TileFn pick(Kind k, int ng, int nt) {
  switch (k) {
    case Kind::Q4_0: return pick_kind<Kind::Q4_0>(ng, nt);
    case Kind::Q4_1: return pick_kind<Kind::Q4_1>(ng, nt);
    default: return pick_kind<Kind::Q8_0>(ng, nt);
  }
}

void run_groups(Kind kind, const uint8_t* packed, size_t gbytes, int64_t ng, const Acts& a,
                int64_t T, float* y, int64_t rows, int64_t row0) {
  const int step = T == 1 ? kGemvGroups : kGemmGroups;
  for (int64_t g = 0; g < ng; g += step) {
    const int n = (int)std::min<int64_t>(step, ng - g);
    for (int64_t t0 = 0; t0 < T; t0 += kGemmTokens) {
      const int nt = (int)std::min<int64_t>(kGemmTokens, T - t0);
      pick(kind, n, nt)(packed + g * gbytes, gbytes, a, t0, y, rows, row0 + g * kGroup, rows);
    }
  }
}

}  // namespace

const Kernels kAvx2{kGemmTokens, quantize_row_avx2, run_groups};

}  // namespace impl
}  // namespace int8mm
}  // namespace glimpse
#endif  // GLIMPSE_INT8_KERNELS
