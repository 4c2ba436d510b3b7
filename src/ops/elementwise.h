// Small per-row ops of the transformer block. Plain loops the compiler vectorizes, each its
// own scalar reference, except silu_mul (Highway vector exp) which has silu_mul_ref. Tests
// compare against double-precision formulas.
#pragma once

#include <cstdint>

namespace glimpse {

// y = x / sqrt(mean(x^2) + eps) * w; x, y, w: [n]. y may alias x. Sum in double, as GGML.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// In place: gate[i] = silu(gate[i]) * up[i]. gate, up: [n].
void silu_mul(float* gate, const float* up, int64_t n);
void silu_mul_ref(float* gate, const float* up, int64_t n);  // scalar std::exp

// In place: x[i] += y[i].
void add_inplace(float* x, const float* y, int64_t n);

// In place: x[i] += b[i] (bias), for each of n_rows rows of width n.
void add_bias_rows(float* x, const float* b, int64_t n_rows, int64_t n);

// In place numerically stable softmax over x[0..n).
void softmax(float* x, int64_t n);

}  // namespace glimpse
