// SnapKV and the policies built on its scores. The last w prompt queries (observation
// window, causal inside it) are scored over all prompt keys during prefill; per query head
// the window's attention is summed, pooled along keys (max, kernel 7 by default), and reduced
// over each GQA group. PyramidKV and Ada-KV use the same scores and differ only in how the
// budget is spread (layers falling linearly / heads by their share of the layer's top).
#include <cmath>

#include "kv/attention_scores.h"
#include "kv/policy.h"

namespace glimpse {
namespace {

class SnapKvPolicy final : public KvPolicy {
 public:
  explicit SnapKvPolicy(BudgetAllocation a) : alloc_(a) {}
  const char* name() const override {
    return alloc_ == BudgetAllocation::Pyramid ? "pyramidkv"
           : alloc_ == BudgetAllocation::AdaHead ? "adakv" : "snapkv";
  }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.window = 32;
    d.pool_kernel = 7;
    d.pool = PoolKind::Max;
    d.allocation = alloc_;
    return d;
  }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    // The observation window: the policy's window whatever the budget (at least one query).
    const int64_t w = std::max<int64_t>(1, std::min(r.observe_window, r.n_prompt));
    rec_ = std::make_unique<AttentionRecorder>(c, r.n_prompt, (int32_t)(r.n_prompt - w),
                                               (int32_t)r.n_prompt, QueryReduce::Sum);
    return rec_.get();
  }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    return reduce_query_heads(rec_->acc(), c.n_layer, c.n_head, c.n_kv_head, in.cfg.n_prompt,
                              in.cfg.pool_kernel, in.cfg.pool, in.cfg.s.reduce,
                              in.cfg.n_prompt - in.cfg.window);
  }
  double observer_ms() const override { return rec_ ? rec_->ms() : 0; }

 private:
  BudgetAllocation alloc_;
  std::unique_ptr<AttentionRecorder> rec_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_snapkv_policy(BudgetAllocation a) {
  return std::make_unique<SnapKvPolicy>(a);
}

}  // namespace glimpse
