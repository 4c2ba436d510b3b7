// Knorm: keys with a small L2 norm tend to draw attention, so score = -||k|| per KV head
// (no queries needed).
#include <cmath>
#include <vector>

#include "kv/policy.h"

namespace glimpse {
namespace {

class KnormPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "knorm"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    const int d = in.cache.head_dim();
    const int64_t n = in.cfg.n_prompt;
    const size_t ldk = in.cache.k_row_bytes();
    KvScores out(in.cache.n_layer(), in.cache.n_kv_head(), n);
    std::vector<float> row(d);  // one key in f32, whatever the cache type
    for (int l = 0; l < out.n_layer; ++l)
      for (int h = 0; h < out.n_kv_head && in.cache.window(l) == 0; ++h) {  // global layers
        const KvHead& hd = in.cache.head(l, h);
        float* dst = out.at(l, h);
        for (int64_t j = 0; j < n; ++j) {
          kv_rows_to_f32(in.cache.type_k(), hd.k.data() + j * ldk, 1, d, row.data());
          double ss = 0;
          for (int c = 0; c < d; ++c) ss += (double)row[c] * row[c];
          dst[j] = (float)-std::sqrt(ss);
        }
      }
    return out;
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_knorm_policy() { return std::make_unique<KnormPolicy>(); }

}  // namespace glimpse
