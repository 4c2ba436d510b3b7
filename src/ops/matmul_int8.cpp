// Integer matmul for Q4_0 / Q4_1 / Q8_0 weights: activation rounding, the interleaved
// weight layout, AVX-512 VNNI kernels (GEMM for T > 1, GEMV for T = 1) and the scalar
// reference. See matmul_int8.h for the per-output definition all of them share.
//
// Interleaved layout. Rows are taken in groups of 16 (one 512-bit vector of int32 lanes,
// lane = row); the last group is padded with zero rows. A group stores, for its 16 rows:
//   quants  [nb][QS]      block b, then for each 4-element slice of it a 64-byte vector
//                         holding that slice for the 16 rows (row i at bytes 4i..4i+3):
//                         Q4: QS = 256, vector j < 4 holds the packed bytes qs[4j..4j+3],
//                             low nibbles = elements 4j.., high nibbles = 16 + 4j..;
//                         Q8_0: QS = 512, vector j holds elements 4j..4j+3 as q + 128 (u8)
//   scales  [nb][16] f16  then, Q4_1 only, mins [nb][16] f16.
// That is 16 rows x the GGUF block size per block: the copy is as large as the blocks.
// vpdpbusd multiplies a weight vector (u8) with one token's 4 activation bytes broadcast to
// all lanes (s8), so one load of weights feeds several tokens and one broadcast several rows.
#include "ops/matmul_int8.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

// The AVX-512 kernels are compiled with GCC's target pragmas; other compilers (the clang
// fuzzing build) get the portable f32 path.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GLIMPSE_INT8_KERNELS 1
#else
#define GLIMPSE_INT8_KERNELS 0
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops/quant.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace int8mm {
namespace {

enum class Kind { Q4_0, Q4_1, Q8_0 };

constexpr int64_t kGroup = 16;  // rows per interleaved group

Kind kind_of(GgmlType t) {
  return t == GgmlType::Q4_0 ? Kind::Q4_0 : t == GgmlType::Q4_1 ? Kind::Q4_1 : Kind::Q8_0;
}
constexpr int qs_bytes(Kind k) { return k == Kind::Q8_0 ? 512 : 256; }
// Bytes of one group of 16 rows for one 32-element block.
constexpr int group_block_bytes(Kind k) { return qs_bytes(k) + 32 + (k == Kind::Q4_1 ? 32 : 0); }

// 64-byte aligned, uninitialised bytes (grown on demand, never shrunk).
struct AlignedBuf {
  std::unique_ptr<uint8_t, decltype(&std::free)> p{nullptr, &std::free};
  size_t n = 0;
  uint8_t* get(size_t bytes) {
    if (bytes > n) {
      p.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
      n = bytes;
    }
    return p.get();
  }
};

// Activations rounded to 8 bits, tokens interleaved in tiles of `slots` (= the GEMM tile's
// token count, fewer only when T is smaller) so that one pointer walks a whole tile:
//   q  [T / slots][nb][slots][32] int8
//   d, s, c  [T / slots][nb][slots]: d = the f16-rounded scale, s = f16(d * asum) (Q4_1's
//   min term), c = the zero-point correction folded into the integer sum (-8 * asum for Q4_0,
//   -128 * asum for Q8_0, 0 for Q4_1). T is rounded up to whole tiles.
struct Acts {
  int8_t* q;
  float* d;
  float* s;
  int32_t* c;
  int64_t nb, slots;
};

// s is rounded to f16 from the unrounded scale, as llama.cpp's q8_1 blocks store it, so
// the Q4_1 min term matches its numerics.
void finish_block(Kind kind, int32_t asum, float dd, float dh, float* d, float* s, int32_t* c) {
  *d = dh;
  *s = fp16_to_f32(f32_to_fp16(dd * (float)asum));
  *c = kind == Kind::Q4_0 ? -8 * asum : kind == Kind::Q8_0 ? -128 * asum : 0;
}

// One token: the same rounding as the float path (d = amax/127, q = round(x/d)). Block b
// goes to q + b * qstride and d/s/c[b * mstride].
void quantize_row_scalar(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                         int32_t* c, int64_t qstride = 32, int64_t mstride = 1) {
  for (int64_t b = 0; b < K / 32; ++b, x += 32, q += qstride) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    int32_t asum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = (int8_t)std::round(x[j] * id);
      asum += q[j];
    }
    finish_block(kind, asum, dd, fp16_to_f32(f32_to_fp16(dd)), d + b * mstride, s + b * mstride,
                 c + b * mstride);
  }
}

// Weight quants of row r, block b, element j as the kernels multiply them (u8).
inline int weight_u8(Kind kind, const uint8_t* blk, int j) {
  if (kind == Kind::Q8_0) return (uint8_t)(blk[2 + j] ^ 0x80);
  const uint8_t* qs = blk + (kind == Kind::Q4_1 ? 4 : 2);
  return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
}

size_t block_bytes(Kind kind) {
  return kind == Kind::Q4_0 ? sizeof(BlockQ4_0)
         : kind == Kind::Q4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
}

// Groups [g0, g1) of w into dst (g1 - g0 groups of nb * group_block_bytes).
void pack_groups(const WeightView& w, int64_t g0, int64_t g1, uint8_t* dst) {
  const Kind kind = kind_of(w.type);
  const int64_t nb = w.cols / 32;
  const int QS = qs_bytes(kind);
  const size_t gbytes = (size_t)nb * group_block_bytes(kind), bb = block_bytes(kind);
  for (int64_t g = g0; g < g1; ++g, dst += gbytes) {
    if ((g + 1) * kGroup > w.rows) std::memset(dst, 0, gbytes);  // zero rows pad the last group
    uint8_t* scales = dst + nb * QS;
    uint8_t* mins = scales + nb * 32;
    for (int64_t i = 0; i < kGroup && g * kGroup + i < w.rows; ++i) {
      const uint8_t* blk = w.row(g * kGroup + i);
      for (int64_t b = 0; b < nb; ++b, blk += bb) {
        uint8_t* qd = dst + b * QS + 4 * i;
        if (kind == Kind::Q8_0) {
          for (int j = 0; j < 8; ++j) {  // q + 128 = q ^ 0x80, four bytes at a time
            uint32_t v;
            std::memcpy(&v, blk + 2 + 4 * j, 4);
            v ^= 0x80808080u;
            std::memcpy(qd + j * 64, &v, 4);
          }
        } else {
          const uint8_t* qs = blk + (kind == Kind::Q4_1 ? 4 : 2);
          for (int j = 0; j < 4; ++j) std::memcpy(qd + j * 64, qs + 4 * j, 4);
        }
        std::memcpy(scales + (b * kGroup + i) * 2, blk, 2);
        if (kind == Kind::Q4_1) std::memcpy(mins + (b * kGroup + i) * 2, blk + 2, 2);
      }
    }
  }
}

#if GLIMPSE_INT8_KERNELS
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
#endif  // GLIMPSE_INT8_KERNELS

bool detect_kernels() {
#if GLIMPSE_INT8_KERNELS
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

}  // namespace

bool cpu_has_kernels() {
  static const bool has = detect_kernels();
  return has;
}

bool supports(const WeightView& w) {
  return (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q4_1 || w.type == GgmlType::Q8_0) &&
         w.cols % 32 == 0 && w.cols > 0 && w.rows > 0;
}

size_t packed_bytes(const WeightView& w) {
  return (size_t)((w.rows + kGroup - 1) / kGroup) * (w.cols / 32) *
         group_block_bytes(kind_of(w.type));
}

void pack(const WeightView& w, uint8_t* dst) {
  pack_groups(w, 0, (w.rows + kGroup - 1) / kGroup, dst);
}

void packed_row(const WeightView& w, int64_t r, float* out) {
  const Kind kind = kind_of(w.type);
  const int64_t nb = w.cols / 32, i = r % kGroup;
  const int QS = qs_bytes(kind);
  const uint8_t* g = w.packed + (size_t)(r / kGroup) * nb * group_block_bytes(kind);
  const uint8_t* scales = g + nb * QS;
  for (int64_t b = 0; b < nb; ++b, out += 32) {
    uint16_t h;
    std::memcpy(&h, scales + (b * kGroup + i) * 2, 2);
    const float d = fp16_to_f32(h);
    float m = -8.0f * d;  // Q4_0's offset, as dequant_row applies it: fma(q, d, -8d)
    if (kind == Kind::Q4_1) {
      std::memcpy(&h, scales + (nb + b) * 32 + i * 2, 2);
      m = fp16_to_f32(h);
    }
    for (int j = 0; j < 32; ++j) {
      if (kind == Kind::Q8_0) {
        out[j] = (float)(int8_t)(g[b * QS + (j / 4) * 64 + 4 * i + j % 4] ^ 0x80) * d;
      } else {
        const uint8_t byte = g[b * QS + (j % 16 / 4) * 64 + 4 * i + j % 4];
        out[j] = std::fma((float)(j < 16 ? byte & 0xF : byte >> 4), d, m);
      }
    }
  }
}

bool matmul(const WeightView& w, const float* x, int64_t T, float* y, ThreadPool& pool) {
#if GLIMPSE_INT8_KERNELS
  if (!cpu_has_kernels() || !supports(w) || T <= 0) return false;
  const Kind kind = kind_of(w.type);
  const int64_t K = w.cols, nb = K / 32;
  // Activations (see Acts), kept by the calling thread.
  const int64_t S = std::min<int64_t>(T, kGemmTokens), Tp = (T + S - 1) / S * S;
  thread_local AlignedBuf abuf;
  const size_t qbytes = (size_t)Tp * K, mbytes = (size_t)Tp * nb * 4;
  uint8_t* base = abuf.get(qbytes + 3 * mbytes + 64);
  Acts a{reinterpret_cast<int8_t*>(base), reinterpret_cast<float*>(base + (qbytes + 63) / 64 * 64),
         nullptr, nullptr, nb, S};
  a.s = a.d + Tp * nb;
  a.c = reinterpret_cast<int32_t*>(a.s + Tp * nb);
  auto quantize = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t tile = t / S * S * nb, slot = t % S;  // first (token, block) of the tile
      quantize_row_avx512(kind, x + t * K, K, a.q + tile * 32 + slot * 32, a.d + tile + slot,
                          a.s + tile + slot, a.c + tile + slot, S * 32, S);
    }
  };
  if (T * K >= 16384) {
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) { quantize(b, e); });
  } else {
    quantize(0, T);
  }

  const int64_t n_groups = (w.rows + kGroup - 1) / kGroup;
  const size_t gbytes = (size_t)nb * group_block_bytes(kind);
  pool.parallel_for(n_groups, [&](int64_t g0, int64_t g1, int) {
    if (w.packed) {
      run_groups(kind, w.packed + g0 * gbytes, gbytes, g1 - g0, a, T, y, w.rows, g0 * kGroup);
      return;
    }
    // Blocks straight from the file: interleave a few groups at a time into scratch.
    thread_local AlignedBuf wbuf;
    constexpr int64_t kChunk = 4;
    uint8_t* scratch = wbuf.get(kChunk * gbytes);
    for (int64_t g = g0; g < g1; g += kChunk) {
      const int64_t n = std::min(kChunk, g1 - g);
      pack_groups(w, g, g + n, scratch);
      run_groups(kind, scratch, gbytes, n, a, T, y, w.rows, g * kGroup);
    }
  });
  return true;
#else
  return false;
#endif
}

void matmul_ref(const WeightView& w, const float* x, int64_t T, float* y) {
  const Kind kind = kind_of(w.type);
  const int64_t K = w.cols, nb = K / 32;
  const size_t bb = block_bytes(kind);
  std::vector<int8_t> q(K);
  std::vector<float> d(nb), s(nb);
  std::vector<int32_t> c(nb);
  for (int64_t t = 0; t < T; ++t) {
    quantize_row_scalar(kind, x + t * K, K, q.data(), d.data(), s.data(), c.data());
    for (int64_t r = 0; r < w.rows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = w.row(r) + b * bb;
        int32_t isum = c[b];
        for (int j = 0; j < 32; ++j) isum += weight_u8(kind, blk, j) * q[b * 32 + j];
        uint16_t h;
        std::memcpy(&h, blk, 2);
        acc = std::fma((float)isum, fp16_to_f32(h) * d[b], acc);
        if (kind == Kind::Q4_1) {
          std::memcpy(&h, blk + 2, 2);
          acc = std::fma(fp16_to_f32(h), s[b], acc);
        }
      }
      y[t * w.rows + r] = acc;
    }
  }
}

}  // namespace int8mm

namespace {
// Storage for a packed copy. Large ones are mapped in 2 MiB pages where the kernel allows
// (transparent huge pages on request): a few hundred page faults instead of tens of
// thousands at load, and few TLB misses when the decode GEMV streams all the weights.
std::shared_ptr<uint8_t> alloc_packed(size_t n) {
  constexpr size_t kHuge = 2u << 20;
  if (n >= 2 * kHuge) {
    const size_t len = (n + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED) {
      // Align to 2 MiB inside the mapping; the whole mapping is released together.
      uint8_t* base = static_cast<uint8_t*>(p);
      uint8_t* a = reinterpret_cast<uint8_t*>(((uintptr_t)base + kHuge - 1) / kHuge * kHuge);
      madvise(a, len, MADV_HUGEPAGE);
      return std::shared_ptr<uint8_t>(a, [p, len](uint8_t*) { munmap(p, len + kHuge); });
    }
  }
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)),
                                  &std::free);
}
}  // namespace

WeightView pack_weights(const WeightView& w, bool drop_source) {
  if (!int8mm::cpu_has_kernels() || !int8mm::supports(w)) return w;
  const size_t n = int8mm::packed_bytes(w);
  std::shared_ptr<uint8_t> buf = alloc_packed(n);
  int8mm::pack(w, buf.get());
  WeightView v = w;
  v.packed = buf.get();
  v.packed_storage = std::move(buf);
  if (drop_source) {
    // The whole pages inside the blocks: clean pages of a read-only private file mapping,
    // dropped now and read from the file again only if something reads the blocks.
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t b = ((uintptr_t)w.data + page - 1) / page * page;
    const uintptr_t e = ((uintptr_t)w.data + w.rows * w.row_bytes) / page * page;
    if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
  }
  return v;
}

}  // namespace glimpse
