// LAQ (lookahead Q-cache): a cheap look at the future. Compress a copy of the cache with
// SnapKV at the same budget, greedily generate a few pseudo tokens on that copy keeping
// their queries, then re-score the FULL prompt KV with the last 8 prompt queries plus the
// pseudo queries (attention summed, max-pool 7), keep the top C - 8 plus the last 8 prompt
// entries. The pseudo tokens' KV lives only in the copy and is dropped with it.
#include <cmath>

#include "kv/attention_scores.h"
#include "kv/evict.h"
#include "kv/policy.h"
#include "kv/policy_util.h"
#include "util/thread_pool.h"

namespace glimpse {
namespace {

constexpr int64_t kSnapWindow = 32;  // SnapKV step, its own defaults
constexpr int kSnapPool = 7;

class LaqPolicy final : public KvPolicy {
 public:
  const char* name() const override { return "laq"; }
  PolicyDefaults defaults() const override {
    PolicyDefaults d;
    d.window = 8;
    d.pool_kernel = 7;
    d.pool = PoolKind::Max;
    return d;
  }
  ForwardObserver* observer(const ModelConfig& c, const ResolvedPolicy& r) override {
    const int64_t n = r.n_prompt;
    const int64_t w_snap = std::min(kSnapWindow, n);
    const int64_t w = std::max<int64_t>(1, std::min(r.observe_window, n));
    snap_ = std::make_unique<AttentionRecorder>(c, n, (int32_t)(n - w_snap), (int32_t)n, QueryReduce::Sum);
    last_ = std::make_unique<AttentionRecorder>(c, n, (int32_t)(n - w), (int32_t)n, QueryReduce::Sum);
    both_.add(snap_.get());
    both_.add(last_.get());
    return &both_;
  }

  KvScores score(PolicyInput& in) override {
    const ModelConfig& c = in.model.config();
    const int64_t n = in.cfg.n_prompt, C = in.cfg.budget;
    const int G = c.n_head / c.n_kv_head, d = c.head_dim;

    // 1. SnapKV on a branch of the request.
    const std::unique_ptr<KvRequest> branch = in.request.fork_request();
    KvCache& copy = branch->cache();
    const int64_t w_snap = std::min(kSnapWindow, C);
    const KvScores snap = reduce_query_heads(snap_->acc(), c.n_layer, c.n_head, c.n_kv_head, n,
                                             kSnapPool, PoolKind::Max, in.cfg.s.reduce, n - w_snap);
    const std::vector<uint8_t> prot = protected_mask(n, 0, w_snap);
    compact_cache(copy, snap, allocate_uniform(c.n_layer, c.n_kv_head, C - w_snap, n - w_snap), prot);

    // 2. Pseudo tokens on the compressed branch (end-of-generation included), keeping their
    // queries.
    if (!in.suffix.empty()) branch->prefill(in.suffix, nullptr);
    QueryCapture cap(c.n_layer);
    GreedyOptions g;
    g.max_new = in.cfg.s.laq_pseudo;
    g.stop_at_eog = false;
    branch->greedy(g, &cap);

    // 3. Re-score the full prompt: pseudo queries over the full prompt keys plus the keys
    // the copy holds after the prompt (question, earlier pseudo tokens), causally.
    std::vector<float> acc = last_->acc();
    const float scale = c.attn_scale > 0 ? c.attn_scale : 1.0f / std::sqrt((float)d);
    for (int l = 0; l < c.n_layer; ++l) {
      const std::vector<float>& ql = cap.q[l];
      const int64_t n_pseudo = (int64_t)cap.pos[l].size();
      if (n_pseudo == 0 || !scored_layer(c, l)) continue;  // sliding-window layers stay 0
      in.pool.parallel_for_dynamic(c.n_kv_head, [&](int64_t h, int) {
        const KvHead& full = in.cache.head(l, (int)h);
        const KvHead& cp = copy.head(l, (int)h);
        const int64_t ldk = (int64_t)in.cache.k_row_bytes();  // the copy has the same types
        std::vector<uint8_t> keys(full.k.begin(), full.k.begin() + n * ldk);
        int64_t n_after = 0;  // copy entries after the prompt, in order
        for (int64_t j = 0; j < cp.size(); ++j)
          if (cp.pos[j] >= (int32_t)n) {
            keys.insert(keys.end(), cp.k.begin() + j * ldk, cp.k.begin() + (j + 1) * ldk);
            ++n_after;
          }
        const int64_t n_keys = n + n_after;
        std::vector<ScoreQuery> qs;
        for (int g = 0; g < G; ++g)
          for (int64_t i = 0; i < n_pseudo; ++i)
            qs.push_back({ql.data() + ((size_t)i * c.n_head + h * G + g) * d,
                          n_keys - (n_pseudo - 1 - i), g});
        accumulate_attention(qs.data(), (int64_t)qs.size(), in.cache.type_k(), keys.data(),
                             n_keys, d, scale, QueryReduce::Sum,
                             acc.data() + ((size_t)l * c.n_head + h * G) * n, n, n);
      });
    }
    return reduce_query_heads(acc, c.n_layer, c.n_head, c.n_kv_head, n, in.cfg.pool_kernel,
                              in.cfg.pool, in.cfg.s.reduce, n - in.cfg.window);
  }
  double observer_ms() const override { return (snap_ ? snap_->ms() : 0) + (last_ ? last_->ms() : 0); }

 private:
  std::unique_ptr<AttentionRecorder> snap_, last_;
  ObserverList both_;
};

}  // namespace

std::unique_ptr<KvPolicy> make_laq_policy() { return std::make_unique<LaqPolicy>(); }

}  // namespace glimpse
