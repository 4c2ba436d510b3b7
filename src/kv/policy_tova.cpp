// TOVA, one-shot: the last prompt query's attention averaged over every query head of the
// layer, so all KV heads of a layer keep the same token set.
#include "kv/attention_scores.h"
#include "kv/policy.h"

namespace glimpse {
namespace {

class TovaPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "tova"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    rec_ = std::make_unique<AttentionRecorder>(c, r.n_prompt, (int32_t)(r.n_prompt - 1),
                                               (int32_t)r.n_prompt, QueryReduce::Sum);
    return rec_.get();
  }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const int64_t n = in.cfg.n_prompt;
    KvScores out(c.n_layer, c.n_kv_head, n);
    const std::vector<float>& acc = rec_->acc();
    for (int l = 0; l < c.n_layer; ++l)
      for (int h = 0; h < c.n_kv_head; ++h) {
        float* dst = out.at(l, h);
        for (int qh = 0; qh < c.n_head; ++qh) {
          const float* src = acc.data() + ((size_t)l * c.n_head + qh) * n;
          for (int64_t j = 0; j < n; ++j) dst[j] += src[j] / (float)c.n_head;
        }
      }
    return out;
  }
  double observer_ms() const override { return rec_ ? rec_->ms() : 0; }

 private:
  std::unique_ptr<AttentionRecorder> rec_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_tova_policy() { return std::make_unique<TovaPolicy>(); }

}  // namespace glimpse
