// Oracle: the model's own greedy answer with the full cache tells which prompt entries it
// really reads. Score of entry j = mean over answer tokens of their softmax attention on j
// (over every key they see, prompt and answer so far), per query head, then reduced per
// group. It costs a whole generation: the upper bound LookaheadKV learns to predict.
#include <climits>

#include "kv/attention_scores.h"
#include "kv/policy.h"
#include "kv/policy_util.h"

namespace glimpse {
namespace {

class OraclePolicy final : public KvPolicy {
 public:
  const char* name() const override { return "oracle"; }
  PolicyDefaults defaults() const override { return PolicyDefaults{}; }
  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const int64_t n = in.cfg.n_prompt;
    const int32_t prompt_end = in.cache.n_past();
    std::vector<float> logits = in.last_logits;
    // Query-agnostic: the answer follows the question, which the oracle reads uncompressed.
    if (!in.suffix.empty())
      in.model.forward(in.suffix.data(), (int64_t)in.suffix.size(), in.cache, LogitsRows::Last,
                       logits, in.pool);
    AttentionRecorder rec(c, n, in.cache.n_past(), INT32_MAX, QueryReduce::Sum);
    int32_t tok = argmax_token(logits);
    int count = 0;
    while (count < in.cfg.s.oracle_max_new && !in.is_eog(tok) &&
           in.cache.n_past() < in.cache.n_ctx()) {
      in.model.forward(&tok, 1, in.cache, LogitsRows::Last, logits, in.pool, &rec);
      ++count;
      tok = argmax_token(logits);
    }
    in.cache.truncate_from(prompt_end);
    n_answer_ = count;
    std::vector<float> acc = rec.acc();
    if (count > 0)
      for (float& x : acc) x /= (float)count;
    return reduce_query_heads(acc, c.n_layer, c.n_head, c.n_kv_head, n, in.cfg.pool_kernel,
                              in.cfg.pool, in.cfg.s.reduce);
  }

 private:
  int n_answer_ = 0;
};

}  // namespace

std::unique_ptr<KvPolicy> make_oracle_policy() { return std::make_unique<OraclePolicy>(); }

}  // namespace glimpse
