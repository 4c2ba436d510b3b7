// Fused causal attention with online softmax, tiled over keys, GQA-aware, split-K capable.
//
// Decomposition. A work unit is (KV head g, block of <= kQueryBlock tokens); its rows are the
// G query heads x tokens of the block (row r = t_local * G + gi), so each key/value tile is
// loaded and converted once and used by the whole GQA group. The keys a unit sees are cut into
// chunks of kChunk entries aligned at absolute key index 0, and chunks into tiles of kKeyTile
// keys. ChunkPartial runs an online softmax over one chunk's tiles and yields, per row,
// (m = running max, l = sum of p, acc = sum of p * v); MergePartial folds chunk partials into
// a running state in chunk order.
//
// Determinism. The tiles, chunks and merge order a query goes through depend only on which
// keys it sees (the first and the last index; the first is 0 without a window), and every row is computed by the same sequence of operations whichever rows
// share its tile. So:
//  * decode (few query blocks) computes a head's chunks on different threads (split-K, as
//    flash-decoding) and merges them afterwards, while prefill walks the chunks of a unit in
//    order on one thread; both yield bit-identical outputs, whatever the thread count;
//  * a token attended in a batch of 512 gets exactly the output it gets when decoded alone.
//
// Element types. K and V are read in their stored type (ops/kv_types.h): f32, f16, bf16 or
// q8_0 rows, converted to f32 exactly as kv_rows_to_f32 does (q8_0: f32(scale) * q). The
// tile kernels are templates over the stored type (ChunkPartial<K, V>); the f32 work (scores,
// softmax, P.V on an f32 value tile) is shared. Decode reads keys and values straight from
// the cache, converting them in registers; prefill converts a tile of each to f32 once for
// all its row blocks (keys in pairs on AVX-512).
//
// Scores. s = q . k is computed as 8-lane FMA chains over the head dimension, then one fixed
// reduction tree per target (ScoreKeys, Reduce4; ScorePairs on AVX-512 prefill runs the same
// chains two keys per vector), so a score has the same bits whichever rows and keys share its
// register block.
//
// Numerics (as the reference engine): with f16 keys q is rounded to f16 before the dot
// products, and with f16 values each probability p = exp(s - m_running) is rounded to f16
// before it multiplies them; l sums the p actually used, so the output is a convex
// combination. Other types keep q and p in f32 (llama.cpp's f32 cache does the same).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/aligned_allocator.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/kv_types.h"
#include "ops/attention.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kQueryBlock = 16;  // tokens per work unit
constexpr int64_t kKeyTile = 64;     // keys per online-softmax step (a multiple of 4 lanes)
constexpr int64_t kChunk = kAttentionChunk;  // keys per split-K partial (a multiple of kKeyTile)
// Register blocks, sized to the register file (32 vectors with AVX-512, 16 below): P.V
// takes kRowBlock rows x kPvVecs vectors of the head dimension, scores take kScoreRows rows
// x kScoreKeys keys; larger blocks spill an accumulator and serialise the loop on it.
constexpr int kRowBlock = 6;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kPvVecs = 4;
constexpr int kScoreRows = 6;
constexpr int kScoreKeys = 4;
#else
constexpr int kPvVecs = 2;
constexpr int kScoreRows = 3;
constexpr int kScoreKeys = 3;
#endif
// Up to this many rows (a decode token's GQA group, or the few tokens of a speculative
// verification) read K and V straight from the cache, each row block converting them in
// registers; more rows (prefill) convert a tile to f32 once for all their blocks.
constexpr int64_t kDirectRows = 18;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Growable 64-byte aligned float buffer (whole-vector loads never split a cache line).
struct Buf {
  hwy::AlignedFreeUniquePtr<float[]> p;
  size_t n = 0;
  float* get(size_t need) {
    if (need > n) {
      p = hwy::AllocateAligned<float>(need);
      n = need;
    }
    return p.get();
  }
};

// Head dimension padded to whole groups of 4 vectors (the PV register block).
int64_t PaddedDim(int64_t d) {
  const int64_t w = 4 * (int64_t)hn::Lanes(DF());
  return (d + w - 1) / w * w;
}

// Stored element c of a row of type T, in f32 (the scalar path and edge tiles).
template <KvType T>
HWY_INLINE float ElemAt(const uint8_t* row, int64_t c) {
  uint16_t h;
  if constexpr (T == KvType::F32) {
    float x;
    std::memcpy(&x, row + 4 * c, 4);
    return x;
  } else if constexpr (T == KvType::F16) {
    std::memcpy(&h, row + 2 * c, 2);
    return fp16_to_f32(h);
  } else if constexpr (T == KvType::BF16) {
    std::memcpy(&h, row + 2 * c, 2);
    return bf16_to_f32(h);
  } else {
    const uint8_t* blk = row + c / kKvQ8Block * kKvQ8BlockBytes;
    std::memcpy(&h, blk, 2);
    return fp16_to_f32(h) * (float)(int8_t)blk[2 + c % kKvQ8Block];
  }
}

// A q8_0 block scale (f16 bits) in f32: F16C on x86 targets that have it (exact, as the
// software conversion, but without its branches: one scale per 32 values of every row).
HWY_INLINE float ScaleToF32(uint16_t h) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(h);
#else
  return fp16_to_f32(h);
#endif
}

// dst[0..dp) = f32(row[0..d)) for a stored row of type T, zero padded.
template <KvType T>
void RowToF32(const uint8_t* row, int64_t d, float* dst, int64_t dp) {
  const DF df;
  const int64_t N = (int64_t)hn::Lanes(df);
  int64_t i = 0;
  if constexpr (T == KvType::F32) {
    const float* src = reinterpret_cast<const float*>(row);
    for (; i + N <= d; i += N) hn::Store(hn::LoadU(df, src + i), df, dst + i);
  } else if constexpr (T == KvType::F16 || T == KvType::BF16) {
    using E = std::conditional_t<T == KvType::F16, hwy::float16_t, hwy::bfloat16_t>;
    const hn::Rebind<E, DF> dh;
    for (; i + N <= d; i += N)
      hn::Store(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const E*>(row) + i)), df, dst + i);
  } else {  // q8_0: d % 32 == 0 and 32 is a multiple of the lanes
    const hn::Rebind<int8_t, DF> di8;
    const hn::Rebind<int32_t, DF> di32;
    for (; i < d; i += kKvQ8Block) {
      const uint8_t* blk = row + i / kKvQ8Block * kKvQ8BlockBytes;
      uint16_t h;
      std::memcpy(&h, blk, 2);
      const VF vd = hn::Set(df, ScaleToF32(h));
      const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
      for (int64_t j = 0; j < kKvQ8Block; j += N)
        hn::Store(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, q + j))), vd), df,
                  dst + i + j);
    }
  }
  for (; i < d; ++i) dst[i] = ElemAt<T>(row, i);
  for (; i < dp; ++i) dst[i] = 0.0f;
}

// A q8_0 value row read in place: rows are addressed in bytes (sizeof 1).
struct Q8Byte {
  uint8_t b;
};

// Values e..e+lanes of a value row: f32 as is, f16 / bf16 widened, q8_0 scale * q (e a
// multiple of the lanes, so a vector sits in one 32-value block); all exact and equal to
// what RowToF32 writes into the tile.
template <class Src, class D = DF>
HWY_INLINE hn::Vec<D> LoadValues(const Src* HWY_RESTRICT row, int64_t e, D df = D()) {
  if constexpr (std::is_same_v<Src, float>) {
    return hn::LoadU(df, row + e);
  } else if constexpr (std::is_same_v<Src, Q8Byte>) {
    const uint8_t* blk = &row->b + e / kKvQ8Block * kKvQ8BlockBytes;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2 + e % kKvQ8Block);
    const hn::Rebind<int8_t, D> di8;
    const hn::Rebind<int32_t, D> di32;
    const auto x = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, q)));
    return hn::Mul(x, hn::Set(df, ScaleToF32(h)));
  } else {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<Src, D>(), row + e));
  }
}

// Scores use vectors of at most 8 floats: with d = 64 a 16-lane score would need only 4 FMAs
// but a 16-lane reduction; 8 lanes halve the reduction per score, and the 32 registers of
// AVX-512 hold a 6 x 4 block. (Zen 4 runs 512-bit FMAs at half rate, so 8 lanes lose no
// FLOPs there.)
using DS = hn::CappedTag<float, 8>;
using VS = hn::Vec<DS>;

// s[0..4) = the lane sums of a0..a3, each by one fixed tree per target, so a score never
// depends on which keys share its group (a batch and a single decode token agree bit for
// bit). x86 (8 lanes): pairwise horizontal adds, then the 128-bit halves.
HWY_INLINE void Reduce4(VS a0, VS a1, VS a2, VS a3, float* HWY_RESTRICT s) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0.raw, a1.raw), _mm256_hadd_ps(a2.raw, a3.raw));
  _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
#else
  const DS ds;
  s[0] = hn::GetLane(hn::SumOfLanes(ds, a0));
  s[1] = hn::GetLane(hn::SumOfLanes(ds, a1));
  s[2] = hn::GetLane(hn::SumOfLanes(ds, a2));
  s[3] = hn::GetLane(hn::SumOfLanes(ds, a3));
#endif
}

// Scores of kRows query rows against kKeys <= 4 keys: s[r][i] = sum_c q[r][c] * k_i[c] for
// i < n, as lane-wise FMA chains over c in order, then Reduce4 (a missing key's sums are 0).
// q: [kRows][ldq] (zero past d), k_i: stored rows of Src (the f32 tile, or the cache itself,
// converted in registers), read over [0, dp); s: [kRows][lds].
template <int kRows, int kKeys, class Src>
HWY_INLINE void ScoreKeys(const float* HWY_RESTRICT q, int64_t ldq, const Src* const k[kKeys],
                          int64_t dp, int64_t n, float* HWY_RESTRICT s, int64_t lds) {
  const DS ds;
  const int64_t N = (int64_t)hn::Lanes(ds);
  VS a[kRows][4];
  HWY_UNROLL(6)
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < 4; ++i) a[r][i] = hn::Zero(ds);
  for (int64_t c = 0; c < dp; c += N) {
    VS kc[kKeys];
    HWY_UNROLL(4)
    for (int i = 0; i < kKeys; ++i) kc[i] = LoadValues(k[i], c, ds);
    HWY_UNROLL(6)
    for (int r = 0; r < kRows; ++r) {
      const VS qc = hn::Load(ds, q + r * ldq + c);
      HWY_UNROLL(4)
      for (int i = 0; i < kKeys; ++i) a[r][i] = hn::MulAdd(qc, kc[i], a[r][i]);
    }
  }
  HWY_UNROLL(6)
  for (int r = 0; r < kRows; ++r) {
    alignas(16) float sums[4];
    Reduce4(a[r][0], a[r][1], a[r][2], a[r][3], sums);
    for (int64_t i = 0; i < n; ++i) s[r * lds + i] = sums[i];
  }
}

// acc[r] = acc[r] * corr[r] (if corr) then += p[r][j] * v[j] for j in [j0, j1), in order of j.
// p: [kRows][kKeyTile], v: [kKeyTile][ldv] of Src (the f32 value tile, or the stored rows
// straight from the cache when d is a multiple of 4 lanes, kPvVecs at a time: one row block (decode) then reads
// V once and saves a store and reload of the tile; the conversion is exact, so the results
// are the same), acc: [kRows][dp].
template <int kRows, class Src>
HWY_INLINE void PvRows(const float* HWY_RESTRICT p, const Src* HWY_RESTRICT v, int64_t ldv,
                       int64_t dp, int64_t j0, int64_t j1, const float* corr,
                       float* HWY_RESTRICT acc) {
  const DF df;
  const int64_t N = (int64_t)hn::Lanes(df);
  for (int64_t c = 0; c < dp; c += kPvVecs * N) {
    VF a[kRows][kPvVecs];
    HWY_UNROLL(6)
    for (int r = 0; r < kRows; ++r)
      for (int i = 0; i < kPvVecs; ++i) {
        a[r][i] = hn::Load(df, acc + r * dp + c + i * N);
        if (corr) a[r][i] = hn::Mul(a[r][i], hn::Set(df, corr[r]));
      }
    for (int64_t j = j0; j < j1; ++j) {
      const Src* vr = v + j * ldv;
      VF vc[kPvVecs];
      HWY_UNROLL(4)
      for (int i = 0; i < kPvVecs; ++i) vc[i] = LoadValues(vr, c + i * N);
      HWY_UNROLL(6)
      for (int r = 0; r < kRows; ++r) {
        const VF pj = hn::Set(df, p[r * kKeyTile + j]);
        HWY_UNROLL(4)
        for (int i = 0; i < kPvVecs; ++i) a[r][i] = hn::MulAdd(pj, vc[i], a[r][i]);
      }
    }
    HWY_UNROLL(6)
    for (int r = 0; r < kRows; ++r)
      for (int i = 0; i < kPvVecs; ++i) hn::Store(a[r][i], df, acc + r * dp + c + i * N);
  }
}

// Row blocks of kBlock (<= 6), then the remainder, through the fixed-size kernels.
template <int kBlock, class F>
HWY_INLINE void ForRowBlocks(int64_t r0, int64_t r1, const F& f) {
  int64_t r = r0;
  for (; r + kBlock <= r1; r += kBlock) f(r, std::integral_constant<int, kBlock>());
  switch (r1 - r) {
    case 5: if constexpr (kBlock > 5) f(r, std::integral_constant<int, 5>()); break;
    case 4: if constexpr (kBlock > 4) f(r, std::integral_constant<int, 4>()); break;
    case 3: if constexpr (kBlock > 3) f(r, std::integral_constant<int, 3>()); break;
    case 2: if constexpr (kBlock > 2) f(r, std::integral_constant<int, 2>()); break;
    case 1: if constexpr (kBlock > 1) f(r, std::integral_constant<int, 1>()); break;
    default: break;
  }
}

// One online-softmax step for a row: s[0..kKeyTile) raw scores of which [j0, nk) are
// visible (j0 < nk; j0 > 0 only at a sliding window's start). Turns s into
// p = exp(scale * s - m_new) (0 where masked; rounded to f16 when kRoundP), updates m and l,
// returns the factor the row's accumulator must be rescaled by.
template <bool kRoundP>
HWY_INLINE float SoftmaxStep(float* HWY_RESTRICT s, int64_t j0, int64_t nk, float scale, float& m,
                             float& l) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  const VF vscale = hn::Set(df, scale), vninf = hn::Set(df, kNegInf);
  VF vmax = vninf;
  for (int64_t j = 0; j < kKeyTile; j += N) {
    const auto visible = hn::AndNot(hn::FirstN(df, (size_t)std::clamp<int64_t>(j0 - j, 0, N)),
                                    hn::FirstN(df, (size_t)std::clamp<int64_t>(nk - j, 0, N)));
    const VF x = hn::IfThenElse(visible, hn::Mul(hn::Load(df, s + j), vscale), vninf);
    hn::Store(x, df, s + j);
    vmax = hn::Max(vmax, x);
  }
  const float m_new = std::max(m, hn::GetLane(hn::MaxOfLanes(df, vmax)));
  const float corr = std::exp(m - m_new);  // 0 on the first tile (m = -inf), 1 if unchanged
  const VF vm = hn::Set(df, m_new);
  VF vsum = hn::Zero(df);
  for (int64_t j = 0; j < kKeyTile; j += N) {  // masked: exp(-inf) = 0
    const VF e = hn::Exp(df, hn::Sub(hn::Load(df, s + j), vm));
    VF pr = e;
    if constexpr (kRoundP) pr = hn::PromoteTo(df, hn::DemoteTo(dh, e));
    hn::Store(pr, df, s + j);
    vsum = hn::Add(vsum, pr);
  }
  l = std::fma(l, corr, hn::GetLane(hn::SumOfLanes(df, vsum)));
  m = m_new;
  return corr;
}

// A unit: rows of one KV head's query block, q already rounded to f16 and padded.
struct Unit {
  const float* q = nullptr;  // [R][dp]
  int64_t R = 0, G = 1, d = 0, dp = 0;
  const uint8_t* k = nullptr;  // [n_keys] stored key rows, ldk bytes apart
  const uint8_t* v = nullptr;  // [n_keys] stored value rows, ldv bytes apart
  int64_t ldk = 0, ldv = 0;
  int64_t lim0 = 0;  // keys row 0 sees; row r sees lim0 + r / G
  int64_t window = 0;  // > 0: row r sees only the keys [hi(r) - window, hi(r))
  float scale = 1.0f;
  int64_t n_keys() const { return lim0 + R / G - 1; }
  int64_t n_chunks() const { return (n_keys() + kChunk - 1) / kChunk; }
  int64_t hi(int64_t r) const { return lim0 + r / G; }  // one past row r's last key
  int64_t lo(int64_t r) const { return window > 0 ? std::max<int64_t>(0, hi(r) - window) : 0; }
  // The first chunk any row sees (the rows' windows start in row order).
  int64_t first_chunk() const { return lo(0) / kChunk; }
};

// Per-row softmax state: acc [R][dp], m [R], l [R] in one buffer of StateSize floats.
struct State {
  float* acc;
  float* m;
  float* l;
};
int64_t StateSize(int64_t R, int64_t dp) { return (R * (dp + 2) + 15) / 16 * 16; }
State StateAt(float* base, int64_t R, int64_t dp) {
  return {base, base + R * dp, base + R * dp + R};
}
void ClearState(State st, int64_t R, int64_t dp) {
  std::fill(st.acc, st.acc + R * dp, 0.0f);
  std::fill(st.m, st.m + R, kNegInf);
  std::fill(st.l, st.l + R, 0.0f);
}

struct TileScratch {
  Buf kf, vf, s, corr;
};

// Scores of rows [r0, R) against the keys [0, nk) of a tile: s[r][0..nk), in groups of
// kScoreKeys keys (the last group repeats its last key). k: [nk][ldk] of Src.
template <class Src>
HWY_NOINLINE void ScoreTile(const Unit& u, int64_t r0, const Src* k, int64_t ldk, int64_t nk,
                            float* s) {
  ForRowBlocks<kScoreRows>(r0, u.R, [&](int64_t r, auto rows) {
    for (int64_t j = 0; j < nk; j += kScoreKeys) {
      const Src* kr[kScoreKeys];
      for (int64_t i = 0; i < kScoreKeys; ++i) kr[i] = k + std::min(j + i, nk - 1) * ldk;
      ScoreKeys<decltype(rows)::value, kScoreKeys>(u.q + r * u.dp, u.dp, kr, u.dp,
                                                   std::min<int64_t>(kScoreKeys, nk - j),
                                                   s + r * kKeyTile + j, kKeyTile);
    }
  });
}

// p * v of rows [r0, r1) for the tile of keys [kb, kb + nk): over the keys all rows of a
// block see, then each row's own remainder (rows near the causal diagonal), so every row
// accumulates exactly its visible keys, in order (keys before a window's start have p = 0).
// v: [nk][ldv] of Src.
template <class Src>
HWY_NOINLINE void PvTile(const Unit& u, int64_t kb, int64_t nk, int64_t r0, int64_t r1,
                         const float* s, const Src* v, int64_t ldv, const float* corr,
                         float* acc) {
  const int64_t G = u.G, dp = u.dp;
  auto visible = [&](int64_t r) { return std::min(nk, u.lim0 + r / G - kb); };
  ForRowBlocks<kRowBlock>(r0, r1, [&](int64_t r, auto rows) {
    constexpr int kRows = decltype(rows)::value;
    const int64_t j_common = visible(r);
    PvRows<kRows>(s + r * kKeyTile, v, ldv, dp, 0, j_common, corr + r, acc + r * dp);
    for (int64_t i = 0; i < kRows; ++i)
      if (visible(r + i) > j_common)
        PvRows<1>(s + (r + i) * kKeyTile, v, ldv, dp, j_common, visible(r + i), nullptr,
                  acc + (r + i) * dp);
  });
}

// The element type of value rows read straight from the cache.
template <KvType T>
using DirectValue = std::conditional_t<
    T == KvType::F32, float,
    std::conditional_t<T == KvType::F16, hwy::float16_t,
                       std::conditional_t<T == KvType::BF16, hwy::bfloat16_t, Q8Byte>>>;

// dst[j][0..dp) = f32(rows[j]) for j < nk: the rows of a tile (ld bytes apart) converted
// once for all row blocks; whole vectors straight through LoadValues when d == dp, else row
// by row with zero padding. Same values either way.
template <KvType T>
HWY_INLINE void TileToF32(const uint8_t* rows, int64_t ld, int64_t nk, int64_t d, float* dst,
                          int64_t dp) {
  if (d != dp) {
    for (int64_t j = 0; j < nk; ++j) RowToF32<T>(rows + j * ld, d, dst + j * dp, dp);
    return;
  }
  const DF df;
  const int64_t N = (int64_t)hn::Lanes(df);
  using Src = DirectValue<T>;
  for (int64_t j = 0; j < nk; ++j) {
    const Src* row = reinterpret_cast<const Src*>(rows + j * ld);
    for (int64_t c = 0; c < dp; c += N) hn::Store(LoadValues(row, c), df, dst + j * dp + c);
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// Prefill scores on AVX-512: two keys per 512-bit vector, each half an 8-lane score vector
// of ScoreKeys, so the products, the FMA chains and the reduction tree are those of the
// 8-lane kernel lane for lane (a batch and a decode token still agree bit for bit) while
// every FMA does 16 lanes of work.
//
// kp: the tile's keys in pairs, pair p at kp + p * 2 * dp, its 8-dimension block b at
// + 16 * b: key 2p in the low half, key 2p + 1 in the high half; keys past nk repeat the
// last one up to a multiple of 8. Needs d == dp.
template <KvType T>
HWY_INLINE void TileToPairs(const uint8_t* rows, int64_t ld, int64_t nk, int64_t dp, float* kp) {
  const DS ds;
  using Src = DirectValue<T>;
  for (int64_t j = 0; j < (nk + 7) / 8 * 8; ++j) {
    const Src* row = reinterpret_cast<const Src*>(rows + std::min(j, nk - 1) * ld);
    float* dst = kp + j / 2 * 2 * dp + j % 2 * 8;
    for (int64_t c = 0; c < dp; c += 8) hn::Store(LoadValues(row, c, ds), ds, dst + 2 * c);
  }
}

// The 8 scores of keys 0..7 held in pairs by a0..a3 (keys 2i, 2i+1 in a_i), with the tree of
// Reduce4: s = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)) per key. hadd of each 128-bit
// lane is spelled as two shuffles and an add (512-bit hadd does not exist).
HWY_INLINE void ReducePairs(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float* HWY_RESTRICT s) {
  auto hadd = [](__m512 x, __m512 y) {
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, 0x88), _mm512_shuffle_ps(x, y, 0xdd));
  };
  // 128-bit lanes of h: lows of keys 0,2,4,6 | their highs | lows of 1,3,5,7 | their highs.
  const __m512 h = hadd(hadd(a0, a1), hadd(a2, a3));
  const __m512 sum = _mm512_add_ps(_mm512_shuffle_f32x4(h, h, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(h, h, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // 0,2,4,6,1,3,5,7 -> 0..7
  _mm256_storeu_ps(s, _mm256_permutexvar_ps(order, _mm512_castps512_ps256(sum)));
}

// Scores of kRows rows against 8 keys in pairs (kp at their first pair): s[r][0..n).
template <int kRows>
HWY_INLINE void ScorePairs(const float* HWY_RESTRICT q, int64_t ldq, const float* HWY_RESTRICT kp,
                           int64_t dp, int64_t n, float* HWY_RESTRICT s, int64_t lds) {
  __m512 a[kRows][4];
  HWY_UNROLL(6)
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  for (int64_t c = 0; c < dp; c += 8) {
    __m512 k[4];
    HWY_UNROLL(4)
    for (int i = 0; i < 4; ++i) k[i] = _mm512_load_ps(kp + i * 2 * dp + 2 * c);
    HWY_UNROLL(6)
    for (int r = 0; r < kRows; ++r) {
      const __m512 qc = _mm512_broadcast_f32x8(_mm256_load_ps(q + r * ldq + c));
      HWY_UNROLL(4)
      for (int i = 0; i < 4; ++i) a[r][i] = _mm512_fmadd_ps(qc, k[i], a[r][i]);
    }
  }
  HWY_UNROLL(6)
  for (int r = 0; r < kRows; ++r) {
    alignas(32) float sums[8];
    ReducePairs(a[r][0], a[r][1], a[r][2], a[r][3], sums);
    for (int64_t i = 0; i < n; ++i) s[r * lds + i] = sums[i];
  }
}

HWY_NOINLINE void ScoreTilePairs(const Unit& u, int64_t r0, const float* kp, int64_t nk,
                                 float* s) {
  ForRowBlocks<kScoreRows>(r0, u.R, [&](int64_t r, auto rows) {
    for (int64_t j = 0; j < nk; j += 8)
      ScorePairs<decltype(rows)::value>(u.q + r * u.dp, u.dp, kp + j * u.dp, u.dp,
                                        std::min<int64_t>(8, nk - j), s + r * kKeyTile + j,
                                        kKeyTile);
  });
}
#endif

// Scores of rows [r0, R) against the keys [0, nk) of a tile of stored rows: straight from
// the cache for one row block (decode), else through an f32 copy of the tile shared by the
// row blocks (key pairs on AVX-512). kf: scratch of kKeyTile x dp floats.
template <KvType KT>
HWY_INLINE void ScoreKeyTile(const Unit& u, int64_t r0, const uint8_t* ktile, int64_t nk,
                             float* kf, float* s) {
  const int64_t d = u.d, dp = u.dp;
  if (u.R - r0 <= kDirectRows && d == dp) {
    const auto* k = reinterpret_cast<const DirectValue<KT>*>(ktile);
    ScoreTile(u, r0, k, u.ldk / (int64_t)sizeof(*k), nk, s);
    return;
  }
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if (d == dp) {
    TileToPairs<KT>(ktile, u.ldk, nk, dp, kf);
    ScoreTilePairs(u, r0, kf, nk, s);
    return;
  }
#endif
  TileToF32<KT>(ktile, u.ldk, nk, d, kf, dp);
  ScoreTile(u, r0, static_cast<const float*>(kf), dp, nk, s);
}

// Online softmax over the keys [c0, c0 + kChunk) of u (clipped to what each row sees),
// starting from an empty state. Rows that see none of these keys keep m = -inf.
template <KvType KT, KvType VT>
HWY_NOINLINE void ChunkPartial(const Unit& u, int64_t c0, State st, TileScratch& sc) {
  const int64_t R = u.R, G = u.G, d = u.d, dp = u.dp;
  const int64_t c1 = std::min(c0 + kChunk, u.n_keys());
  float* kf = sc.kf.get(kKeyTile * dp);
  float* vf = sc.vf.get(kKeyTile * dp);
  float* s = sc.s.get(R * kKeyTile);
  float* corr = sc.corr.get(R);
  ClearState(st, R, dp);
  for (int64_t kb = c0; kb < c1; kb += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, c1 - kb);
    // Rows that see key kb: row r sees lim0 + r / G keys, rows are sorted by token. With a
    // window, rows [r1, R) start after the tile (their windows start in row order too).
    const int64_t r0 = std::max<int64_t>(0, kb - u.lim0 + 1) * G;
    const int64_t r1 =
        u.window > 0 ? std::min(R, std::max<int64_t>(0, kb + nk + u.window - u.lim0) * G) : R;
    if (r1 <= r0) continue;
    // No software prefetch: K and V are read in address order and the hardware streams
    // keep up. Prefetching the current and next tile (into L1 or L2) made decode at 8000
    // keys from DRAM 1.2-1.6x slower (docs/results/isa-levels/README.md, "Decode attention").
    const uint8_t* ktile = u.k + kb * u.ldk;
    ScoreKeyTile<KT>(u, r0, ktile, nk, kf, s);
    for (int64_t r = r0; r < r1; ++r)
      corr[r] = SoftmaxStep<VT == KvType::F16>(s + r * kKeyTile,
                                               std::max<int64_t>(0, u.lo(r) - kb),
                                               std::min(nk, u.hi(r) - kb), u.scale, st.m[r],
                                               st.l[r]);
    const uint8_t* vtile = u.v + kb * u.ldv;
    if (R - r0 <= kDirectRows && d == dp) {  // few row blocks: V straight from the cache
      const auto* v = reinterpret_cast<const DirectValue<VT>*>(vtile);
      PvTile(u, kb, nk, r0, r1, s, v, u.ldv / (int64_t)sizeof(*v), corr, st.acc);
      continue;
    }
    TileToF32<VT>(vtile, u.ldv, nk, d, vf, dp);
    PvTile(u, kb, nk, r0, r1, s, static_cast<const float*>(vf), dp, corr, st.acc);
  }
}

using ChunkFn = void (*)(const Unit&, int64_t, State, TileScratch&);

template <KvType KT>
ChunkFn PickChunkV(KvType v) {
  switch (v) {
    case KvType::F32: return &ChunkPartial<KT, KvType::F32>;
    case KvType::F16: return &ChunkPartial<KT, KvType::F16>;
    case KvType::BF16: return &ChunkPartial<KT, KvType::BF16>;
    case KvType::Q8_0: return &ChunkPartial<KT, KvType::Q8_0>;
  }
  return nullptr;
}

ChunkFn PickChunk(KvType k, KvType v) {
  switch (k) {
    case KvType::F32: return PickChunkV<KvType::F32>(v);
    case KvType::F16: return PickChunkV<KvType::F16>(v);
    case KvType::BF16: return PickChunkV<KvType::BF16>(v);
    case KvType::Q8_0: return PickChunkV<KvType::Q8_0>(v);
  }
  return nullptr;
}

// Folds the partial of the next chunk into the running state (the first one is copied).
HWY_NOINLINE void MergePartial(State st, State part, int64_t R, int64_t dp) {
  const DF df;
  const int64_t N = (int64_t)hn::Lanes(df);
  for (int64_t r = 0; r < R; ++r) {
    float* a = st.acc + r * dp;
    const float* b = part.acc + r * dp;
    if (part.m[r] == kNegInf) continue;  // row saw no key of this chunk
    if (st.m[r] == kNegInf) {
      std::copy(b, b + dp, a);
      st.m[r] = part.m[r];
      st.l[r] = part.l[r];
      continue;
    }
    const float m = std::max(st.m[r], part.m[r]);
    const float fa = std::exp(st.m[r] - m), fb = std::exp(part.m[r] - m);
    st.l[r] = std::fma(part.l[r], fb, st.l[r] * fa);
    st.m[r] = m;
    const VF va = hn::Set(df, fa), vb = hn::Set(df, fb);
    for (int64_t c = 0; c < dp; c += N)
      hn::Store(hn::MulAdd(hn::Load(df, b + c), vb, hn::Mul(hn::Load(df, a + c), va)), df, a + c);
  }
}

// Rows of q for unit (g, t0): q[t][h][c] (rounded to f16 for f16 keys), as [R][dp] with
// zero padding.
void BuildQ(const AttentionParams& p, const float* q, int64_t T, int g, int64_t t0, int64_t dp,
            float* dst) {
  const bool round = p.type_k == KvType::F16;
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = (int64_t)hn::Lanes(df);
  const int64_t d = p.head_dim, G = p.n_head / p.n_kv_head;
  const int64_t nt = std::min(kQueryBlock, T - t0);
  for (int64_t tl = 0; tl < nt; ++tl)
    for (int64_t gi = 0; gi < G; ++gi) {
      const float* src = q + ((t0 + tl) * p.n_head + g * G + gi) * d;
      float* row = dst + (tl * G + gi) * dp;
      if (!round) {
        std::copy(src, src + d, row);
      } else {
        int64_t c = 0;
        for (; c + N <= d; c += N)
          hn::Store(hn::PromoteTo(df, hn::DemoteTo(dh, hn::LoadU(df, src + c))), df, row + c);
        for (; c < d; ++c) row[c] = fp16_to_f32(f32_to_fp16(src[c]));
      }
      std::fill(row + d, row + dp, 0.0f);
    }
}

// out rows of the unit = acc / l.
void WriteOut(const AttentionParams& p, const State& st, int64_t R, int64_t dp, int g,
              int64_t t0, float* out) {
  const int64_t d = p.head_dim, G = p.n_head / p.n_kv_head;
  for (int64_t r = 0; r < R; ++r) {
    const float* a = st.acc + r * dp;
    float* dst = out + ((t0 + r / G) * p.n_head + g * G + r % G) * d;
    const float l = st.l[r];
    for (int64_t c = 0; c < d; ++c) dst[c] = a[c] / l;
  }
}

void AttentionImpl(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
                   float* out, ThreadPool& pool) {
  const int64_t G = p.n_head / p.n_kv_head, d = p.head_dim, dp = PaddedDim(d);
  const int64_t n_qb = (T + kQueryBlock - 1) / kQueryBlock;
  const int64_t n_units = n_qb * p.n_kv_head;
  const int64_t state_max = StateSize(kQueryBlock * G, dp);
  const int64_t ldk = (int64_t)kv_row_bytes(p.type_k, (int)d);
  const int64_t ldv = (int64_t)kv_row_bytes(p.type_v, (int)d);
  const ChunkFn chunk_partial = PickChunk(p.type_k, p.type_v);
  auto unit_at = [&](int64_t ui, const float* qtile) {
    const int64_t qb = ui / p.n_kv_head;
    const int g = (int)(ui % p.n_kv_head);
    Unit u;
    u.q = qtile;
    u.R = std::min(kQueryBlock, T - qb * kQueryBlock) * G;
    u.G = G;
    u.d = d;
    u.dp = dp;
    u.k = static_cast<const uint8_t*>(heads[g].k);
    u.v = static_cast<const uint8_t*>(heads[g].v);
    u.ldk = ldk;
    u.ldv = ldv;
    u.lim0 = heads[g].n_base + qb * kQueryBlock + 1;
    u.window = p.window;
    u.scale = p.scale;
    return u;
  };

  if (n_units >= 4 * (int64_t)pool.size()) {
    // Enough units to keep every thread busy: each walks its chunks in order. Later query
    // blocks see more keys, so the most expensive units go first.
    pool.parallel_for_dynamic(n_units, [&](int64_t i, int) {
      thread_local TileScratch sc;
      thread_local Buf qbuf, sbuf, pbuf;
      const int64_t ui = n_units - 1 - i;
      const Unit u = unit_at(ui, nullptr);
      float* qt = qbuf.get(u.R * dp);
      BuildQ(p, q, T, (int)(ui % p.n_kv_head), ui / p.n_kv_head * kQueryBlock, dp, qt);
      Unit uq = u;
      uq.q = qt;
      const State st = StateAt(sbuf.get(state_max), u.R, dp);
      const State part = StateAt(pbuf.get(state_max), u.R, dp);
      ClearState(st, u.R, dp);
      for (int64_t c = uq.first_chunk(); c < uq.n_chunks(); ++c) {
        chunk_partial(uq, c * kChunk, part, sc);
        MergePartial(st, part, u.R, dp);
      }
      WriteOut(p, st, u.R, dp, (int)(ui % p.n_kv_head), ui / p.n_kv_head * kQueryBlock, out);
    });
    return;
  }

  // Few units (decode): every (unit, chunk) is a work item with its own partial state, then
  // each unit merges its partials in chunk order.
  thread_local Buf qall, parts;
  std::vector<int64_t> first(n_units + 1, 0);  // first item of each unit
  float* qt = qall.get(n_units * kQueryBlock * G * dp);
  for (int64_t ui = 0; ui < n_units; ++ui) {
    const Unit u = unit_at(ui, nullptr);
    BuildQ(p, q, T, (int)(ui % p.n_kv_head), ui / p.n_kv_head * kQueryBlock, dp,
           qt + ui * kQueryBlock * G * dp);
    first[ui + 1] = first[ui] + u.n_chunks() - u.first_chunk();
  }
  float* pst = parts.get(first[n_units] * state_max);
  // Contiguous item ranges per thread: each thread streams long runs of one head's K/V.
  pool.parallel_for(first[n_units], [&](int64_t b, int64_t e, int) {
    thread_local TileScratch sc;
    for (int64_t item = b; item < e; ++item) {
      const int64_t ui = std::upper_bound(first.begin(), first.end(), item) - first.begin() - 1;
      const Unit u = unit_at(ui, qt + ui * kQueryBlock * G * dp);
      chunk_partial(u, (u.first_chunk() + item - first[ui]) * kChunk,
                    StateAt(pst + item * state_max, u.R, dp), sc);
    }
  });
  pool.parallel_for_dynamic(n_units, [&](int64_t ui, int) {
    const Unit u = unit_at(ui, nullptr);
    const State st = StateAt(pst + first[ui] * state_max, u.R, dp);  // merge into chunk 0
    for (int64_t it = first[ui] + 1; it < first[ui + 1]; ++it)
      MergePartial(st, StateAt(pst + it * state_max, u.R, dp), u.R, dp);
    WriteOut(p, st, u.R, dp, (int)(ui % p.n_kv_head), ui / p.n_kv_head * kQueryBlock, out);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "util/error.h"

namespace glimpse {

HWY_EXPORT(AttentionImpl);

void attention(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
               float* out, ThreadPool& pool) {
  if (p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0) fail("bad attention head counts");
  if (T <= 0) return;
  HWY_DYNAMIC_DISPATCH(AttentionImpl)(p, q, T, heads, out, pool);
}

void attention_ref(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
                   float* out) {
  const int d = p.head_dim;
  const int G = p.n_head / p.n_kv_head;
  std::vector<float> kf, vf;  // one KV head's stored rows, dequantized
  for (int g = 0; g < p.n_kv_head; ++g) {
    const KvHeadView& kv = heads[g];
    const int64_t n_all = kv.n_base + T;
    kf.resize((size_t)n_all * d);
    vf.resize((size_t)n_all * d);
    kv_rows_to_f32(p.type_k, kv.k, n_all, d, kf.data());
    kv_rows_to_f32(p.type_v, kv.v, n_all, d, vf.data());
    for (int64_t t = 0; t < T; ++t)
      for (int h = g * G; h < (g + 1) * G; ++h) {
        const int64_t n = kv.n_base + t + 1;
        const int64_t j0 = p.window > 0 ? std::max<int64_t>(0, n - p.window) : 0;
        std::vector<double> s(n, 0.0);
        double mx = -1e300;
        for (int64_t j = j0; j < n; ++j) {
          double dot = 0;
          for (int c = 0; c < d; ++c) dot += (double)q[(t * p.n_head + h) * d + c] * kf[j * d + c];
          s[j] = dot * p.scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = j0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = j0; j < n; ++j) acc += s[j] * vf[j * d + c];
          out[(t * p.n_head + h) * d + c] = (float)(acc / sum);
        }
      }
  }
}

}  // namespace glimpse
#endif  // HWY_ONCE
