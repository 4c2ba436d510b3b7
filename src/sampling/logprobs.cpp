#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace glimpse {

LogprobsAt logprobs_at(const float* logits, int32_t n_vocab, int32_t id, int n_top) {
  if (n_vocab <= 0 || id < 0 || id >= n_vocab) fail("logprobs_at: token {} of {}", id, n_vocab);
  double mx = -INFINITY;
  for (int32_t i = 0; i < n_vocab; ++i) mx = std::max(mx, (double)logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp((double)logits[i] - mx);
  const double lse = mx + std::log(sum);
  LogprobsAt out;
  out.chosen = (float)((double)logits[id] - lse);
  const int n = std::clamp(n_top, 0, (int)n_vocab);
  std::vector<int32_t> order(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) order[i] = i;
  auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + n, order.end(), more_likely);
  for (int i = 0; i < n; ++i) out.top.emplace_back(order[i], (float)((double)logits[order[i]] - lse));
  return out;
}

}  // namespace glimpse
