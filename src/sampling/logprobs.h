// Log-probabilities of tokens under a model's next-token distribution: log-softmax of the raw
// logits (before temperature, penalties or truncation), as OpenAI's `logprobs` report them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace glimpse {

struct LogprobsAt {
  float chosen = 0;                             // log p(id)
  std::vector<std::pair<int32_t, float>> top;  // the n_top most likely tokens, most likely first
};

// logits: [n_vocab]. Ties in top order go to the lower token id. Computed in double.
LogprobsAt logprobs_at(const float* logits, int32_t n_vocab, int32_t id, int n_top);

}  // namespace glimpse
