// The seam where a compute backend plugs in: every op the model's forward calls goes through
// this interface, at the granularity of a batch of rows (the whole batch of every sequence
// in one forward). The CPU backend forwards to the kernels in this folder; a GPU backend
// would implement the same calls over device buffers.
#pragma once

#include <cstdint>

#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace glimpse {

class ThreadPool;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y [T][w.rows] = x [T][w.cols] · Wᵀ
  virtual void matmul(const WeightView& w, const float* x, int64_t T, float* y,
                      ThreadPool& pool) const = 0;
  // ys[i] [T][ws[i]->rows] = x · ws[i]ᵀ for weights that read the same input (q/k/v,
  // gate/up): one pass over x where the kernels allow.
  virtual void matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t T,
                            float* const* ys, ThreadPool& pool) const = 0;
  // y[t] = x[t] / rms(x[t]) * w for T rows of n values.
  virtual void rms_norm_rows(const float* x, const float* w, float* y, int64_t T, int64_t n,
                             float eps, ThreadPool& pool) const = 0;
  // Rotates T rows: q [T][n_head][d] and k [T][n_kv_head][d] in place; cs [T][n_rot].
  virtual void rope_rows(const RopeParams& p, const float* cs, float* q, int n_head, float* k,
                         int n_kv_head, int head_dim, int64_t T, ThreadPool& pool) const = 0;
  // Causal attention of T queries over one sequence's KV heads (ops/attention.h).
  virtual void attention(const AttentionParams& p, const float* q, int64_t T,
                         const KvHeadView* heads, float* out, ThreadPool& pool) const = 0;
  // gate[t] = silu(gate[t]) * up[t] for T rows of n values.
  virtual void silu_mul_rows(float* gate, const float* up, int64_t T, int64_t n,
                             ThreadPool& pool) const = 0;
  // gate[t] = gelu_tanh(gate[t]) * up[t] for T rows of n values (ops/elementwise.h).
  virtual void gelu_mul_rows(float* gate, const float* up, int64_t T, int64_t n,
                             ThreadPool& pool) const = 0;
  // x += y over n values; x[t] += b for T rows of n values.
  virtual void add(float* x, const float* y, int64_t n) const = 0;
  virtual void add_bias_rows(float* x, const float* b, int64_t T, int64_t n) const = 0;
};

// The CPU kernels (Highway / int8 dispatch inside each op).
const Backend& cpu_backend();

}  // namespace glimpse
