// Internals shared by the int8 matmul's driver (matmul_int8.cpp) and its per-ISA kernels
// (matmul_int8_avx512.cpp, matmul_int8_avx2.cpp, matmul_int8_sse4.cpp). See matmul_int8.cpp
// for the layouts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/ggml_types.h"
#include "util/fp16.h"

// The kernels are compiled with GCC's target pragmas (the rest of the build stays baseline
// x86-64); other compilers (the clang fuzzing build) get the portable f32 path.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GLIMPSE_INT8_KERNELS 1
#else
#define GLIMPSE_INT8_KERNELS 0
#endif

namespace glimpse {
namespace int8mm {
namespace impl {

enum class Kind { Q4_0, Q4_1, Q8_0 };

constexpr int64_t kGroup = 16;  // rows per interleaved group

inline Kind kind_of(GgmlType t) {
  return t == GgmlType::Q4_0 ? Kind::Q4_0 : t == GgmlType::Q4_1 ? Kind::Q4_1 : Kind::Q8_0;
}
constexpr int qs_bytes(Kind k) { return k == Kind::Q8_0 ? 512 : 256; }
// Bytes of one group of 16 rows for one 32-element block.
constexpr int group_block_bytes(Kind k) { return qs_bytes(k) + 32 + (k == Kind::Q4_1 ? 32 : 0); }

// Activations rounded to 8 bits, tokens interleaved in tiles of `slots` (= the kernel's GEMM
// tile token count, fewer only when T is smaller) so that one pointer walks a whole tile:
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
inline void finish_block(Kind kind, int32_t asum, float dd, float dh, float* d, float* s,
                         int32_t* c) {
  *d = dh;
  *s = fp16_to_f32(f32_to_fp16(dd * (float)asum));
  *c = kind == Kind::Q4_0 ? -8 * asum : kind == Kind::Q8_0 ? -128 * asum : 0;
}

// One instruction set's kernels, driven by int8mm::matmul.
struct Kernels {
  // Tokens per GEMM tile: the `slots` of the activations' layout.
  int slots;
  // One token's activations (K values) rounded as quantize_row_scalar does, bit for bit;
  // block b goes to q + b * qstride and d/s/c[b * mstride].
  void (*quantize_row)(Kind kind, const float* x, int64_t K, int8_t* q, float* d, float* s,
                       int32_t* c, int64_t qstride, int64_t mstride);
  // Groups [0, ng) of an interleaved copy (their first row is row0, gbytes apart) against
  // all T tokens of a: y[t][row0 ..] for the rows < `rows` (also y's row stride).
  void (*run_groups)(Kind kind, const uint8_t* packed, size_t gbytes, int64_t ng,
                     const Acts& a, int64_t T, float* y, int64_t rows, int64_t row0);
};

#if GLIMPSE_INT8_KERNELS
extern const Kernels kAvx512;  // AVX-512 F/BW/VL/DQ + VNNI, F16C, FMA
extern const Kernels kAvx2;    // AVX2, FMA, F16C
extern const Kernels kSse4;    // SSSE3, SSE4.1 (no FMA: the unfused definition)
#endif

}  // namespace impl
}  // namespace int8mm
}  // namespace glimpse
