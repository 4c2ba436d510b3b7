// Random: uniform scores from the seed — the floor any real policy must beat.
#include <random>

#include "kv/policy.h"

namespace glimpse {
namespace {

class RandomPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "random"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    KvScores out(in.cache.n_layer(), in.cache.n_kv_head(), in.cfg.n_prompt);
    std::mt19937_64 rng(in.cfg.s.seed);
    // Top 24 bits of each draw as a float in [0, 1): portable across standard libraries.
    for (float& x : out.s) x = (float)(rng() >> 40) / (float)(1u << 24);
    return out;
  }
};

}  // namespace

std::unique_ptr<KvPolicy> make_random_policy() { return std::make_unique<RandomPolicy>(); }

}  // namespace glimpse
