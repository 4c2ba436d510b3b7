#include "kv/policy_util.h"

#include "util/error.h"

namespace glimpse {

int32_t argmax_token(const std::vector<float>& logits) {
  if (logits.empty()) fail("argmax of empty logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return (int32_t)best;
}

void QueryCapture::on_queries(const LayerQueries& lq, ThreadPool&) {
  const int64_t row = (int64_t)lq.n_head * lq.head_dim;
  for (int64_t t = 0; t < lq.n_tokens; ++t) {
    if (lq.pos[t] < pos_lo_ || lq.pos[t] >= pos_hi_) continue;
    q[lq.layer].insert(q[lq.layer].end(), lq.q + t * row, lq.q + (t + 1) * row);
    pos[lq.layer].push_back(lq.pos[t]);
  }
}

}  // namespace glimpse
