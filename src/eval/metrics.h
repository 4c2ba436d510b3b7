// Scores for the evaluation: RULER-style string matching of generated answers, and
// fidelity measures that compare a run under an eviction policy with the full-cache run
// (token sequences, logit rows, attention top-k sets).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/tasks.h"

namespace glimpse::eval {

// Lowercase (ASCII), every whitespace run -> one space, trimmed.
std::string normalize_answer(std::string_view s);

// Fraction of answers that occur in the prediction (after normalising both); 0 when
// answers is empty. RULER's metric for tasks that need every answer.
double string_match_all(std::string_view prediction, const std::vector<std::string>& answers);
// 1 if any answer occurs in the prediction, else 0 (alternative answers).
double string_match_part(std::string_view prediction, const std::vector<std::string>& answers);
// The last [...] list of a text: its quoted entries ("..." or '...'); nullopt when there is
// none or a quote is left open.
std::optional<std::vector<std::string>> last_list(std::string_view text);
// The last four lines of a text that are four single symbols separated by commas ("A,B,C,D",
// spaces and backticks ignored), as "A,B,C,D"; nullopt when there are fewer.
std::optional<std::vector<std::string>> last_grid(std::string_view text);
// By kind (tasks.h: string matches, the ParallelBench-style list and grid checks);
// kOpenEnded has no string score and throws Error.
double score_prediction(Scoring kind, std::string_view prediction,
                        const std::vector<std::string>& answers);

// Greedy-decoding agreement between a reference token sequence (full cache) and a test one.
struct SequenceAgreement {
  bool exact = false;        // identical sequences
  size_t common_prefix = 0;  // tokens equal from the start
  // common_prefix / max(len(ref), len(test)); 1 when both are empty.
  double prefix_fraction = 0;
};
SequenceAgreement greedy_agreement(std::span<const int32_t> reference,
                                   std::span<const int32_t> test);

// KL(P || Q) in nats, P = softmax(p_logits), Q = softmax(q_logits), computed in double
// from log-softmax (stable for large logits). Rows must have the same non-zero length.
double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits);
// Same, over probabilities already normalised (terms with p = 0 contribute 0; q = 0 where
// p > 0 gives +infinity).
double kl_divergence_probs(std::span<const double> p, std::span<const double> q);
// Index of the largest value (the first on ties).
size_t argmax(std::span<const float> row);
// Whether both rows have the same argmax.
bool top1_agree(std::span<const float> p_logits, std::span<const float> q_logits);

// Teacher-forced fidelity along a reference answer: add() one pair of next-token logit rows
// per answer position (the full cache's, the evicted cache's); kl() and top1() are the means
// over positions (0 before any).
class FidelityMean {
 public:
  void add(std::span<const float> reference, std::span<const float> test) {
    kl_ += kl_divergence(reference, test);
    top1_ += top1_agree(reference, test) ? 1.0 : 0.0;
    ++n_;
  }
  double kl() const { return n_ ? kl_ / (double)n_ : 0.0; }
  double top1() const { return n_ ? top1_ / (double)n_ : 0.0; }
  int64_t n() const { return n_; }

 private:
  double kl_ = 0, top1_ = 0;
  int64_t n_ = 0;
};

// Indices of the k largest values, largest first (ties: lower index first).
std::vector<int64_t> top_k_indices(std::span<const float> values, size_t k);
// |oracle ∩ predicted| / |oracle| (duplicates ignored); 1 when oracle is empty.
double recall_at_k(const std::vector<int64_t>& oracle, const std::vector<int64_t>& predicted);

// Running mean / min / max of a metric over samples.
struct MeanStat {
  double sum = 0, min = 0, max = 0;
  int64_t n = 0;
  void add(double x);
  double mean() const { return n ? sum / (double)n : 0; }
};

}  // namespace glimpse::eval
