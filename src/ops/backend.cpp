#include "ops/backend.h"

#include "ops/elementwise.h"
#include "util/thread_pool.h"

namespace glimpse {

namespace {

// fn(begin, end) over rows [0, T): on the pool, or on the calling thread when the whole
// job (n_values) is too small to pay for waking the workers (a decode step's row ops).
template <typename Fn>
void rows_for(ThreadPool& pool, int64_t T, int64_t n_values, const Fn& fn) {
  constexpr int64_t kInlineValues = 16384;
  if (n_values < kInlineValues) {
    fn(0, T);
    return;
  }
  pool.parallel_for(T, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "CPU"; }

  void matmul(const WeightView& w, const float* x, int64_t T, float* y,
              ThreadPool& pool) const override {
    glimpse::matmul(w, x, T, y, pool);
  }

  void matmul_multi(const WeightView* const* ws, int n_w, const float* x, int64_t T,
                    float* const* ys, ThreadPool& pool) const override {
    glimpse::matmul_multi(ws, n_w, x, T, ys, pool);
  }

  void rms_norm_rows(const float* x, const float* w, float* y, int64_t T, int64_t n, float eps,
                     ThreadPool& pool) const override {
    rows_for(pool, T, T * n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) rms_norm(x + t * n, w, y + t * n, n, eps);
    });
  }

  void rope_rows(const RopeParams& p, const float* cs, float* q, int n_head, float* k,
                 int n_kv_head, int head_dim, int64_t T, ThreadPool& pool) const override {
    const int64_t q_dim = (int64_t)n_head * head_dim, kv_dim = (int64_t)n_kv_head * head_dim;
    rows_for(pool, T, T * (q_dim + kv_dim), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const float* cst = cs + t * p.n_rot;
        rope_apply(p, cst, q + t * q_dim, n_head, head_dim);
        rope_apply(p, cst, k + t * kv_dim, n_kv_head, head_dim);
      }
    });
  }

  void attention(const AttentionParams& p, const float* q, int64_t T, const KvHeadView* heads,
                 float* out, ThreadPool& pool) const override {
    glimpse::attention(p, q, T, heads, out, pool);
  }

  void silu_mul_rows(float* gate, const float* up, int64_t T, int64_t n,
                     ThreadPool& pool) const override {
    rows_for(pool, T, T * n, [&](int64_t b, int64_t e) {
      silu_mul(gate + b * n, up + b * n, (e - b) * n);
    });
  }

  void gelu_mul_rows(float* gate, const float* up, int64_t T, int64_t n,
                     ThreadPool& pool) const override {
    rows_for(pool, T, T * n, [&](int64_t b, int64_t e) {
      gelu_tanh_mul(gate + b * n, up + b * n, (e - b) * n);
    });
  }

  void add(float* x, const float* y, int64_t n) const override { add_inplace(x, y, n); }

  void add_bias_rows(float* x, const float* b, int64_t T, int64_t n) const override {
    glimpse::add_bias_rows(x, b, T, n);
  }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace glimpse
