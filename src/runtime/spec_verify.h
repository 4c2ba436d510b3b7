// Speculative sampling (temperature > 0): verification that keeps the output distributed
// exactly as plain sampling with the same settings.
//
// At draft position i the drafter drew x_i from its distribution q_i (the ensemble mixture,
// spec_draft.h); the target's distribution there is P_i = the request sampler's distribution
// of its row-i logits (penalties, top-k/p, min-p, temperature: Sampler::distribution), built
// only after x_0..x_{i-1} were accepted so the penalties see them. x_i is accepted with
// probability min(1, P_i(x_i) / q_i(x_i)); on rejection the token is drawn from the residual
// norm(max(0, P_i - q_i)) and the round ends; when every draft is accepted one more token is
// drawn from P_d. Each committed token is then distributed as P_i (Leviathan et al. 2023,
// Chen et al. 2023), so the sequence is distributed as plain sampling's.
//
// Distributions are sparse: (token, prob) pairs with prob > 0, summing to 1 (the sampler's
// survivors; an n-gram opinion is a single token with prob 1).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <utility>
#include <vector>

namespace glimpse {

using SparseDist = std::vector<std::pair<int32_t, float>>;

// prob of token t in d (0 when absent). Linear in |d|.
double prob_of(const SparseDist& d, int32_t t);
// One draw from d (|d| >= 1) with rng: inverse CDF over d's order.
int32_t draw_from(const SparseDist& d, std::mt19937_64& rng);

// One position: x was drawn from q. Returns the committed token and whether it is x.
// dense: scratch of at least n_vocab floats, all zero on entry and on return.
struct VerifiedToken {
  int32_t token;
  bool accepted;
};
VerifiedToken verify_sampled(const SparseDist& p, const SparseDist& q, int32_t x,
                             std::mt19937_64& rng, std::vector<float>& dense);

// One round over d drafts (drafts[i] drawn from q[i]): target(i) gives P_i and is called in
// order only while the round goes on; commit(token) records a committed token and returns
// false when the request ends with it. Returns the committed tokens (the accepted drafts,
// then the residual or bonus token; fewer when commit ended the request).
std::vector<int32_t> verify_round_sampled(const std::vector<int32_t>& drafts,
                                          const std::vector<SparseDist>& q,
                                          const std::function<SparseDist(size_t)>& target,
                                          const std::function<bool(int32_t)>& commit,
                                          std::mt19937_64& rng, std::vector<float>& dense);

}  // namespace glimpse
