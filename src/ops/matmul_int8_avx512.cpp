// AVX-512 VNNI kernels of the int8 matmul (GEMM for T > 1, GEMV for T = 1) and their
// activation rounding. See matmul_int8.h for the per-output definition and matmul_int8.cpp
// for the interleaved weight layout.
//
// vpdpbusd multiplies a weight vector (u8; Q8_0 stored as q + 128) with one token's 4
// activation bytes broadcast to all lanes (s8), lane = row, so one load of weights feeds
// several tokens and one broadcast several rows; Q4_0 / Q8_0 fold their zero point into the
// integer sum through the activations' c (-8 * asum, -128 * asum).
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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")
// GCC 12's AVX-512 intrinsic headers trip this warning on their own undefined-vector idiom.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// std::round: truncate, then step away from zero when the dropped fraction is >= 1/2
// (v - trunc(v) is exact for |v| < 2^23).
inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 up =
      _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
  return _mm512_mask_add_ps(t, up, t, one);
}

template <bool kAdd>
inline __m512 combine(__m512 a, __m512 b) {
  if constexpr (kAdd)
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  return _mm512_max_ps(a, b);
}

// Horizontal max (or int32 sum) of each of v[0..15] into lane i of the result: a tree of
// 128-bit and in-lane shuffles that halves the vector count per level (v is clobbered).
// The tree leaves block 4p + j in element 4j + p; the final permute restores the order.
template <bool kAdd>
inline __m512 reduce16(__m512* v) {
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k)
    v[k] = combine<kAdd>(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k)
    v[k] = combine<kAdd>(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x88),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xDD));
#pragma GCC unroll 2
  for (int k = 0; k < 2; ++k)
    v[k] = combine<kAdd>(_mm512_shuffle_ps(v[2 * k], v[2 * k + 1], 0x44),
                         _mm512_shuffle_ps(v[2 * k], v[2 * k + 1], 0xEE));
  v[0] = combine<kAdd>(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, v[0]);
}

inline void quantize_block(const float* x, __m512 id, int8_t* q, __m512i* sum) {
  const __m512i i0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(x), id)));
  const __m512i i1 =
      _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(x + 16), id)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(i0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(i1));
  *sum = _mm512_add_epi32(i0, i1);
}

// quantize_row_scalar with vectors, bit-identical: the same IEEE operations per block (F16C
// rounds to nearest even like f32_to_fp16). Runs of 16 blocks do the per-block scalar steps
// (amax, d, 1/d, f16 rounding, sum of quants) 16 at a time, one block per lane.
void quantize_row_avx512(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                         int32_t* c, int64_t qstride, int64_t mstride) {
  const int64_t nb = K / 32;
  int64_t b = 0;
  for (; b + 16 <= nb; b += 16) {
    const float* xb = x + b * 32;
    __m512 v[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      v[i] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb + 32 * i)),
                           _mm512_abs_ps(_mm512_loadu_ps(xb + 32 * i + 16)));
    const __m512 dd = _mm512_div_ps(reduce16<false>(v), _mm512_set1_ps(127.0f));
    const __mmask16 nonzero = _mm512_cmp_ps_mask(dd, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    alignas(64) float idv[16];
    _mm512_store_ps(idv, _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), dd));
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      __m512i sum;
      quantize_block(xb + 32 * i, _mm512_set1_ps(idv[i]), q + (b + i) * qstride, &sum);
      v[i] = _mm512_castsi512_ps(sum);
    }
    const __m512i asum = _mm512_castps_si512(reduce16<true>(v));
    const __m512 dh =
        _mm512_cvtph_ps(_mm512_cvtps_ph(dd, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const int shift = kind == Kind::Q4_0 ? 3 : 7;  // c = -8 * asum or -128 * asum
    const __m512i cv = kind == Kind::Q4_1 ? _mm512_setzero_si512()
                                          : _mm512_sub_epi32(_mm512_setzero_si512(),
                                                             _mm512_sll_epi32(asum, _mm_cvtsi32_si128(shift)));
    alignas(64) float dv[16], sv[16];
    alignas(64) int32_t cvv[16];
    _mm512_store_ps(dv, dh);
    _mm512_store_ps(sv, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_mul_ps(dd, _mm512_cvtepi32_ps(asum)),
                                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    _mm512_store_si512(cvv, cv);
    for (int i = 0; i < 16; ++i) {
      d[(b + i) * mstride] = dv[i];
      s[(b + i) * mstride] = sv[i];
      c[(b + i) * mstride] = cvv[i];
    }
  }
  for (; b < nb; ++b) {
    const float* xb = x + b * 32;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    __m512i sum;
    quantize_block(xb, _mm512_set1_ps(id), q + b * qstride, &sum);
    const int32_t asum = _mm512_reduce_add_epi32(sum);
    const float dh = _cvtsh_ss(_cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    finish_block(kind, asum, dd, dh, d + b * mstride, s + b * mstride, c + b * mstride);
  }
}

inline __m512i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Outputs of NG groups (16 rows each, lanes = rows) x NT tokens (t0..) over all blocks.
// Per block: exact int32 sums with vpdpbusd, then the float update of the definition.
// NT == 1 (GEMV) keeps two integer chains per group (low / high half of the block) so the
// dependent vpdpbusd latency is hidden; integer sums are exact, so this changes nothing.
template <Kind kKind, int NG, int NT>
void tile(const uint8_t* wg, size_t gbytes, const Acts& a, int64_t t0, float* y, int64_t ldy,
          int64_t row0, int64_t rows) {
  constexpr int QS = qs_bytes(kKind);
  constexpr bool kSplit = NT == 1;
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
  const __m512i m4 = _mm512_set1_epi8(0x0F);

  __m512 facc[NG][NT];
  #pragma GCC unroll 8
  for (int g = 0; g < NG; ++g)
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) facc[g][t] = _mm512_setzero_ps();

  for (int64_t b = 0; b < nb; ++b, qs += QS, sc += 32, aq += S * 32, ad += S, as += S, ac += S) {
    __m512i acc[NG][NT], acc2[NG][kSplit ? NT : 1];
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512i init =
          kKind == Kind::Q4_1 ? _mm512_setzero_si512() : _mm512_set1_epi32(ac[t]);
      #pragma GCC unroll 8
      for (int g = 0; g < NG; ++g) {
        acc[g][t] = init;
        if constexpr (kSplit) acc2[g][t] = _mm512_setzero_si512();
      }
    }
    if constexpr (kKind == Kind::Q8_0) {
      #pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        __m512i w[NG];
        #pragma GCC unroll 8
        for (int g = 0; g < NG; ++g) w[g] = _mm512_loadu_si512(qs + g * gbytes + j * 64);
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m512i av = bcast32(aq + t * 32 + 4 * j);
          #pragma GCC unroll 8
          for (int g = 0; g < NG; ++g) {
            if constexpr (kSplit) {
              if (j & 1) {
                acc2[g][0] = _mm512_dpbusd_epi32(acc2[g][0], w[g], av);
                continue;
              }
            }
            acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], w[g], av);
          }
        }
      }
    } else {
      #pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) {
        __m512i lo[NG], hi[NG];
        #pragma GCC unroll 8
        for (int g = 0; g < NG; ++g) {
          const __m512i v = _mm512_loadu_si512(qs + g * gbytes + j * 64);
          lo[g] = _mm512_and_si512(v, m4);
          hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        #pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) {
          const __m512i alo = bcast32(aq + t * 32 + 4 * j);
          const __m512i ahi = bcast32(aq + t * 32 + 16 + 4 * j);
          #pragma GCC unroll 8
          for (int g = 0; g < NG; ++g) {
            acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], lo[g], alo);
            if constexpr (kSplit) {
              acc2[g][0] = _mm512_dpbusd_epi32(acc2[g][0], hi[g], ahi);
            } else {
              acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], hi[g], ahi);
            }
          }
        }
      }
    }
    __m512 dw[NG], mw[NG];
    #pragma GCC unroll 8
    for (int g = 0; g < NG; ++g) {
      dw[g] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + g * gbytes)));
      if constexpr (kKind == Kind::Q4_1)
        mw[g] = _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + g * gbytes + nb * 32)));
    }
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(ad[t]);
      #pragma GCC unroll 8
      for (int g = 0; g < NG; ++g) {
        __m512i isum = acc[g][t];
        if constexpr (kSplit) isum = _mm512_add_epi32(isum, acc2[g][0]);
        const __m512 p = _mm512_mul_ps(dw[g], da);
        facc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), p, facc[g][t]);
        if constexpr (kKind == Kind::Q4_1)
          facc[g][t] = _mm512_fmadd_ps(mw[g], _mm512_set1_ps(as[t]), facc[g][t]);
      }
    }
  }
  #pragma GCC unroll 8
  for (int g = 0; g < NG; ++g) {
    const int64_t r = row0 + g * kGroup;
    if (r >= rows) break;
    const __mmask16 m = rows - r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (rows - r)) - 1);
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r, m, facc[g][t]);
  }
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

using TileFn = void (*)(const uint8_t*, size_t, const Acts&, int64_t, float*, int64_t, int64_t,
                        int64_t);

template <Kind kKind, int NG>
TileFn pick_nt(int nt) {
  switch (nt) {
    case 1: return tile<kKind, NG, 1>;
    case 2: return tile<kKind, NG, 2>;
    case 3: return tile<kKind, NG, 3>;
    case 4: return tile<kKind, NG, 4>;
    case 5: return tile<kKind, NG, 5>;
    default: return tile<kKind, NG, 6>;
  }
}

template <Kind kKind>
TileFn pick_kind(int ng, int nt) {
  if (nt == 1) {  // GEMV: up to 4 groups share each activation broadcast
    switch (ng) {
      case 1: return tile<kKind, 1, 1>;
      case 2: return tile<kKind, 2, 1>;
      case 3: return tile<kKind, 3, 1>;
      default: return tile<kKind, 4, 1>;
    }
  }
  return ng == 1 ? pick_nt<kKind, 1>(nt) : pick_nt<kKind, 2>(nt);
}

TileFn pick(Kind k, int ng, int nt) {
  switch (k) {
    case Kind::Q4_0: return pick_kind<Kind::Q4_0>(ng, nt);
    case Kind::Q4_1: return pick_kind<Kind::Q4_1>(ng, nt);
    default: return pick_kind<Kind::Q8_0>(ng, nt);
  }
}

constexpr int kGemmGroups = 2;  // GEMM tile: 32 rows x kGemmTokens tokens
constexpr int kGemmTokens = 6;
constexpr int kGemvGroups = 4;

// Groups [0, ng) of packed (their first row is row0) against all T tokens.
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

const Kernels kAvx512{kGemmTokens, quantize_row_avx512, run_groups};

}  // namespace impl
}  // namespace int8mm
}  // namespace glimpse
#endif  // GLIMPSE_INT8_KERNELS
