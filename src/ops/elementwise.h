// Small per-row ops of the transformer block. Plain loops the compiler vectorizes, each its
// own scalar reference, except silu_mul (Highway vector exp) and gelu_tanh_mul (Highway f16
// rounding + table), which have silu_mul_ref and gelu_tanh_mul_ref. Tests
// compare against double-precision formulas.
#pragma once

#include <cstdint>

namespace glimpse {

// y = x / sqrt(mean(x^2) + eps) * w; x, y, w: [n]. y may alias x. Sum in double, as GGML.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// In place: gate[i] = silu(gate[i]) * up[i]. gate, up: [n].
void silu_mul(float* gate, const float* up, int64_t n);
void silu_mul_ref(float* gate, const float* up, int64_t n);  // scalar std::exp

// In place: gate[i] = gelu_tanh(gate[i]) * up[i], GELU in the tanh form
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) with the reference engine's numerics: x is
// rounded to f16 and GELU of that is read from a table of f16 values (exactly 0 below -10,
// x itself above 10). gelu_tanh_mul_ref computes the same values element by element, scalar.
void gelu_tanh_mul(float* gate, const float* up, int64_t n);
void gelu_tanh_mul_ref(float* gate, const float* up, int64_t n);
// GELU (tanh form) of x in f32, unrounded: what the table is made of.
float gelu_tanh_f32(float x);

// In place: x[i] += y[i].
void add_inplace(float* x, const float* y, int64_t n);

// In place: x[i] += b[i] (bias), for each of n_rows rows of width n.
void add_bias_rows(float* x, const float* b, int64_t n_rows, int64_t n);

// In place numerically stable softmax over x[0..n).
void softmax(float* x, int64_t n);

}  // namespace glimpse
