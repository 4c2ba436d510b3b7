// Knorm: keys with a small L2 norm tend to draw attention, so score = -||k|| per KV head
// (no queries needed).
#include <cmath>

#include "kv/policy.h"
#include "util/fp16.h"

namespace glimpse {
namespace {

class KnormPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "knorm"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    const int d = in.cache.head_dim();
    const int64_t n = in.cfg.n_prompt;
    KvScores out(in.cache.n_layer(), in.cache.n_kv_head(), n);
    for (int l = 0; l < out.n_layer; ++l)
      for (int h = 0; h < out.n_kv_head; ++h) {
        const KvHead& hd = in.cache.head(l, h);
        float* dst = out.at(l, h);
        for (int64_t j = 0; j < n; ++j) {
          double ss = 0;
          for (int c = 0; c < d; ++c) {
            const double x = fp16_to_f32(hd.k[(size_t)j * d + c]);
            ss += x * x;
          }
          dst[j] = (float)-std::sqrt(ss);
        }
      }
    return out;
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_knorm_policy() { return std::make_unique<KnormPolicy>(); }

}  // namespace glimpse
