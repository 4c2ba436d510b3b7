// Highway kernels (runtime dispatch over the CPU's best target) for dequantization and
// the panel GEMM; the driver at the bottom splits row panels over the thread pool.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>

#include "ops/matmul.h"
#include "ops/matmul_int8.h"
#include "ops/quant.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace glimpse {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes so one vector never spans more than half a 32-element block.
using DF = hn::CappedTag<float, 16>;

// Scale d and offset m of a Q4_0 (m = -8d) or Q4_1 block, and its packed nibbles.
struct Q4Block {
  float d, m;
  const uint8_t* qs;
};
inline Q4Block ReadQ4Block(const uint8_t* b, bool has_min) {
  uint16_t dh;
  __builtin_memcpy(&dh, b, 2);
  const float d = fp16_to_f32(dh);
  if (!has_min) return {d, -8.0f * d, b + 2};
  uint16_t mh;
  __builtin_memcpy(&mh, b + 2, 2);
  return {d, fp16_to_f32(mh), b + 4};
}

void DequantQ4(const uint8_t* src, float* y, int64_t nb, bool has_min) {
  const DF df;
  const hn::Rebind<uint8_t, DF> du8;
  const hn::Rebind<uint32_t, DF> du32;
  const hn::Rebind<int32_t, DF> di32;
  const size_t N = hn::Lanes(df);
  const size_t bb = has_min ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0);
  for (int64_t i = 0; i < nb; ++i, src += bb, y += 32) {
    const Q4Block blk = ReadQ4Block(src, has_min);
    const uint8_t* qs = blk.qs;
    const auto vd = hn::Set(df, blk.d), vm = hn::Set(df, blk.m);
    const auto mask = hn::Set(du32, 0xF);
    for (size_t j = 0; j < 16; j += N) {
      const auto wide = hn::PromoteTo(du32, hn::LoadU(du8, qs + j));
      const auto lo = hn::ConvertTo(df, hn::BitCast(di32, hn::And(wide, mask)));
      const auto hi = hn::ConvertTo(df, hn::BitCast(di32, hn::ShiftRight<4>(wide)));
      hn::StoreU(hn::MulAdd(lo, vd, vm), df, y + j);
      hn::StoreU(hn::MulAdd(hi, vd, vm), df, y + 16 + j);
    }
  }
}

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  const DF df;
  const hn::Rebind<int8_t, DF> di8;
  const hn::Rebind<int32_t, DF> di32;
  const size_t N = hn::Lanes(df);
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const auto vd = hn::Set(df, fp16_to_f32(b[i].d));
    for (size_t j = 0; j < 32; j += N) {
      const auto q = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, b[i].qs + j)));
      hn::StoreU(hn::Mul(q, vd), df, y + j);
    }
  }
}

void DequantRow(GgmlType t, const void* src, float* y, int64_t n) {
  switch (t) {
    case GgmlType::Q4_0: return DequantQ4(static_cast<const uint8_t*>(src), y, n / 32, false);
    case GgmlType::Q4_1: return DequantQ4(static_cast<const uint8_t*>(src), y, n / 32, true);
    case GgmlType::Q8_0: return DequantQ8_0(static_cast<const BlockQ8_0*>(src), y, n / 32);
    default: return dequant_row_ref(t, src, y, n);
  }
}

// y[t][r] for r < NR, t < NT: dot products of NR weight rows (f32, stride K) with NT
// activation rows (stride K). Vector part over K, scalar tail.
template <int NR, int NT>
HWY_INLINE void DotTile(const float* w, const float* x, int64_t K, float* y, int64_t ldy) {
  const hn::ScalableTag<float> df;
  const int64_t N = (int64_t)hn::Lanes(df);
  using V = hn::Vec<decltype(df)>;
  // The r / t loops are unrolled so that the accumulators live in registers (GCC at -O2 keeps
  // them in a stack array otherwise: a store and a load around every MulAdd).
  V acc[NR][NT];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc[r][t] = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= K; k += N) {
    V xv[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) xv[t] = hn::LoadU(df, x + t * K + k);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const V wv = hn::LoadU(df, w + r * K + k);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int t = 0; t < NT; ++t) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t kk = k; kk < K; ++kk) s += w[r * K + kk] * x[t * K + kk];
      y[t * ldy + r] = s;
    }
  }
}

// Activation rows per tile: NR x kTileT accumulators plus kTileT activation vectors and one
// weight vector fit the register file (32 vector registers with AVX-512, 16 below: 4 x 3
// there, 4 x 4 = 16 accumulators would spill). Each output is the same chain of MulAdds over K
// whatever the tile, so the tile shape does not change any result.
#if HWY_TARGET <= HWY_AVX3
constexpr int kTileT = 4;
#else
constexpr int kTileT = 3;
#endif

template <int NR>
HWY_INLINE void DotRows(const float* w, const float* x, int64_t T, int64_t K, float* y,
                        int64_t ldy) {
  int64_t t = 0;
  for (; t + kTileT <= T; t += kTileT) DotTile<NR, kTileT>(w, x + t * K, K, y + t * ldy, ldy);
  for (; t < T; ++t) DotTile<NR, 1>(w, x + t * K, K, y + t * ldy, ldy);
}

constexpr int64_t kPanelRows = 16;
// Activation rows multiplied with a panel at a time, so that they stay in cache while the
// panel's row groups pass over them ([kTokenBlock][K] f32: 36 KB at K = 576, 96 KB at 1536)
// instead of streaming all T rows once per group of 4 weight rows.
constexpr int64_t kTokenBlock = 8 * kTileT;

// Decode (T = 1) dot products straight from Q4_0/Q4_1/Q8_0 blocks. Bit-identical to
// DequantRow followed by DotTile<., 1>: the same weight values (same MulAdd/Mul), the same
// lane grouping and accumulation order; only the f32 round trip through scratch is gone.
float FusedDotQ4(const uint8_t* row, const float* x, int64_t nb, bool has_min) {
  const DF df;
  const hn::Rebind<uint8_t, DF> du8;
  const hn::Rebind<uint32_t, DF> du32;
  const hn::Rebind<int32_t, DF> di32;
  const size_t N = hn::Lanes(df);
  const size_t bb = has_min ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0);
  const auto mask = hn::Set(du32, 0xF);
  auto acc = hn::Zero(df);
  for (int64_t i = 0; i < nb; ++i, row += bb, x += 32) {
    const Q4Block blk = ReadQ4Block(row, has_min);
    const uint8_t* qs = blk.qs;
    const auto vd = hn::Set(df, blk.d), vm = hn::Set(df, blk.m);
    for (size_t j = 0; j < 16; j += N) {  // elements j.. of the low nibbles
      const auto wide = hn::PromoteTo(du32, hn::LoadU(du8, qs + j));
      const auto lo = hn::ConvertTo(df, hn::BitCast(di32, hn::And(wide, mask)));
      acc = hn::MulAdd(hn::MulAdd(lo, vd, vm), hn::LoadU(df, x + j), acc);
    }
    for (size_t j = 0; j < 16; j += N) {  // elements 16 + j.. of the high nibbles
      const auto wide = hn::PromoteTo(du32, hn::LoadU(du8, qs + j));
      const auto hi = hn::ConvertTo(df, hn::BitCast(di32, hn::ShiftRight<4>(wide)));
      acc = hn::MulAdd(hn::MulAdd(hi, vd, vm), hn::LoadU(df, x + 16 + j), acc);
    }
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

float FusedDotQ8_0(const BlockQ8_0* b, const float* x, int64_t nb) {
  const DF df;
  const hn::Rebind<int8_t, DF> di8;
  const hn::Rebind<int32_t, DF> di32;
  const size_t N = hn::Lanes(df);
  auto acc = hn::Zero(df);
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    const auto vd = hn::Set(df, fp16_to_f32(b[i].d));
    for (size_t j = 0; j < 32; j += N) {
      const auto q = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, b[i].qs + j)));
      acc = hn::MulAdd(hn::Mul(q, vd), hn::LoadU(df, x + j), acc);
    }
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

void MatmulRows(const WeightView& w, const float* x, int64_t T, float* y, int64_t r0,
                int64_t r1, float* scratch) {
  const int64_t K = w.cols;
  // Re-encoded weights (ops/transcode.h) live only in the int8 layout: rows come from it.
  const bool from_packed = w.data == nullptr;
  // The fused path relies on DotTile using the same lane count as DF.
  if (T == 1 && !from_packed && hn::Lanes(DF()) == hn::Lanes(hn::ScalableTag<float>())) {
    if (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q4_1) {
      for (int64_t r = r0; r < r1; ++r)
        y[r] = FusedDotQ4(w.row(r), x, K / 32, w.type == GgmlType::Q4_1);
      return;
    }
    if (w.type == GgmlType::Q8_0) {
      for (int64_t r = r0; r < r1; ++r)
        y[r] = FusedDotQ8_0(reinterpret_cast<const BlockQ8_0*>(w.row(r)), x, K / 32);
      return;
    }
  }
  // f32 weights are multiplied in place (rows of stride K); others are dequantized per panel.
  const bool in_place = w.type == GgmlType::F32;
  for (int64_t p = r0; p < r1; p += kPanelRows) {
    const int64_t nr = std::min(kPanelRows, r1 - p);
    const float* panel = in_place ? reinterpret_cast<const float*>(w.row(p)) : scratch;
    if (!in_place) {
      for (int64_t r = 0; r < nr; ++r) {
        if (from_packed) int8mm::packed_row(w, p + r, scratch + r * K);
        else DequantRow(w.type, w.row(p + r), scratch + r * K, K);
      }
    }
    for (int64_t t0 = 0; t0 < T; t0 += kTokenBlock) {
      const int64_t nt = std::min(kTokenBlock, T - t0);
      const float* xb = x + t0 * K;
      float* yb = y + t0 * w.rows + p;
      int64_t r = 0;
      for (; r + 4 <= nr; r += 4) DotRows<4>(panel + r * K, xb, nt, K, yb + r, w.rows);
      for (; r < nr; ++r) DotRows<1>(panel + r * K, xb, nt, K, yb + r, w.rows);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace glimpse
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/matmul_int8.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace glimpse {

HWY_EXPORT(DequantRow);
HWY_EXPORT(MatmulRows);

void dequant_row(GgmlType t, const void* src, float* dst, int64_t n) {
  if (!is_supported_weight_type(t)) fail("no dequantizer for type {}", ggml_type_name(t));
  HWY_DYNAMIC_DISPATCH(DequantRow)(t, src, dst, n);
}

WeightView make_weight_view(GgmlType type, const void* data, int64_t rows, int64_t cols) {
  if (!is_supported_weight_type(type))
    fail("weight type {} is not supported (supported: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 "
         "q4_K q5_K q6_K)", ggml_type_name(type));
  WeightView v;
  v.type = type;
  v.data = static_cast<const uint8_t*>(data);
  v.rows = rows;
  v.cols = cols;
  v.row_bytes = ggml_row_bytes(type, cols);
  return v;
}

void weight_row(const WeightView& w, int64_t r, float* out) {
  // A packed view's blocks may have been released from memory: read the copy instead.
  if (w.packed) return int8mm::packed_row(w, r, out);
  dequant_row(w.type, w.row(r), out, w.cols);
}

namespace detail {
void matmul_rows(const WeightView& w, const float* x, int64_t T, float* y, int64_t r0,
                 int64_t r1, float* scratch) {
  HWY_DYNAMIC_DISPATCH(MatmulRows)(w, x, T, y, r0, r1, scratch);
}
}  // namespace detail

void matmul(const WeightView& w, const float* x_in, int64_t T, float* y, ThreadPool& pool) {
  if (int8mm::matmul(w, x_in, T, y, pool)) return;
  constexpr int64_t kPanel = 16;
  // Quantized weights multiply 8-bit activations (32-element blocks, f16 scale), the
  // numerics of the reference engine and of integer dot-product kernels.
  thread_local std::vector<float> xq;
  const float* x = x_in;
  if (w.type != GgmlType::F32 && w.type != GgmlType::F16 && w.type != GgmlType::BF16 &&
      w.cols % 32 == 0) {
    xq.assign(x_in, x_in + T * w.cols);
    for (int64_t b = 0; b < T * w.cols; b += 32) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xq[b + j]));
      const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
      const float dh = fp16_to_f32(f32_to_fp16(d));
      for (int j = 0; j < 32; ++j) xq[b + j] = std::round(xq[b + j] * id) * dh;
    }
    x = xq.data();
  }
  const int64_t n_panels = (w.rows + kPanel - 1) / kPanel;
  pool.parallel_for(n_panels, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < (size_t)(kPanel * w.cols)) scratch.resize(kPanel * w.cols);
    detail::matmul_rows(w, x, T, y, b * kPanel, std::min(w.rows, e * kPanel), scratch.data());
  });
}

void matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t T,
                  float* const* ys, ThreadPool& pool) {
  if (int8mm::matmul_multi(ws, n_w, x, T, ys, pool)) return;
  for (int i = 0; i < n_w; ++i) matmul(*ws[i], x, T, ys[i], pool);
}

void matmul_ref(const WeightView& w, const float* x, int64_t T, float* y) {
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    if (w.data) dequant_row_ref(w.type, w.row(r), row.data(), w.cols);
    else int8mm::packed_row(w, r, row.data());  // re-encoded weights: the int8 layout only
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k) s += (double)row[k] * x[t * w.cols + k];
      y[t * w.rows + r] = (float)s;
    }
  }
}

}  // namespace glimpse
#endif  // HWY_ONCE
