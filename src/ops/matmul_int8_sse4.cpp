// SSE4 kernels of the int8 matmul (GEMM for T > 1, GEMV for T = 1) and their activation
// rounding, for CPUs with SSSE3 + SSE4.1 but no AVX2. See matmul_int8.h for the per-output
// definition: these CPUs have no FMA, so this level computes the definition's unfused form
// (each product rounded to f32 before its add), the bits of matmul_ref(..., fused = false).
// The interleaved weight layout (matmul_int8.cpp) is read as four 128-bit vectors of 4 rows
// per 64-byte slice vector (lane = row, 4 bytes each); one tile is one group of 16 rows.
//
// The exact int32 block sums come from pmaddubsw (u8 x s8 -> i16 pairs, saturating) and
// pmaddwd with ones (-> i32); no i16 saturation can occur:
//   Q4_0 / Q4_1: weights 0..15 (u8) x activations -127..127: a pair is at most
//     2 * 15 * 127 = 3810 in magnitude, so the pairs of all 8 slices of a block (30480) are
//     summed in i16 before one pmaddwd. Q4_0's zero point comes in through c = -8 * asum.
//   Q8_0: the weights are signed (the layout's q + 128 flipped back); |q| <= 128 is the u8
//     operand and the activations take q's sign (psignb; an activation is never -128, see
//     quantize_row_sse4), so a pair is at most 2 * 128 * 127 = 32512: each slice goes
//     through pmaddwd on its own. The sum is then sum q * a directly, the reference's
//     sum (q + 128) * a - 128 * asum: c is not used.
//
// The f16 scales (and mins) of a group are widened to f32 once per group, for all its token
// tiles, with integer operations (no F16C here), exactly as fp16_to_f32 does (widen_f16).
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/matmul_int8_impl.h"

#if GLIMPSE_INT8_KERNELS
#include <immintrin.h>

namespace glimpse {
namespace int8mm {
namespace impl {
namespace {

#pragma GCC push_options
#pragma GCC target("ssse3,sse4.1")

// std::round: truncate, then step away from zero when the dropped fraction is >= 1/2
// (v - trunc(v) is exact for |v| < 2^23).
inline __m128 round_half_away(__m128 v) {
  const __m128 sign = _mm_set1_ps(-0.0f);
  const __m128 t = _mm_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m128 up = _mm_cmpge_ps(_mm_andnot_ps(sign, _mm_sub_ps(v, t)), _mm_set1_ps(0.5f));
  const __m128 one = _mm_or_ps(_mm_and_ps(v, sign), _mm_set1_ps(1.0f));
  return _mm_blendv_ps(t, _mm_add_ps(t, one), up);
}

// quantize_row_scalar with vectors, bit-identical: the same IEEE operations per block, and
// the scale's f16 rounding through f32_to_fp16 itself (once per block). The quants are the
// low bytes of the int32 values, as the other levels keep them: -127..127 for finite inputs
// (|x| * (1/d) stays below 127.5), 0 where x or 1/d is not finite (never -128, which the
// Q8_0 kernel's sign trick relies on).
void quantize_row_sse4(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                       int32_t* c, int64_t qstride, int64_t mstride) {
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  const __m128i low_byte = _mm_set1_epi32(0xFF);
  for (int64_t b = 0; b < K / 32; ++b, x += 32, q += qstride) {
    __m128 v[8];
    for (int i = 0; i < 8; ++i) v[i] = _mm_loadu_ps(x + 4 * i);
    __m128 m[4];
    for (int i = 0; i < 4; ++i)
      m[i] = _mm_max_ps(_mm_and_ps(v[2 * i], abs_mask), _mm_and_ps(v[2 * i + 1], abs_mask));
    __m128 m4 = _mm_max_ps(_mm_max_ps(m[0], m[1]), _mm_max_ps(m[2], m[3]));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    const __m128 idv = _mm_set1_ps(id);
    __m128i iv[8];
    for (int i = 0; i < 8; ++i)
      iv[i] = _mm_and_si128(_mm_cvttps_epi32(round_half_away(_mm_mul_ps(v[i], idv))), low_byte);
    // The values are 0..255 now: the unsigned packs cannot saturate (and keep the order).
    const __m128i q0 = _mm_packus_epi16(_mm_packus_epi32(iv[0], iv[1]),
                                        _mm_packus_epi32(iv[2], iv[3]));
    const __m128i q1 = _mm_packus_epi16(_mm_packus_epi32(iv[4], iv[5]),
                                        _mm_packus_epi32(iv[6], iv[7]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), q0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), q1);
    // asum: the quants as s8, widened by pmaddubsw against ones (u8) and summed.
    const __m128i ones8 = _mm_set1_epi8(1);
    const __m128i pairs = _mm_add_epi16(_mm_maddubs_epi16(ones8, q0), _mm_maddubs_epi16(ones8, q1));
    __m128i s4 = _mm_madd_epi16(pairs, _mm_set1_epi16(1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
    const int32_t asum = _mm_cvtsi128_si32(s4);
    finish_block(kind, asum, dd, fp16_to_f32(f32_to_fp16(dd)), d + b * mstride, s + b * mstride,
                 c + b * mstride);
  }
}

// Four f16 values (the low 16 bits of each int32 lane) to f32, bit-identical to
// fp16_to_f32 for every input, with integer operations and one exact subtraction:
//   normal: exponent rebiased by 112 (add 112 << 23 to the shifted bits);
//   inf / NaN (exponent 31): rebiased by 224, so the f32 exponent is 255, payload kept;
//   zero / subnormal (exponent 0): m * 2^-24 = (2^-14 + m * 2^-24) - 2^-14, the first term
//     built from the bits and the subtraction exact (both operands normal: no denormal
//     operand, no dependence on DAZ / FTZ); zero gives +0;
//   then the sign is or-ed in.
inline __m128 f16x4(__m128i h) {
  const __m128i em = _mm_and_si128(h, _mm_set1_epi32(0x7FFF));
  const __m128i sign = _mm_slli_epi32(_mm_xor_si128(h, em), 16);
  const __m128i sh = _mm_slli_epi32(em, 13);
  const __m128i rebias = _mm_set1_epi32(112 << 23);
  const __m128i infnan = _mm_cmpgt_epi32(em, _mm_set1_epi32(0x7BFF));
  const __m128i normal = _mm_add_epi32(_mm_add_epi32(sh, rebias), _mm_and_si128(infnan, rebias));
  const __m128 sub = _mm_sub_ps(_mm_castsi128_ps(_mm_add_epi32(sh, _mm_set1_epi32(113 << 23))),
                                _mm_set1_ps(1.0f / 16384.0f));
  const __m128i tiny = _mm_cmplt_epi32(em, _mm_set1_epi32(0x0400));
  const __m128 r = _mm_blendv_ps(_mm_castsi128_ps(normal), sub, _mm_castsi128_ps(tiny));
  return _mm_or_ps(r, _mm_castsi128_ps(sign));
}

// The n f16 values at p (n % 8 == 0) to f32 at out (16-byte aligned), bit-identical to
// fp16_to_f32. Runs of 8 with only normal values (exponent 1..30, as nearly all scales are)
// take a shorter path: with h in the high half of a lane, an arithmetic shift by 3 puts the
// exponent and mantissa at bits 27..13 with copies of the sign above them; masking the
// copies off and adding 112 << 23 rebiases the exponent (no carry reaches the sign).
void widen_f16(const uint8_t* p, int64_t n, float* out) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i exp_mask = _mm_set1_epi16(0x7C00);
  const __m128i keep = _mm_set1_epi32((int)0x8FFFE000u);
  const __m128i rebias = _mm_set1_epi32(112 << 23);
  for (int64_t i = 0; i < n; i += 8, p += 16, out += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i e = _mm_and_si128(h, exp_mask);
    const __m128i special = _mm_or_si128(_mm_cmpeq_epi16(e, zero), _mm_cmpeq_epi16(e, exp_mask));
    if (_mm_movemask_epi8(special) == 0) {
      const __m128i lo = _mm_srai_epi32(_mm_unpacklo_epi16(zero, h), 3);
      const __m128i hi = _mm_srai_epi32(_mm_unpackhi_epi16(zero, h), 3);
      _mm_store_ps(out, _mm_castsi128_ps(_mm_add_epi32(_mm_and_si128(lo, keep), rebias)));
      _mm_store_ps(out + 4, _mm_castsi128_ps(_mm_add_epi32(_mm_and_si128(hi, keep), rebias)));
    } else {  // zeros, subnormals, infinities or NaNs among them
      _mm_store_ps(out, f16x4(_mm_unpacklo_epi16(h, zero)));
      _mm_store_ps(out + 4, f16x4(_mm_unpackhi_epi16(h, zero)));
    }
  }
}

// The 4 activation bytes at dword k of the 16 bytes at p, in every lane.
inline __m128i bcast32(const int8_t* p, int k) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  switch (k) {
    case 0: return _mm_shuffle_epi32(v, 0x00);
    case 1: return _mm_shuffle_epi32(v, 0x55);
    case 2: return _mm_shuffle_epi32(v, 0xAA);
    default: return _mm_shuffle_epi32(v, 0xFF);
  }
}

constexpr int R = 4;  // vectors of 4 rows per tile: one group

// Exact int32 sums of one block for the R vectors x NT tokens (see the top of the file).
// The loops run over the row vectors outermost, so that one unpacked weight vector and the
// NT activation broadcasts are live next to the R * NT sums (16 xmm registers).
template <Kind kKind, int NT>
inline void block_sums(const uint8_t* qs, const int8_t* aq, const int32_t* ac,
                       __m128i (&isum)[R][NT]) {
  const __m128i ones = _mm_set1_epi16(1);
  if constexpr (kKind == Kind::Q8_0) {
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) isum[r][t] = _mm_setzero_si128();
    #pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m128i av[NT];
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) av[t] = bcast32(aq + t * 32 + (j / 4) * 16, j % 4);
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m128i wq =
            _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + r * 16 + j * 64)),
                          _mm_set1_epi8((char)0x80));
        const __m128i wabs = _mm_abs_epi8(wq);  // -128 -> 0x80 = 128 as u8
        #pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) {
          const __m128i p = _mm_maddubs_epi16(wabs, _mm_sign_epi8(av[t], wq));
          isum[r][t] = _mm_add_epi32(isum[r][t], _mm_madd_epi16(p, ones));
          // Keeps GCC from reassociating the chains into a tree of spilled partial sums.
          asm("" : "+x"(isum[r][t]));
        }
      }
    }
  } else {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i acc[R][NT];  // i16 pair sums of the whole block (|.| <= 30480)
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm_setzero_si128();
    // Slice j's low nibbles (elements 4j..) then its high nibbles (16 + 4j..). The sums
    // never saturate (see the top); the saturating add only keeps GCC from reassociating
    // the chains into a tree of spilled partial sums.
    #pragma GCC unroll 8
    for (int jh = 0; jh < 8; ++jh) {
      const int j = jh / 2;
      __m128i av[NT];
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) av[t] = bcast32(aq + t * 32 + (jh % 2) * 16, j);
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + r * 16 + j * 64));
        const __m128i w = _mm_and_si128(jh % 2 ? _mm_srli_epi16(v, 4) : v, m4);
        #pragma GCC unroll 4
        for (int t = 0; t < NT; ++t)
          acc[r][t] = _mm_adds_epi16(acc[r][t], _mm_maddubs_epi16(w, av[t]));
      }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m128i init = kKind == Kind::Q4_0 ? _mm_set1_epi32(ac[t]) : _mm_setzero_si128();
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) isum[r][t] = _mm_add_epi32(init, _mm_madd_epi16(acc[r][t], ones));
    }
  }
}

// Outputs of one group (R vectors of 4 rows, lanes = rows) x NT tokens (t0..) over all
// blocks; sf: the group's scales in f32, [nb][16] (then Q4_1's mins, [nb][16]). Per block:
// the exact int32 sums, then the float update of the unfused definition, in this order:
// p = dw * da; acc = acc + float(isum) * p; (Q4_1) acc = acc + mw * s.
template <Kind kKind, int NT>
void tile(const uint8_t* wg, const float* sf, const Acts& a, int64_t t0, float* y, int64_t ldy,
          int64_t row0, int64_t rows) {
  const int64_t nb = a.nb;
  // Running pointers, advanced once per block: quants, f32 scales, the token tile t0 / slots.
  const uint8_t* qs = wg;
  const int64_t S = a.slots;
  const int8_t* aq = a.q + t0 * nb * 32;
  const float* ad = a.d + t0 * nb;
  const float* as = a.s + t0 * nb;
  const int32_t* ac = a.c + t0 * nb;

  __m128 facc[R][NT];
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) facc[r][t] = _mm_setzero_ps();

  for (int64_t b = 0; b < nb;
       ++b, qs += qs_bytes(kKind), sf += 16, aq += S * 32, ad += S, as += S, ac += S) {
    __m128i isum[R][NT];
    block_sums<kKind, NT>(qs, aq, ac, isum);
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const __m128 da = _mm_set1_ps(ad[t]);
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        facc[r][t] = _mm_add_ps(
            facc[r][t],
            _mm_mul_ps(_mm_cvtepi32_ps(isum[r][t]), _mm_mul_ps(_mm_load_ps(sf + 4 * r), da)));
    }
    if constexpr (kKind == Kind::Q4_1) {
      #pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        const __m128 sa = _mm_set1_ps(as[t]);
        #pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          facc[r][t] = _mm_add_ps(facc[r][t], _mm_mul_ps(_mm_load_ps(sf + nb * 16 + 4 * r), sa));
      }
    }
  }
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const int64_t r0 = row0 + 4 * r;
    if (r0 >= rows) break;
    #pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      float* out = y + (t0 + t) * ldy + r0;
      if (rows - r0 >= 4) {
        _mm_storeu_ps(out, facc[r][t]);
      } else {
        float v[4];
        _mm_storeu_ps(v, facc[r][t]);
        std::memcpy(out, v, (size_t)(rows - r0) * 4);
      }
    }
  }
}

#pragma GCC pop_options

using TileFn = void (*)(const uint8_t*, const float*, const Acts&, int64_t, float*, int64_t,
                        int64_t, int64_t);

constexpr int kGemmTokens = 2;  // GEMM tile: 16 rows x 2 tokens; GEMV: 16 rows

template <Kind kKind>
TileFn pick_kind(int nt) {
  return nt == 1 ? tile<kKind, 1> : tile<kKind, kGemmTokens>;
}

TileFn pick(Kind k, int nt) {
  switch (k) {
    case Kind::Q4_0: return pick_kind<Kind::Q4_0>(nt);
    case Kind::Q4_1: return pick_kind<Kind::Q4_1>(nt);
    default: return pick_kind<Kind::Q8_0>(nt);
  }
}

// Each group's scales (and mins) are widened to f32 once, for all its token tiles.
void run_groups(Kind kind, const uint8_t* packed, size_t gbytes, int64_t ng, const Acts& a,
                int64_t T, float* y, int64_t rows, int64_t row0) {
  const int64_t nb = a.nb, nf = nb * (kind == Kind::Q4_1 ? 32 : 16);
  thread_local std::vector<float> sbuf;  // operator new: 16-byte aligned
  if ((int64_t)sbuf.size() < nf) sbuf.resize(nf);
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* wg = packed + g * gbytes;
    widen_f16(wg + nb * qs_bytes(kind), nf, sbuf.data());
    for (int64_t t0 = 0; t0 < T; t0 += kGemmTokens) {
      const int nt = (int)std::min<int64_t>(kGemmTokens, T - t0);
      pick(kind, nt)(wg, sbuf.data(), a, t0, y, rows, row0 + g * kGroup, rows);
    }
  }
}

}  // namespace

const Kernels kSse4{kGemmTokens, quantize_row_sse4, run_groups};

}  // namespace impl
}  // namespace int8mm
}  // namespace glimpse
#endif  // GLIMPSE_INT8_KERNELS
