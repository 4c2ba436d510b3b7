#include "ops/backend.h"

#include "ops/elementwise.h"
#include "util/thread_pool.h"

namespace glimpse {

namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "CPU"; }

  void matmul(const WeightView& w, const float* x, int64_t T, float* y,
              ThreadPool& pool) const override {
    glimpse::matmul(w, x, T, y, pool);
  }

  void rms_norm_rows(const float* x, const float* w, float* y, int64_t T, int64_t n, float eps,
                     ThreadPool& pool) const override {
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) rms_norm(x + t * n, w, y + t * n, n, eps);
    });
  }

  void rope_rows(const RopeParams& p, const float* cs, float* q, int n_head, float* k,
                 int n_kv_head, int head_dim, int64_t T, ThreadPool& pool) const override {
    const int64_t q_dim = (int64_t)n_head * head_dim, kv_dim = (int64_t)n_kv_head * head_dim;
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
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
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
      silu_mul(gate + b * n, up + b * n, (e - b) * n);
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
