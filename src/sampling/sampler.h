// Token sampler: a fixed chain with the same stages, order and cut rules as llama.cpp's
// default CLI sampling:
//
//   penalties -> top_k -> typical_p -> top_p -> min_p -> temperature -> softmax -> draw
//
// Each stage sees only the survivors of the stages before it, and probabilities are always
// renormalised over the current survivors (so top_p after top_k measures mass within the
// top k). temp <= 0 skips the chain: greedy argmax on the penalised logits.
//
// Ordering is total and deterministic everywhere: higher logit first, lower token id first
// among equal logits. top_k therefore keeps exactly k tokens, breaking ties by lower id.
//
// Cut rules (min_keep = 1 for every stage):
//   top_k      keep the k best.
//   typical_p  rank by |-log p - H| (H = entropy), keep the smallest such prefix whose mass
//              is strictly greater than typical_p.
//   top_p      keep the smallest prefix (by prob) whose mass is >= top_p.
//   min_p      keep tokens with p >= min_p * p_max.
// Cuts treat values within 1e-6 of their threshold as on it (absolute for the mass sums of
// top_p/typical_p, relative in logit space for min_p), so a boundary that is exact in
// decimal (0.5 + 0.3 vs top_p = 0.8f, which is slightly above 0.8) behaves as written.
//
// Parameter checks (violations throw Error from the constructor):
//   n_vocab > 0; temp finite (any sign; <= 0 = greedy); top_p, typical_p in [0, +inf)
//   (>= 1 = off, 0 = keep the single best); min_p <= 1 (<= 0 = off); repeat_penalty > 0;
//   repeat_last_n >= -1; presence/frequency finite. NaN is rejected everywhere.
// NaN logits are treated as -inf. If the best logit is +inf, only the +inf tokens share the
// mass; if every logit is -inf they share it equally.
//
// Cost per token with n_vocab = 150k: one copy of the logits plus, with top_k on, a scan
// keeping a k-element heap; with top_k off, min_p and top_p work from a threshold pass and
// sort only the prefix they need. Only typical_p (off by default) sorts everything.
// Measured on one CPU core, 152k vocab: defaults ~0.1 ms/token; top_k off ~0.2-0.8 ms
// (one exp per token dominates); typical_p with top_k off ~15 ms.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <utility>
#include <vector>

namespace glimpse {

constexpr uint32_t kDefaultSeed = 0xFFFFFFFF;  // "pick a random seed"

struct SamplerParams {
  float temp = 0.8f;          // <= 0: greedy argmax
  int32_t top_k = 40;         // <= 0: off
  float top_p = 0.95f;        // >= 1: off
  float min_p = 0.05f;        // <= 0: off
  float typical_p = 1.0f;     // >= 1: off (locally typical sampling)
  float repeat_penalty = 1.0f;
  // Window of accepted tokens the penalties look at. 0 = off; -1 = every token accepted
  // since the last reset(), i.e. the whole context when reset() is called per context.
  int32_t repeat_last_n = 64;
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  uint32_t seed = kDefaultSeed;  // kDefaultSeed: random seed; anything else: deterministic
};

class Sampler {
 public:
  Sampler(const SamplerParams& p, int32_t n_vocab);

  // logits: [n_vocab]. Draws one token; the only call that advances the RNG.
  int32_t sample(const float* logits);
  // Records a token (prompt or generated) in the penalty window. Throws on an id outside
  // [0, n_vocab).
  void accept(int32_t token);
  // Clears the penalty history; the RNG state is kept.
  void reset();
  // The seed really used (after the random choice for kDefaultSeed).
  uint32_t seed() const { return seed_; }
  // The distribution sample() would draw from for these logits: (token, prob) pairs with
  // prob > 0, sorted by prob descending (ties: lower id first). Does not touch the RNG.
  std::vector<std::pair<int32_t, float>> distribution(const float* logits);

  const SamplerParams& params() const { return p_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Cand {
    int32_t id;
    float logit;
  };

  bool greedy() const { return p_.temp <= 0.0f; }
  bool penalties_on() const;
  void prepare(const float* logits);  // logits -> work_, NaN -> -inf, penalties applied
  int32_t argmax() const;             // over work_, lowest id wins ties
  void run_chain();                   // work_ -> cur_ after top_k .. temperature
  void select_top_k(int32_t k);
  void apply_typical();
  void apply_top_p_min_p(double z_known, double mass_known);
  void ensure_sorted(size_t m);
  double softmax_weights();  // cur_ -> w_ (unnormalised, max = 1), returns the sum

  SamplerParams p_;
  int32_t n_vocab_;
  uint32_t seed_;
  std::mt19937 rng_;

  // Penalty window: tokens in acceptance order, and how often each occurs in it.
  std::deque<int32_t> window_;
  std::vector<int32_t> counts_;
  std::vector<uint32_t> stamp_;  // dedups window tokens while applying penalties
  uint32_t epoch_ = 0;

  // Per-call scratch, kept to avoid reallocating 150k-entry buffers every token.
  std::vector<float> work_;   // [n_vocab] penalised logits
  std::vector<Cand> cur_;     // surviving candidates
  size_t sorted_ = 0;         // cur_[0, sorted_) are the best sorted_ candidates, in order
  bool min_p_done_ = false;   // min_p already applied while building cur_
  std::vector<float> w_;      // softmax weights parallel to cur_
  std::vector<uint32_t> order_;  // typical_p ranking scratch
};

}  // namespace glimpse
