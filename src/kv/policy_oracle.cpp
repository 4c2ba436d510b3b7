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
    // The answer may be longer than a sliding-window layer's rollback slack.
    KeepWindowEntries keep(in.request.cache());
    // Query-agnostic: the answer follows the question, which the oracle reads uncompressed.
    if (!in.suffix.empty()) in.request.prefill(in.suffix, nullptr);
    AttentionRecorder rec(c, n, in.cache.n_past(), INT32_MAX, QueryReduce::Sum);
    GreedyOptions g;
    g.max_new = in.cfg.s.oracle_max_new;
    const GreedyRun answer = in.request.greedy(g, &rec);
    in.request.truncate(prompt_end);  // the caller restores the prompt's logits
    std::vector<float> acc = rec.acc();
    if (answer.steps > 0)
      for (float& x : acc) x /= (float)answer.steps;
    return reduce_query_heads(acc, c.n_layer, c.n_head, c.n_kv_head, n, in.cfg.pool_kernel,
                              in.cfg.pool, in.cfg.s.reduce, n - in.cfg.window);
  }
};
}  // namespace

std::unique_ptr<KvPolicy> make_oracle_policy() { return std::make_unique<OraclePolicy>(); }

}  // namespace glimpse
