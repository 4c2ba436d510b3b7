// Integer matmul for Q4_0 / Q4_1 / Q8_0 weights (internal to src/ops).
//
// The activations are rounded to 8 bits per 32-element block exactly as the float path
// does (d = amax/127 stored as f16, q = round(x/d)), and each output is
//
//   y[t][r] = sum over blocks b, in order, of
//               acc = fma(float(isum), dw * da, acc)       (then for Q4_1)
//               acc = fma(mw, da * asum, acc)
//   isum    = exact int32 dot product of the block's weight quants with the activation
//             quants (Q4_0 and Q8_0 fold their zero point in: isum - 8*asum, - 128*asum)
//   dw, mw  = the weight block's scale and min (f16 -> f32), da = the activation's scale,
//   asum    = sum of the activation quants of the block.
//
// The FMA levels (AVX-512 VNNI and AVX2 GEMM / GEMV) perform exactly these float operations
// per output and give the same bits as each other and as matmul_ref(..., fused = true). CPUs
// at the SSE4 level have no FMA: their kernels compute the unfused form, each product
// rounded to f32 before its add, in this order,
//               p   = dw * da
//               acc = acc + float(isum) * p                (then for Q4_1)
//               acc = acc + mw * (da * asum)
// and give the bits of matmul_ref(..., fused = false). At a given level, results therefore
// do not depend on the kernel, the tile shape, T or the thread split. (In the min term,
// da * asum stands for the activations' s: the unrounded scale times asum, rounded to f16
// once per block; see Acts.) The float path in matmul.cpp is used where no int8 kernel
// exists.
#pragma once

#include <cstdint>

#include "ops/matmul.h"

namespace glimpse {
namespace int8mm {

// Kernel levels, lowest first: none (the f32 path), SSSE3 + SSE4.1 (pmaddubsw on 128-bit
// vectors; no FMA, no F16C: the unfused definition), AVX2 + FMA + F16C (vpmaddubsw), and
// AVX-512 F/BW/VL/DQ + VNNI + F16C (vpdpbusd). The two FMA levels give the same bits.
enum class Isa { kScalar, kSse4, kAvx2, kAvx512 };

// The best level this CPU (and this build: GCC on x86-64) has.
Isa best_isa();
// The level in use: that of isa_level() (ops/isa.h; GLIMPSE_ISA lowers it, and
// set_isa_level_for_testing forces it), capped at best_isa(). Weights packed under one level
// stay valid under any other.
Isa isa();
const char* isa_name(Isa isa);

// An int8 kernel level is in use (isa() != kScalar): weights are worth packing at load.
bool cpu_has_kernels();

// Whether w is handled by the int8 path (type and shape; not the CPU).
bool supports(const WeightView& w);

// Bytes of the interleaved layout of w (supports(w)), rows padded to groups of 16.
size_t packed_bytes(const WeightView& w);
// Interleaves w into dst (packed_bytes(w), 64-byte aligned).
void pack(const WeightView& w, uint8_t* dst);

// Row r of a packed view in f32, bit-identical to dequant_row on its blocks.
void packed_row(const WeightView& w, int64_t r, float* out);

// y = W x through the int8 path on this CPU's kernels; false if not applicable
// (no kernels or !supports(w)), leaving y untouched.
bool matmul(const WeightView& w, const float* x, int64_t T, float* y, ThreadPool& pool);
// y_i = W_i x for n_w weights of one type and width: x is rounded once and the row groups of
// all of them are split over the threads in one dispatch (q/k/v, gate/up). Same bits as
// n_w calls of matmul; false (nothing written) if any weight is not on the int8 path.
bool matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t T, float* const* ys,
                  ThreadPool& pool);

// The definition above in plain scalar code, reading the GGUF blocks (single-threaded):
// fused (the FMA levels' bits) or unfused (the SSE4 level's bits).
void matmul_ref(const WeightView& w, const float* x, int64_t T, float* y, bool fused = true);

}  // namespace int8mm
}  // namespace glimpse
