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
  q[lq.layer].insert(q[lq.layer].end(), lq.q, lq.q + lq.n_tokens * row);
  pos[lq.layer].insert(pos[lq.layer].end(), lq.pos, lq.pos + lq.n_tokens);
}

}  // namespace glimpse
