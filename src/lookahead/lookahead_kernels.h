// Inner loops of the lookahead attention (forward and backward). The float overloads run
// Highway kernels (runtime dispatch); the double overloads are plain loops used by the
// gradient check (the double reference pass and the backward in double). The float score rows are
// the KV scoring kernel itself (kv/attention_scores.h).
#pragma once

#include <cstdint>

#include "kv/attention_scores.h"
#include "ops/kv_types.h"

namespace glimpse::lookahead_detail {

// Column padding of key panels: a multiple of every vector width (as score_rows needs).
constexpr int64_t kPanelPad = 16;
inline int64_t padded(int64_t n) { return (n + kPanelPad - 1) / kPanelPad * kPanelPad; }

// s[i][j] = sum_c q[i][c] * kt[c][j] for i < m (m <= 8), j < n_pad.
// kt: [d][n_pad] (a transposed key or value panel), s: [m][n_pad]. Float: glimpse::score_rows.
using glimpse::score_rows;
void score_rows(const double* const* q, int m, const double* kt, int64_t n_pad, int d, double* s);

// out[i][c] += sum_{j < n} p[i][j] * v[j][c] for i < m (m <= 8). v: [n][d] row-major.
void pv_rows(const float* const* p, int m, int64_t n, const float* v, int d, float* const* out);
void pv_rows(const double* const* p, int m, int64_t n, const double* v, int d, double* const* out);

// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);
void axpy(double a, const double* x, double* y, int64_t n);

// sum_i x[i] * y[i]
float dot(const float* x, const float* y, int64_t n);
double dot(const double* x, const double* y, int64_t n);

// x[0..n) = softmax(scale * x[0..n)), max-subtracted (float: vectorised exp).
void softmax_row(float* x, int64_t n, float scale);
void softmax_row(double* x, int64_t n, double scale);

// n KV rows of d values stored as `type` (ops/kv_types.h) -> dst [n][d] f32 / f64
void kv_to_real(KvType type, const uint8_t* src, int64_t n, int d, float* dst);
void kv_to_real(KvType type, const uint8_t* src, int64_t n, int d, double* dst);

}  // namespace glimpse::lookahead_detail
