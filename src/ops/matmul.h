// Matrix products with weights in any supported GGUF type.
//
// Y[t][r] = sum_k W[r][k] * X[t][k]   W: [rows][cols] (GGUF row-major blocks)
//                                     X: [T][cols] f32, Y: [T][rows] f32
// Q4_0/Q4_1/Q8_0 weights on CPUs with AVX-512 VNNI or AVX2 take the integer path
// (matmul_int8.h: 8-bit activations, exact int32 block sums). Elsewhere the fast path
// dequantizes a panel of 16 weight rows once and multiplies it with all T activation rows
// in 4x4 register tiles (prefill GEMM; T = 1 is the decode GEMV).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "gguf/ggml_types.h"

namespace glimpse {

class ThreadPool;

struct WeightView {
  GgmlType type{};
  const uint8_t* data = nullptr;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features (contiguous)
  size_t row_bytes = 0;
  // Optional copy in the int8 kernels' interleaved layout (pack_weights), same size as data.
  const uint8_t* packed = nullptr;
  std::shared_ptr<const void> packed_storage;
  // Owner of data when the blocks were re-encoded at load (ops/transcode.h); else empty
  // (data points into the mapped file).
  std::shared_ptr<const void> data_storage;

  const uint8_t* row(int64_t r) const { return data + (size_t)r * row_bytes; }
};

// Builds a view after checking that the type is supported and cols fits its blocks.
WeightView make_weight_view(GgmlType type, const void* data, int64_t rows, int64_t cols);

// w plus an interleaved copy for the int8 kernels (Q4_0/Q4_1/Q8_0 while an int8 kernel
// level is in use, int8mm::cpu_has_kernels), made once at load; w itself otherwise. matmul
// gives the same results either way. Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are first re-encoded
// as Q8_0 or Q4_1 (ops/transcode.h), so the returned view may have another type.
// drop_source: w.data is a read-only private file mapping whose pages may be released
// (madvise) so that the copy replaces them in memory; they are read again if touched.
WeightView pack_weights(const WeightView& w, bool drop_source);

void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);
// ys[i] = ws[i] x for n_w weights read by the same x (q/k/v, gate/up): on the int8 path the
// activations are rounded once and all row groups go out in one dispatch; same bits as n_w
// calls of matmul.
void matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t n_tokens,
                  float* const* ys, ThreadPool& pool);

// Scalar reference (dequant_row_ref + double accumulation), single-threaded.
void matmul_ref(const WeightView& w, const float* x, int64_t n_tokens, float* y);

// One row of W (e.g. an embedding lookup) into f32.
void weight_row(const WeightView& w, int64_t r, float* out);

namespace detail {
// Exposed for tests: the dispatched panel kernel over rows [r0, r1).
void matmul_rows(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t r0,
                 int64_t r1, float* scratch);
}  // namespace detail

}  // namespace glimpse
