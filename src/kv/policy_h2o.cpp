// H2O, prefill variant: every prompt query's attention is accumulated per key, blockwise
// as prefill batches pass (never an N x N buffer), then divided by the number of queries
// that can see the key (N - j for entry j), so early keys are not favoured merely for being
// seen more often. The recent window is protected.
#include "kv/attention_scores.h"
#include "kv/policy.h"

namespace glimpse {
namespace {

class H2oPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "h2o"; }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.window = 32;
    return d;
  }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    rec_ = std::make_unique<AttentionRecorder>(c, r.n_prompt, 0, (int32_t)r.n_prompt,
                                               QueryReduce::Sum);
    return rec_.get();
  }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const int64_t n = in.cfg.n_prompt;
    std::vector<float>& acc = rec_->acc();
    for (size_t row = 0; row < acc.size() / n; ++row)
      for (int64_t j = 0; j < n; ++j) acc[row * n + j] /= (float)(n - j);
    return reduce_query_heads(acc, c.n_layer, c.n_head, c.n_kv_head, n, in.cfg.pool_kernel,
                              in.cfg.pool, in.cfg.s.reduce, n - in.cfg.window);
  }
  double observer_ms() const override { return rec_ ? rec_->ms() : 0; }

 private:
  std::unique_ptr<AttentionRecorder> rec_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_h2o_policy() { return std::make_unique<H2oPolicy>(); }

}  // namespace glimpse
