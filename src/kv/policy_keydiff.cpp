// KeyDiff: keep the keys that differ most from the others (query-agnostic). Per (layer, KV
// head), over the N prompt keys as stored (post-RoPE, the cache's type read as f32):
//   anchor = mean_j k_j / max(||k_j||, 1e-12)          (mean of the unit keys)
//   s[j]   = -(k_j . anchor) / max(||k_j|| ||anchor||, 1e-8)   (minus cosine similarity)
// so the keys most aligned with the average direction go first. This is the one-shot form
// (kvpress's KeyDiffPress); the method's paper also describes applying it block by block
// while the prompt streams in, which a one-shot eviction after prefill does not need.
// No window or sinks by default (settable), no pooling (as knorm); scores are per KV head
// already, so there is no group reduction.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kv/policy.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

class KeyDiffPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "keydiff"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    const int d = in.cache.head_dim();
    const int64_t n = in.cfg.n_prompt;
    KvScores out(in.cache.n_layer(), in.cache.n_kv_head(), n);
    in.pool.parallel_for_dynamic((int64_t)out.n_layer * out.n_kv_head, [&](int64_t u, int) {
      const int l = (int)(u / out.n_kv_head), h = (int)(u % out.n_kv_head);
      if (in.cache.window(l) > 0) return;  // sliding-window layer: never evicted
      std::vector<float> k((size_t)n * d);  // [N][d] the head's prompt keys in f32
      kv_rows_to_f32(in.cache.type_k(), in.cache.head(l, h).k.data(), n, d, k.data());
      std::vector<double> norm(n), anchor(d, 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = k.data() + j * d;
        double ss = 0;
        for (int c = 0; c < d; ++c) ss += (double)kj[c] * kj[c];
        norm[j] = std::sqrt(ss);
        const double inv = 1.0 / std::max(norm[j], 1e-12);
        for (int c = 0; c < d; ++c) anchor[c] += kj[c] * inv;
      }
      double an = 0;
      for (double& a : anchor) {
        a /= (double)n;
        an += a * a;
      }
      an = std::sqrt(an);
      float* dst = out.at(l, h);
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = k.data() + j * d;
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += kj[c] * anchor[c];
        dst[j] = (float)(-dot / std::max(norm[j] * an, 1e-8));
      }
    });
    return out;
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_keydiff_policy() { return std::make_unique<KeyDiffPolicy>(); }

}  // namespace glimpse
